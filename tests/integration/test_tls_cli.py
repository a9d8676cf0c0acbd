"""mailctl tls selfsigned, end to end: the certificate and key it writes
where yubin.conf's tls_cert_file and tls_key_file point, checked with the
openssl command line tool (subject, subjectAltName, that the key is the
certificate's, the fingerprint it prints) and with Python's ssl module
(the pair loads); the modes of the files; that an existing pair is kept
unless --force; and its exit codes (78 when the keys are not set, 77 for
a user who cannot write there, 64 for bad usage)."""
import os
import re
import ssl
import stat
import subprocess

import pytest

from harness import TEST_USER


def openssl(*args):
    r = subprocess.run(["openssl", *args], capture_output=True, text=True)
    assert r.returncode == 0, f"openssl {' '.join(args)}: {r.stderr}"
    return r.stdout


@pytest.fixture
def tls(instance):
    """An instance whose tls_cert_file and tls_key_file point into a
    directory that does not exist yet."""
    tls_dir = instance.config_dir / "tls"
    instance.cert = tls_dir / "cert.pem"
    instance.key = tls_dir / "key.pem"
    instance.params["tls_cert_file"] = str(instance.cert)
    instance.params["tls_key_file"] = str(instance.key)
    instance.write_config()
    return instance


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def fingerprint(cert):
    out = openssl("x509", "-in", str(cert), "-noout", "-fingerprint", "-sha256")
    return out.strip().split("=", 1)[1]


def assert_key_matches(cert, key):
    pub_from_cert = openssl("x509", "-in", str(cert), "-noout", "-pubkey")
    pub_from_key = openssl("pkey", "-in", str(key), "-pubout")
    assert pub_from_cert == pub_from_key


def test_selfsigned_writes_the_pair(tls):
    r = tls.mailctl("tls", "selfsigned", "mx.example.test")
    assert r.returncode == 0, r.stderr
    assert tls.cert.is_file() and tls.key.is_file()
    assert mode(tls.cert) == 0o644
    assert mode(tls.key) == 0o600
    assert mode(tls.cert.parent) == 0o755  # created, whatever the umask
    assert sorted(p.name for p in tls.cert.parent.iterdir()) == ["cert.pem", "key.pem"]  # no temporaries
    if os.geteuid() == 0:
        assert os.stat(tls.key).st_uid == 0

    text = openssl("x509", "-in", str(tls.cert), "-noout", "-subject", "-ext", "subjectAltName")
    assert re.search(r"subject=\s*CN\s*=\s*mx\.example\.test$", text, re.M), text
    assert "DNS:mx.example.test" in text
    assert_key_matches(tls.cert, tls.key)
    # Self-signed: it verifies against itself as the only trust anchor.
    openssl("verify", "-CAfile", str(tls.cert), "-purpose", "sslserver", str(tls.cert))
    # A TLS library takes the pair as it is (load_cert_chain checks the key).
    ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(str(tls.cert), str(tls.key))

    assert str(tls.cert) in r.stdout and str(tls.key) in r.stdout
    assert fingerprint(tls.cert) in r.stdout
    spki = subprocess.run(f"openssl x509 -in {tls.cert} -noout -pubkey | openssl pkey -pubin -outform DER"
                          " | openssl dgst -sha256 -r", shell=True, capture_output=True, text=True, check=True)
    assert spki.stdout.split()[0] in r.stdout  # the DANE TLSA 3 1 1 data


def test_extra_names_and_days(tls):
    r = tls.mailctl("tls", "selfsigned", "mx.example.test", "mail.example.test", "192.0.2.25", "--days", "10")
    assert r.returncode == 0, r.stderr
    text = openssl("x509", "-in", str(tls.cert), "-noout", "-ext", "subjectAltName")
    for name in ("DNS:mx.example.test", "DNS:mail.example.test", "IP Address:192.0.2.25"):
        assert name in text
    # Expires within 10 days (and not within 9).
    openssl("x509", "-in", str(tls.cert), "-noout", "-checkend", str(9 * 86400))
    r2 = subprocess.run(["openssl", "x509", "-in", str(tls.cert), "-noout", "-checkend", str(10 * 86400 + 60)],
                        capture_output=True, text=True)
    assert r2.returncode == 1, r2.stdout


