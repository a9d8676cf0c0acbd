"""STARTTLS on the MX port, submission (587: STARTTLS then AUTH) and smtps
(465: implicit TLS) against a real instance, with certificates from a CA
the tests make: Python's smtplib and ssl verify the server, swaks and
openssl s_client are the other clients. SASL goes through auth."""
import base64
import re
import smtplib
import socket
import ssl
import subprocess

import pytest

from harness import IS_ROOT, wait_until
from mailfix import (DOMAIN, HOSTNAME, PASSWORD, Smtp, log_lines, setup_mail, start_mail, missing_programs,
                     wait_messages)
from tlsfix import add_tls

pytestmark = pytest.mark.skipif(not IS_ROOT, reason="runs the suite's services as root")

OTHER = "mail.other.test"  # a second name, with its own certificate (SNI)


@pytest.fixture
def tls_mail(instance):
    missing = missing_programs()
    if missing:
        pytest.skip("not built: " + ", ".join(missing))

    def make(**params):
        setup_mail(instance, **params)
        instance.ca = add_tls(instance, HOSTNAME, sni_names=(OTHER,))
        return start_mail(instance)
    return make


@pytest.fixture
def tmail(tls_mail):
    inst = tls_mail()
    for svc in ("submission", "smtps"):
        inst.wait_service(svc)
    return inst


def client_context(inst):
    """Verifies the server's certificate against the test CA, and its name."""
    return ssl.create_default_context(cafile=str(inst.ca.cert))


class TlsSMTP(smtplib.SMTP):
    """smtplib checks the certificate against the host it connected to
    (127.0.0.1); the server is mx.example.test, so check that name."""

    def starttls(self, *args, **kwargs):
        self._host = HOSTNAME
        return super().starttls(*args, **kwargs)


class TlsSMTP_SSL(smtplib.SMTP_SSL):
    def _get_socket(self, host, port, timeout):
        self._host = HOSTNAME
        return super()._get_socket(host, port, timeout)


def message(sender, rcpt, subject="tls test"):
    return (f"From: <{sender}>\r\nTo: <{rcpt}>\r\nSubject: {subject}\r\n"
            f"Message-Id: <{subject.replace(' ', '.')}@client.example.net>\r\n\r\nover TLS\r\n")


# ---- port 25 -----------------------------------------------------------

def test_mx_offers_starttls_not_auth(tmail):
    with TlsSMTP("127.0.0.1", tmail.smtp_port, timeout=10) as s:
        s.ehlo("client.example.net")
        assert s.has_extn("starttls")
        assert not s.has_extn("auth")
        code, _ = s.starttls(context=client_context(tmail))
        assert code == 220
        s.ehlo("client.example.net")
        assert not s.has_extn("starttls")
        assert not s.has_extn("auth")  # smtpd_auth_on_mx = no
        s.sendmail("someone@elsewhere.test", ["bob@example.test"], message("someone@elsewhere.test",
                                                                          "bob@example.test"))
    data = wait_messages(tmail, "bob")[0].decode()
    assert re.search(r"\(using TLSv1\.[23] with cipher \S+ \(\d+/\d+ bits\)\)\r?\n", data), data
    assert "with ESMTPS id" in data
    assert "Authenticated sender" not in data


def test_mx_relay_still_refused_over_tls(tmail):
    with TlsSMTP("127.0.0.1", tmail.smtp_port, timeout=10) as s:
        s.starttls(context=client_context(tmail))
        s.ehlo("client.example.net")
        s.mail("someone@elsewhere.test")
        code, text = s.rcpt("victim@elsewhere.test")
        assert (code, text[:5]) == (554, b"5.7.1")


# ---- submission ----------------------------------------------------------

def test_submission_requires_tls_then_auth(tmail):
    with Smtp(tmail.submission_port) as s:
        r = s.ehlo()
        assert "STARTTLS" in r.lines and not any(line.startswith("AUTH") for line in r.lines)
        plain = base64.b64encode(f"\0alice@{DOMAIN}\0{PASSWORD}".encode()).decode()
        r = s.cmd(f"AUTH PLAIN {plain}")
        assert r.is_(530, "5.7.0") and "STARTTLS" in r.text, r
        r = s.cmd("MAIL FROM:<alice@example.test>")
        assert r.is_(530, "5.7.0"), r
    with TlsSMTP("127.0.0.1", tmail.submission_port, timeout=10) as s:
        s.starttls(context=client_context(tmail))
        s.ehlo("client.example.net")
        assert s.has_extn("auth")
        assert set(s.esmtp_features["auth"].split()) == {"PLAIN", "LOGIN", "SCRAM-SHA-256"}
        code, text = s.mail("alice@example.test")
        assert (code, text[:5]) == (530, b"5.7.0"), (code, text)


