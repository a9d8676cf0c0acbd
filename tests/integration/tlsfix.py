"""tlsfix.py - a test certificate authority made by the tests, and
certificates it signs, with the openssl command line tool.

    make_ca(dir)                       CA certificate and key in dir
    make_cert(ca, dir, name, *alt)     a server certificate for name
    add_tls(inst, ...)                 certificates and TLS services for a
                                       mail instance (mailfix.setup_mail)
"""
import subprocess
from pathlib import Path

from harness import service_line


def openssl(*args, cwd=None):
    r = subprocess.run(["openssl", *args], capture_output=True, text=True, cwd=cwd)
    assert r.returncode == 0, f"openssl {' '.join(args)}: {r.stderr}"
    return r.stdout


class CA:
    def __init__(self, directory):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.key = self.dir / "ca.key"
        self.cert = self.dir / "ca.pem"
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", str(self.key), "-out", str(self.cert), "-days", "2",
                "-subj", "/CN=Yubin test CA", "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign")

    def issue(self, name, *alt_names):
        """A certificate for name (CN and subjectAltName) and its key."""
        key = self.dir / f"{name}.key"
        csr = self.dir / f"{name}.csr"
        cert = self.dir / f"{name}.pem"
        ext = self.dir / f"{name}.ext"
        ext.write_text("subjectAltName=" + ",".join(f"DNS:{n}" for n in (name, *alt_names)) + "\n"
                       "extendedKeyUsage=serverAuth\n")
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={name}")
        openssl("x509", "-req", "-in", str(csr), "-CA", str(self.cert), "-CAkey", str(self.key),
                "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(ext))
        key.chmod(0o600)
        return cert, key


def add_tls(inst, hostname, sni_names=()):
    """Certificates for hostname (and one per SNI name) from a new CA, set
    in yubin.conf; services submission and smtps beside smtpd. Call after
    mailfix.setup_mail, before starting. Returns the CA."""
    ca = CA(inst.base / "tls")
    cert, key = ca.issue(hostname)
    inst.params.update({"tls_cert_file": str(cert), "tls_key_file": str(key)})
    if sni_names:
        lines = []
        for name in sni_names:
            c, k = ca.issue(name)
            lines.append(f"{name} {c} {k}")
        sni_map = inst.base / "tls" / "sni.map"
        sni_map.write_text("# SNI names and their certificates\n" + "\n".join(lines) + "\n")
        inst.params["tls_sni_map"] = str(sni_map)
    inst.submission_port = inst.new_port()
    inst.smtps_port = inst.new_port()
    inst.services["submission"] = service_line("submission", f"127.0.0.1:{inst.submission_port}", procs=1,
                                               program="smtpd")
    inst.services["smtps"] = service_line("smtps", f"127.0.0.1:{inst.smtps_port}", procs=1, program="smtpd")
    inst.write_config()
    return ca
