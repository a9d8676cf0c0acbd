"""mailfix.py - the inbound mail path under master, for the end-to-end
tests: smtpd (on a free 127.0.0.1 port) -> qmgr -> local (Maildir), with
auth answering the recipient lookups from tables written by mailctl.

    make_mail(**params)   a started instance with the four services, the
                          hosted domain example.test, its users and aliases
                          (params go to yubin.conf); the `mail` fixture is
                          make_mail() with the defaults
    Smtp                  a raw SMTP client: bytes out exactly as given,
                          replies parsed into (code, lines)

Everything an operator does goes through mailctl; the tests only read the
log, the sockets and the Maildirs."""
import os
import re
import socket
import subprocess

import pytest

import harness
from harness import service_line, wait_until

PROGRAMS = ("smtpd", "qmgr", "local", "auth")
DOMAIN = "example.test"
HOSTNAME = "mx.example.test"

# Users of example.test (quota None: unlimited), and aliases.
USERS = {"alice": None, "bob": None, "carol": None, "dave": None}
ALIASES = {
    "info": ["bob@example.test"],
    "team": ["bob@example.test", "carol@example.test"],
    "sales": ["carol@example.test"],
    "ghost": ["nobody@example.test"],  # its only target, in a hosted domain, is nobody
    "mixed": ["carol@example.test", "nobody@example.test"],  # one good target, one that is nobody
    "mixed2": ["dave@example.test", "nobody2@example.test"],
}

REPLY_RE = re.compile(rb"^(\d{3})([ -])(.*)$")


def program_path(name):
    return harness.BUILD_DIR / name / name


def missing_programs():
    return [str(program_path(p)) for p in PROGRAMS if not os.access(program_path(p), os.X_OK)]


def mailctl_input(inst, *args, input_text=None, timeout=60):
    """mailctl -c CONFIG ARGS with input_text on stdin (harness.mailctl
    gives it /dev/null, and --password-stdin needs a line)."""
    cmd = [str(harness.MAILCTL), "-c", str(inst.config_dir), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          input=input_text if input_text is not None else "")


def must(r, what):
    assert r.returncode == 0, f"{what}: exit {r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}"
    return r


def add_domain(inst, domain=DOMAIN):
    return must(inst.mailctl("domain", "add", domain), f"domain add {domain}")


PASSWORD = "Secret-pass-1"  # every test user's


def add_user(inst, address, quota=None, check=True):
    args = ["user", "add", address, "--password-stdin"]
    if quota is not None:
        args += ["--quota", str(quota)]
    r = mailctl_input(inst, *args, input_text=PASSWORD + "\n")
    return must(r, f"user add {address}") if check else r


def add_alias(inst, alias, *targets, check=True):
    r = inst.mailctl("alias", "add", alias, *targets)
    return must(r, f"alias add {alias}") if check else r


def setup_mail(inst, users=None, aliases=None, **params):
    """Configure inst for the inbound path (not started yet)."""
    for p in PROGRAMS:
        link = inst.daemon_dir / p
        if not link.exists() and not link.is_symlink():
            link.symlink_to(program_path(p))
    inst.mail_root = inst.base / "mail"
    inst.smtp_port = inst.new_port()
    inst.params.update({
        "mail_root": str(inst.mail_root),
        "mailbox_owner": inst.user,
        "auth_owner": inst.user,
        "myhostname": HOSTNAME,
        "queue_minfree": "0",
    })
    inst.params.update({k: str(v) for k, v in params.items()})
    inst.set_services(
        smtpd=service_line("smtpd", f"127.0.0.1:{inst.smtp_port}", procs=2, program="smtpd"),
        qmgr=service_line("qmgr", "qmgr,qmgr-control", procs=1, program="qmgr", type_="unix"),
        local=service_line("local", "local", procs=2, program="local", type_="unix",
                           user="${mailbox_owner}", chroot="-"),
        auth=service_line("auth", "auth,sasl", procs=1, program="auth", type_="unix",
                          user="${auth_owner}", chroot="${data_directory}"),
        pickup=service_line("pickup", "public/pickup", procs=1, program="smtpd", type_="unix"),
    )
    add_domain(inst)
    for user, quota in (USERS if users is None else users).items():
        add_user(inst, f"{user}@{DOMAIN}", quota)
    for alias, targets in (ALIASES if aliases is None else aliases).items():
        add_alias(inst, f"{alias}@{DOMAIN}", *targets)
    return inst