def test_submission_wrong_password(tmail):
    with TlsSMTP("127.0.0.1", tmail.submission_port, timeout=10) as s:
        s.starttls(context=client_context(tmail))
        s.ehlo("client.example.net")
        with pytest.raises(smtplib.SMTPAuthenticationError) as e:
            s.login("alice@example.test", "not-the-password")
        assert e.value.smtp_code == 535 and e.value.smtp_error.startswith(b"5.7.8")
        # an unknown user gets exactly the same answer
        with pytest.raises(smtplib.SMTPAuthenticationError) as e2:
            s.login("nobody@example.test", "not-the-password")
        assert (e2.value.smtp_code, e2.value.smtp_error) == (e.value.smtp_code, e.value.smtp_error)


@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN"])
def test_submission_sends_anywhere(tmail, mech):
    with TlsSMTP("127.0.0.1", tmail.submission_port, timeout=10) as s:
        s.starttls(context=client_context(tmail))
        s.ehlo("client.example.net")
        s.user, s.password = "alice@example.test", PASSWORD
        code, _ = s.auth(mech, getattr(s, "auth_" + mech.lower()))
        assert code == 235
        # a foreign sender is refused
        code, text = s.mail("president@elsewhere.test")
        assert (code, text[:5]) == (553, b"5.7.1"), (code, text)
        s.rset()
        refused = s.sendmail("alice@example.test", ["bob@example.test", "friend@remote.test"],
                             message("alice@example.test", "bob@example.test", f"sub {mech}"))
        assert refused == {}
    data = wait_messages(tmail, "bob")[0].decode()
    assert "(Authenticated sender: alice@example.test)" in data
    assert "with ESMTPSA id" in data
    # the remote recipient waits in the queue for outbound delivery
    r = tmail.mailctl("queue", "list", "--rcpt", "friend@remote.test")
    assert r.returncode == 0 and "1 message" in r.stdout and "alice@example.test" in r.stdout, r.stdout
    assert log_lines(tmail, rf"client=\S+, sasl_method={mech}, sasl_username=alice@example\.test")


def test_submission_alias_is_an_owned_sender(tmail):
    # info@ reaches bob: bob may send as info@, alice may not
    for user, ok in (("bob", True), ("alice", False)):
        with TlsSMTP("127.0.0.1", tmail.submission_port, timeout=10) as s:
            s.starttls(context=client_context(tmail))
            s.ehlo("client.example.net")
            s.login(f"{user}@example.test", PASSWORD)
            code, _ = s.mail("info@example.test")
            assert (code == 250) == ok, (user, code)


def test_swaks_submission(tmail):
    r = subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(tmail.submission_port), "-tls",
                        "--tls-verify", "--tls-ca-path", str(tmail.ca.cert), "--tls-sni", HOSTNAME,
                        "--auth", "PLAIN", "--auth-user", "carol@example.test", "--auth-password", PASSWORD,
                        "--from", "carol@example.test", "--to", "bob@example.test",
                        "--header", "Subject: swaks over 587", "--helo", "client.example.net"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "235 2.7.0" in r.stdout
    data = wait_messages(tmail, "bob")[0].decode()
    assert "Subject: swaks over 587" in data and "Authenticated sender: carol@example.test" in data


# ---- smtps (465) -----------------------------------------------------------

def test_smtps_implicit_tls(tmail):
    with TlsSMTP_SSL("127.0.0.1", tmail.smtps_port, timeout=10, context=client_context(tmail)) as s:
        s.ehlo("client.example.net")
        assert not s.has_extn("starttls")
        s.login("dave@example.test", PASSWORD)
        s.sendmail("dave@example.test", ["carol@example.test"], message("dave@example.test", "carol@example.test"))
    data = wait_messages(tmail, "carol")[0].decode()
    assert "with ESMTPSA id" in data and "(using TLSv1." in data