def test_existing_pair_is_kept_without_force(tls):
    r = tls.mailctl("tls", "selfsigned", "mx.example.test")
    assert r.returncode == 0, r.stderr
    before = (tls.cert.read_bytes(), tls.key.read_bytes(), os.stat(tls.cert).st_mtime_ns)

    r = tls.mailctl("tls", "selfsigned", "other.example.test")
    assert r.returncode == 1
    assert "exists" in r.stderr and "--force" in r.stderr and str(tls.cert) in r.stderr
    assert (tls.cert.read_bytes(), tls.key.read_bytes(), os.stat(tls.cert).st_mtime_ns) == before

    # Only the key left over (say, a half-finished manual change): still kept.
    tls.cert.unlink()
    r = tls.mailctl("tls", "selfsigned", "other.example.test")
    assert r.returncode == 1
    assert str(tls.key) in r.stderr
    assert not tls.cert.exists() and tls.key.read_bytes() == before[1]


def test_force_replaces_the_pair(tls):
    r = tls.mailctl("tls", "selfsigned", "mx.example.test")
    assert r.returncode == 0, r.stderr
    old_fp, old_key = fingerprint(tls.cert), tls.key.read_bytes()

    r = tls.mailctl("tls", "selfsigned", "new.example.test", "--force")
    assert r.returncode == 0, r.stderr
    assert fingerprint(tls.cert) != old_fp
    assert tls.key.read_bytes() != old_key
    assert "DNS:new.example.test" in openssl("x509", "-in", str(tls.cert), "-noout", "-ext", "subjectAltName")
    assert_key_matches(tls.cert, tls.key)
    assert mode(tls.cert) == 0o644 and mode(tls.key) == 0o600
    assert sorted(p.name for p in tls.cert.parent.iterdir()) == ["cert.pem", "key.pem"]


def test_keys_not_set(instance):
    r = instance.mailctl("tls", "selfsigned", "mx.example.test")
    assert r.returncode == 78  # EX_CONFIG
    assert "tls_cert_file" in r.stderr and "tls_key_file" in r.stderr
    assert str(instance.config_dir / "yubin.conf") in r.stderr


@pytest.mark.parametrize("args", [
    (),                                       # no host name
    ("mx.example.test", "--days"),            # --days without a number
    ("mx.example.test", "--days", "0"),
    ("mx.example.test", "--days", "ten"),
    ("mx.example.test", "--bogus"),
])
def test_usage_errors(tls, args):
    r = tls.mailctl("tls", "selfsigned", *args)
    assert r.returncode == 64, r.stderr
    assert not tls.cert.exists() and not tls.key.exists()


@pytest.mark.parametrize("name", ["bad_name!", "*.example.test", "-x.example.test"])
def test_bad_host_names(tls, name):
    r = tls.mailctl("tls", "selfsigned", "--", name)
    assert r.returncode == 1
    assert name in r.stderr
    assert not tls.cert.exists() and not tls.key.exists()


def test_not_root(root_only, tls):
    """A user who cannot write the directory gets 77 and nothing is written."""
    r = tls.mailctl("tls", "selfsigned", "mx.example.test", as_user=TEST_USER)
    assert r.returncode == 77, r.stderr
    assert "run mailctl as root" in r.stderr
    assert not tls.cert.exists() and not tls.key.exists()
    # And with the directory already there (root's, 0755).
    tls.cert.parent.mkdir(mode=0o755)
    r = tls.mailctl("tls", "selfsigned", "mx.example.test", as_user=TEST_USER)
    assert r.returncode == 77, r.stderr
    assert not tls.cert.exists() and not tls.key.exists()