def start_mail(inst):
    inst.start()
    for p in PROGRAMS:
        inst.wait_service(p)
    return inst


@pytest.fixture
def make_mail(instance):
    missing = missing_programs()
    if missing:
        pytest.skip("not built: " + ", ".join(missing))

    def make(users=None, aliases=None, start=True, **params):
        setup_mail(instance, users=users, aliases=aliases, **params)
        if start:
            start_mail(instance)
        return instance
    return make


@pytest.fixture
def mail(make_mail):
    return make_mail()


# ---- mailboxes --------------------------------------------------------

def maildir(inst, user, domain=DOMAIN):
    return inst.mail_root / domain / user / "Maildir"


def messages(inst, user, domain=DOMAIN):
    """The files in user's Maildir/new, oldest first, as bytes."""
    new = maildir(inst, user, domain) / "new"
    if not new.is_dir():
        return []
    paths = sorted(new.iterdir(), key=lambda p: (p.stat().st_mtime_ns, p.name))
    return [p.read_bytes() for p in paths]


def wait_messages(inst, user, count=1, timeout=10.0, domain=DOMAIN):
    """Wait until user has at least count messages in new/; return them."""
    return wait_until(lambda: (m := messages(inst, user, domain)) and len(m) >= count and m,
                      timeout, what=f"{count} message(s) in {user}@{domain}'s Maildir/new")


def wait_removed(inst, queue_id, timeout=10.0):
    """Wait until qmgr logged that queue_id is done (envelope removed)."""
    return inst.wait_for_log(rf"qmgr\[\d+\]: {re.escape(queue_id)}: removed\b", timeout)


def log_lines(inst, pattern):
    rx = re.compile(pattern)
    return [line for line in inst.log().splitlines() if rx.search(line)]


# ---- the SMTP client --------------------------------------------------

class Reply:
    """One SMTP reply: code (int) and its lines (text after "NNN-"/"NNN ")."""

    def __init__(self, code, lines, raw):
        self.code, self.lines, self.raw = code, lines, raw

    @property
    def text(self):
        return self.lines[-1]

    @property
    def enhanced(self):
        m = re.match(r"(\d\.\d{1,3}\.\d{1,3})\b", self.lines[-1])
        return m.group(1) if m else None

    def __repr__(self):
        return f"Reply({self.raw!r})"

    def is_(self, code, enhanced=None):
        return self.code == code and (enhanced is None or self.enhanced == enhanced)