def test_smtps_refuses_plaintext(tmail):
    with socket.create_connection(("127.0.0.1", tmail.smtps_port), timeout=10) as sock:
        sock.sendall(b"EHLO client.example.net\r\n")
        # no greeting in clear; the handshake fails and the server closes
        data = b""
        try:
            while chunk := sock.recv(65536):
                data += chunk
        except ConnectionResetError:
            pass  # closed with our EHLO unread
        assert not data.startswith(b"220"), data


# ---- SNI ----------------------------------------------------------------

def served_subject(port, servername=None, starttls=False):
    cmd = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}"]
    if servername:
        cmd += ["-servername", servername]
    else:
        cmd += ["-noservername"]
    if starttls:
        cmd += ["-starttls", "smtp"]
    r = subprocess.run(cmd, input="QUIT\n", capture_output=True, text=True, timeout=30)
    m = re.search(r"^subject=.*CN\s*=\s*(\S+)", r.stdout, re.M)
    assert m, r.stdout + r.stderr
    return m.group(1)


def test_sni_selects_the_certificate(tmail):
    assert served_subject(tmail.smtps_port, OTHER) == OTHER
    assert served_subject(tmail.smtps_port, HOSTNAME) == HOSTNAME
    assert served_subject(tmail.smtps_port) == HOSTNAME           # no SNI: the default
    assert served_subject(tmail.smtps_port, "unknown.test") == HOSTNAME
    assert served_subject(tmail.submission_port, OTHER, starttls=True) == OTHER


def test_tls_1_1_refused(tmail):
    # a client that would speak TLS 1.1 (its own security level lowered so
    # that it does offer it): the server refuses, and says why in the log
    r = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{tmail.smtps_port}", "-tls1_1",
                        "-cipher", "DEFAULT@SECLEVEL=0"], input="", capture_output=True, text=True, timeout=30)
    assert "Cipher is (NONE)" in r.stdout or r.returncode != 0, r.stdout
    assert "BEGIN CERTIFICATE" not in r.stdout
    tmail.wait_for_log(r"TLS error from \S+: .*(unsupported protocol|no protocols available|version)", 10)


# ---- the STARTTLS injection (CVE-2011-0411 class) ----------------------------

def test_starttls_injection_discarded(tmail):
    with Smtp(tmail.smtp_port) as s:
        s.ehlo()
        # the attacker's RSET rides in the same packet as STARTTLS
        s.send(b"STARTTLS\r\nMAIL FROM:<injected@evil.test>\r\n")
        r = s.reply()
        assert r.is_(220, "2.0.0"), r
        assert s.buf == b""
        tls = client_context(tmail).wrap_socket(s.sock, server_hostname=HOSTNAME)
        tls.sendall(b"EHLO client.example.net\r\n")
        first = tls.recv(65536)
        while not re.search(rb"^250 ", first, re.M):
            first += tls.recv(65536)
        # the first thing over TLS answers our EHLO, not an injected command
        assert first.startswith(b"250-" + HOSTNAME.encode()), first
        tls.sendall(b"RCPT TO:<bob@example.test>\r\n")
        r = tls.recv(65536)
        assert r.startswith(b"503 5.5.1"), r  # no MAIL survived the handshake
        tls.close()
    assert log_lines(tmail, r"discarded 32 octets sent after STARTTLS")


# ---- start-up checks -------------------------------------------------------

def test_missing_certificate_stops_startup(tls_mail, instance):
    setup_mail(instance)
    add_tls(instance, HOSTNAME)
    missing = instance.base / "tls" / "missing.pem"
    instance.params["tls_cert_file"] = str(missing)
    instance.write_config()
    r = instance.mailctl_start()
    assert r.returncode != 0
    out = r.stdout + r.stderr + instance.log()
    assert str(missing) in out, out


def test_mismatched_key_stops_startup(tls_mail, instance):
    setup_mail(instance)
    ca = add_tls(instance, HOSTNAME)
    _, other_key = ca.issue("other.example.test")
    instance.params["tls_key_file"] = str(other_key)
    instance.write_config()
    r = instance.mailctl_start()
    assert r.returncode != 0
    out = r.stdout + r.stderr + instance.log()
    assert str(other_key) in out and "does not match" in out, out


# ---- secrets stay secret ----------------------------------------------------

