"""postfixfix.py - a private Postfix instance (Debian's postfix package,
`postfix -c DIR`) for interop tests: its own queue, data and config
directories, smtpd on 127.0.0.1 and a free port, virtual(8) Maildir
delivery for the domains given, an optional relayhost; started and
stopped by the test, never the system's Postfix.

    pf = PostfixInstance(base, port, domains={"remote.test": ["someone"]},
                         relayhost="[127.0.0.1]:2525")
    pf.start(); pf.maildir("remote.test", "someone"); pf.stop()
"""
import grp
import os
import pwd
import shutil
import subprocess
import time
from pathlib import Path


def have_postfix():
    return shutil.which("postfix") is not None and shutil.which("postconf") is not None


class PostfixInstance:
    def __init__(self, base, port, domains=None, relayhost=""):
        self.base = Path(base)
        self.port = port
        self.etc, self.spool, self.data = self.base / "etc", self.base / "spool", self.base / "data"
        self.mail_root, self.log = self.base / "mail", self.base / "postfix.log"
        for d in (self.base, self.etc, self.spool, self.data, self.mail_root):
            d.mkdir(parents=True, exist_ok=True)
            d.chmod(0o755)
        postfix_uid = pwd.getpwnam("postfix").pw_uid
        os.chown(self.data, postfix_uid, -1)
        nobody = pwd.getpwnam("nobody")
        os.chown(self.mail_root, nobody.pw_uid, grp.getgrnam("nogroup").gr_gid)
        domains = domains or {}
        (self.etc / "vmailbox").write_text("".join(f"{u}@{d} {d}/{u}/Maildir/\n" for d, users in domains.items()
                                                   for u in users))
        main = {
            "compatibility_level": "3.6",
            "queue_directory": self.spool,
            "data_directory": self.data,
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "myhostname": "mx.remote.test",
            "mydestination": "",
            "mynetworks": "127.0.0.0/8",
            "relay_domains": "",
            "alias_maps": "",
            "alias_database": "",
            "local_recipient_maps": "",
            "relayhost": relayhost,
            "smtp_tls_security_level": "may",
            "virtual_mailbox_domains": " ".join(domains) or "",
            "virtual_mailbox_base": self.mail_root,
            "virtual_mailbox_maps": f"texthash:{self.etc / 'vmailbox'}",
            "virtual_uid_maps": f"static:{nobody.pw_uid}",
            "virtual_gid_maps": f"static:{grp.getgrnam('nogroup').gr_gid}",
            "maillog_file": self.log,
            "maillog_file_prefixes": self.base,
            "smtp_host_lookup": "native",
        }
        (self.etc / "main.cf").write_text("".join(f"{k} = {v}\n" for k, v in main.items()))
        (self.etc / "master.cf").write_text(f"""\
127.0.0.1:{port} inet n - n - 20 smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
""")
        subprocess.run(["postfix", "-c", str(self.etc), "check"], check=True, capture_output=True)

    def start(self):
        subprocess.run(["postfix", "-c", str(self.etc), "start"], check=True, capture_output=True)
        deadline = time.monotonic() + 20
        import socket
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("postfix did not start listening")

    def stop(self):
        subprocess.run(["postfix", "-c", str(self.etc), "stop"], capture_output=True)

    def maildir_messages(self, domain, user):
        new = self.mail_root / domain / user / "Maildir" / "new"
        return [p.read_bytes() for p in sorted(new.iterdir())] if new.is_dir() else []

    def log_text(self):
        return self.log.read_text(errors="replace") if self.log.exists() else ""