class Smtp:
    def __init__(self, port, timeout=10.0, host="127.0.0.1"):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.settimeout(timeout)
        self.buf = b""
        self.greeting = self.reply()

    # raw I/O
    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _line(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError(f"connection closed (pending {self.buf!r})")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line + b"\n"

    def reply(self):
        """Read one (possibly multi-line) reply."""
        lines, raw, code = [], b"", None
        while True:
            line = self._line()
            raw += line
            m = REPLY_RE.match(line.rstrip(b"\r\n"))
            assert m and line.endswith(b"\r\n"), f"malformed reply line {line!r} (so far {raw!r})"
            if code is None:
                code = int(m.group(1))
            assert int(m.group(1)) == code, f"code changed inside a reply: {raw!r}"
            lines.append(m.group(3).decode("utf-8", "replace"))
            if m.group(2) == b" ":
                return Reply(code, lines, raw)

    def cmd(self, line):
        self.send(line.encode() + b"\r\n" if isinstance(line, str) else line + b"\r\n")
        return self.reply()

    def ehlo(self, name="client.example.net"):
        r = self.cmd(f"EHLO {name}")
        assert r.code == 250, r
        return r

    def read_eof(self, timeout=5.0):
        """Whatever is left until the server closes; raises if it does not."""
        self.sock.settimeout(timeout)
        data, self.buf = self.buf, b""
        while True:
            chunk = self.sock.recv(65536)
            if not chunk:
                return data
            data += chunk

    def no_more_replies(self, wait=0.3):
        """True if nothing more arrives within `wait` seconds."""
        if self.buf:
            return False
        self.sock.settimeout(wait)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            return True
        finally:
            self.sock.settimeout(10.0)
        self.buf += chunk
        return False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


BODY_SMALL = b"Subject: small\r\n\r\nsmall message\r\n"


def queued_id(reply):
    m = re.fullmatch(r"2\.0\.0 Ok: queued as (\S+)", reply.text)
    assert reply.code == 250 and m, f"not queued: {reply!r}"
    return m.group(1)


def send_message(inst, rcpts, body, sender="alice@example.test", mail_params="", ehlo="client.example.net"):
    """One plain DATA transaction; body is raw bytes (CRLF, stuffed,
    without the final dot). Returns the queue ID."""
    if isinstance(rcpts, str):
        rcpts = [rcpts]
    with Smtp(inst.smtp_port) as s:
        s.ehlo(ehlo)
        r = s.cmd(f"MAIL FROM:<{sender}>{mail_params}")
        assert r.is_(250, "2.1.0"), r
        for rcpt in rcpts:
            r = s.cmd(f"RCPT TO:<{rcpt}>")
            assert r.is_(250, "2.1.5"), (rcpt, r)
        r = s.cmd("DATA")
        assert r.code == 354, r
        s.send(body + b".\r\n")
        qid = queued_id(s.reply())
        assert s.cmd("QUIT").is_(221, "2.0.0")
    return qid


# ---- what a delivered message looks like -------------------------------

RECEIVED_RE = (rb"Received: from (?P<helo>\S+) \(unknown \[127\.0\.0\.1\]\)\n"
               rb"\tby mx\.example\.test \(Yubin\) with (?P<proto>[A-Z0-9]+) id (?P<id>\S+)"
               rb"(?:\n\tfor <(?P<for>[^>]*)>;|;\n\t)"
               rb" ?(?P<date>[A-Z][a-z]{2}, \d{1,2} [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d [+-]\d{4})\n")


def split_delivered(data):
    """A delivered file: (Return-Path, X-Original-To, Delivered-To,
    Received match, rest) - asserting the order and shape."""
    m = re.match(rb"Return-Path: <(?P<rp>[^>]*)>\nX-Original-To: (?P<xot>[^\n]*)\n"
                 rb"Delivered-To: (?P<dt>[^\n]*)\n" + RECEIVED_RE, data)
    assert m, f"delivered message does not start with the expected headers:\n{data[:600]!r}"
    return m, data[m.end():]


def expect_delivery(data, *, sender, orig_to, delivered_to, qid, message, proto=b"ESMTP",
                    helo=b"client.example.net", rcpt_for=None):
    """Assert the whole delivered file, byte for byte apart from the date."""
    m, rest = split_delivered(data)
    got = {k: m.group(k) for k in ("rp", "xot", "dt", "helo", "proto", "id", "for")}
    want = {"rp": sender, "xot": orig_to, "dt": delivered_to, "helo": helo, "proto": proto,
            "id": qid, "for": rcpt_for}
    got = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in got.items()}
    want = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in want.items()}
    assert got == want, f"added headers differ:\n got {got}\nwant {want}\nfile {data[:400]!r}"
    assert rest == message, f"message body differs:\n got {rest!r}\nwant {message!r}"