def test_no_plaintext_password_anywhere(tmail):
    for user, password, ok in (("alice", PASSWORD, True), ("bob", PASSWORD + "-wrong", False)):
        with TlsSMTP("127.0.0.1", tmail.submission_port, timeout=10) as s:
            s.starttls(context=client_context(tmail))
            s.ehlo("client.example.net")
            if ok:
                s.login(f"{user}@example.test", password)
            else:
                with pytest.raises(smtplib.SMTPAuthenticationError):
                    s.login(f"{user}@example.test", password)
    wait_until(lambda: log_lines(tmail, r"auth failed"), 5, what="the failed login in the log")
    needle = PASSWORD.encode()
    for path in [p for d in (tmail.data_dir, tmail.base) for p in d.rglob("*") if p.is_file()]:
        if "tls" in path.parts:
            continue
        try:
            assert needle not in path.read_bytes(), path
        except PermissionError:
            pass
    assert PASSWORD not in tmail.log()


# ---- throttling through SMTP ---------------------------------------------------

def test_repeated_failures_are_refused(tls_mail):
    inst = tls_mail(auth_delay_after=2, auth_failure_delay="1s", auth_block_after=3, auth_block_time="10m")
    inst.wait_service("submission")
    with TlsSMTP("127.0.0.1", inst.submission_port, timeout=30) as s:
        s.starttls(context=client_context(inst))
        s.ehlo("client.example.net")
        for _ in range(3):
            with pytest.raises(smtplib.SMTPAuthenticationError):
                s.login("alice@example.test", "wrong")
        # blocked now: even the right password is refused, temporarily
        with pytest.raises(smtplib.SMTPAuthenticationError) as e:
            s.login("alice@example.test", PASSWORD)
        assert e.value.smtp_code == 454 and e.value.smtp_error.startswith(b"4.7.0")
    assert log_lines(inst, r"auth failed: service=smtp, user=<alice@example\.test>, rip=127\.0\.0\.1")


# ---- SCRAM-SHA-256 through SMTP, and AUTH on port 25 ---------------------------

def test_scram_over_submission(tmail):
    from test_auth_sasl import Scram  # the RFC 5802 client side

    with Smtp(tmail.submission_port) as s:
        s.ehlo()
        assert s.cmd("STARTTLS").is_(220, "2.0.0")
        s.sock = client_context(tmail).wrap_socket(s.sock, server_hostname=HOSTNAME)
        r = s.ehlo()
        assert any(line.startswith("AUTH ") and "SCRAM-SHA-256" in line.split() for line in r.lines), r
        scram = Scram("carol@example.test", PASSWORD)
        r = s.cmd("AUTH SCRAM-SHA-256 " + base64.b64encode(scram.first()).decode())
        assert r.code == 334, r
        r = s.cmd(base64.b64encode(scram.final(base64.b64decode(r.text))).decode())
        assert r.code == 334, r
        scram.verify(base64.b64decode(r.text))  # the server proved it knows the verifier
        r = s.cmd("")  # the client's empty answer to the server's final message
        assert r.is_(235, "2.7.0"), r
        assert s.cmd("MAIL FROM:<carol@example.test>").is_(250, "2.1.0")
    # a wrong password fails at the proof, with the usual answer
    with Smtp(tmail.submission_port) as s:
        s.ehlo()
        s.cmd("STARTTLS")
        s.sock = client_context(tmail).wrap_socket(s.sock, server_hostname=HOSTNAME)
        s.ehlo()
        scram = Scram("carol@example.test", "wrong")
        r = s.cmd("AUTH SCRAM-SHA-256 " + base64.b64encode(scram.first()).decode())
        r = s.cmd(base64.b64encode(scram.final(base64.b64decode(r.text))).decode())
        assert r.is_(535, "5.7.8"), r


def test_auth_on_mx_when_configured(tls_mail):
    inst = tls_mail(smtpd_auth_on_mx="yes")
    with TlsSMTP("127.0.0.1", inst.smtp_port, timeout=10) as s:
        s.ehlo("client.example.net")
        assert not s.has_extn("auth")  # not before TLS
        s.starttls(context=client_context(inst))
        s.ehlo("client.example.net")
        assert s.has_extn("auth")
        # offered, never required: mail for a hosted user goes in as before
        assert s.mail("someone@elsewhere.test")[0] == 250
        assert s.rcpt("bob@example.test")[0] == 250
        s.rset()
        # and a login there relays
        s.login("alice@example.test", PASSWORD)
        assert s.mail("alice@example.test")[0] == 250
        assert s.rcpt("friend@remote.test")[0] == 250
