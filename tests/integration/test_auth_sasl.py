"""SASL logins in the auth daemon under master: the auth-sasl protocol
(auth/PROTOCOL.md) over its real socket, with users written by mailctl.
PLAIN, LOGIN, and SCRAM-SHA-256 computed here from the RFCs (hashlib and
hmac); failures that look alike; throttling, measured; the fail2ban line;
no password stored or logged anywhere; "mailctl user test-login"; the
sender check on auth-lookup; and (as root) the random device in the jail."""
import base64
import hashlib
import hmac
import os
import re
import secrets
import stat
import subprocess
import time

import pytest

import ipc
from harness import IS_ROOT, MAILCTL, service_line
from test_auth import auth_built  # noqa: F401  (skips when auth is not built)
from test_tables import AUTH_USER, ensure_auth_user, read_table

SASL = "auth-sasl"
LOOKUP = "auth-lookup"
PASSWORD = "Tr0ub4dor&3 correct-horse"  # unusual enough to grep for
OTHER_PASSWORD = "carol's own p4ssword"

# auth logs through master into the instance's log file.
FAILED_RE = re.compile(r"auth\[\d+\]: warning: auth failed: service=(\S+), user=<([^>]*)>, rip=([0-9a-fA-F.:]+), "
                       r"mech=(\S+), reason=(.*)$", re.M)


def configure(inst, **params):
    """auth with both listeners, as master.conf ships it."""
    if IS_ROOT:
        ensure_auth_user()
        inst.params["auth_owner"] = AUTH_USER
    else:
        inst.params["auth_owner"] = inst.user
    inst.params["mail_root"] = str(inst.base / "mail")
    inst.params["auth_failure_delay"] = "1s"
    inst.params.update(params)
    inst.set_services(auth=service_line("auth", "auth,sasl", procs=1, program="auth", type_="unix",
                                        user="${auth_owner}", chroot="${data_directory}"))
    return inst


def ctl(inst, *args, password=None, check=True):
    cmd = [str(MAILCTL), "-c", str(inst.config_dir), *args]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60,
                       input=None if password is None else password + "\n",
                       stdin=subprocess.DEVNULL if password is None else None)
    if check:
        assert r.returncode == 0, (args, r.returncode, r.stderr)
    return r


def populate(inst):
    ctl(inst, "domain", "add", "example.com")
    ctl(inst, "domain", "add", "example.org")
    ctl(inst, "user", "add", "bob@example.com", "--password-stdin", password=PASSWORD)
    ctl(inst, "user", "add", "alice@example.com", "--disable", "--password-stdin", password=PASSWORD)
    ctl(inst, "user", "add", "carol@example.org", "--password-stdin", password=OTHER_PASSWORD)
    ctl(inst, "user", "add", "dave@example.org", "--password-stdin", password=OTHER_PASSWORD)
    ctl(inst, "alias", "add", "info@example.com", "bob@example.com", "alice@example.com")
    ctl(inst, "alias", "add", "@example.org", "carol@example.org")


def start(inst):
    inst.start()
    inst.wait_service("auth")
    return inst


@pytest.fixture
def sasl(instance):
    """A running instance: auth with the users above, default limits
    (delay after 3 failures, block after 10), a 1s delay."""
    configure(instance)
    populate(instance)
    return start(instance)


def client(inst, protocol=SASL):
    name = "sasl" if protocol == SASL else "auth"
    return ipc.Client(inst.queue_dir / "private" / name, protocol, timeout=30)


# -- the protocol, as smtpd speaks it ------------------------------------

def mechs(c, secure, service="smtp"):
    return dict(c.request([("cmd", "mechs"), ("service", service), ("secure", secure)]))


def start_req(c, session, mech, response=None, client_ip="192.0.2.1", secure=1, service="smtp"):
    fields = [("cmd", "start"), ("session", session), ("service", service), ("mech", mech),
              ("client", client_ip), ("secure", secure)]
    if response is not None:
        fields.append(("response", bytes(response)))
    return dict(c.request(fields))


def step(c, session, response):
    return dict(c.request([("cmd", "step"), ("session", session), ("response", bytes(response))]))


def cancel(c, session):
    return dict(c.request([("cmd", "cancel"), ("session", session)]))


def plain(user, password, authzid=""):
    return f"{authzid}\0{user}\0{password}".encode()


def plain_login(c, user, password, client_ip="192.0.2.1", session=1, secure=1):
    return start_req(c, session, "PLAIN", plain(user, password), client_ip=client_ip, secure=secure)


class Scram:
    """The client side of SCRAM-SHA-256 (RFC 5802, RFC 7677)."""

    def __init__(self, user, password):
        self.user, self.password = user, password
        self.nonce = base64.b64encode(secrets.token_bytes(18)).decode()
        self.bare = f"n={user.replace('=', '=3D').replace(',', '=2C')},r={self.nonce}"

    def first(self):
        return ("n,," + self.bare).encode()

    def final(self, server_first):
        attrs = dict(kv.split("=", 1) for kv in server_first.decode().split(","))
        assert attrs["r"].startswith(self.nonce) and len(attrs["r"]) > len(self.nonce), attrs
        self.server_nonce = attrs["r"]
        salt, iterations = base64.b64decode(attrs["s"]), int(attrs["i"])
        assert iterations >= 4096
        salted = hashlib.pbkdf2_hmac("sha256", self.password.encode(), salt, iterations)
        client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
        stored_key = hashlib.sha256(client_key).digest()
        without_proof = f"c=biws,r={self.server_nonce}"
        auth_message = f"{self.bare},{server_first.decode()},{without_proof}".encode()
        signature = hmac.new(stored_key, auth_message, hashlib.sha256).digest()
        proof = bytes(a ^ b for a, b in zip(client_key, signature))
        server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
        self.server_signature = hmac.new(server_key, auth_message, hashlib.sha256).digest()
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()

    def verify(self, server_final):
        assert server_final.decode() == "v=" + base64.b64encode(self.server_signature).decode()


def scram_login(c, user, password, client_ip="192.0.2.1", session=1, secure=0):
    """The whole exchange; returns (final reply, rounds)."""
    s = Scram(user, password)
    r = start_req(c, session, "SCRAM-SHA-256", s.first(), client_ip=client_ip, secure=secure)
    if r["result"] != "continue":
        return r, 0
    r = step(c, session, s.final(r["challenge"]))
    if r["result"] != "continue":
        return r, 1
    s.verify(r["challenge"])  # the server knows the secret too
    return step(c, session, b""), 2


# -- tests -----------------------------------------------------------------

def test_mechs(sasl):
    with client(sasl) as c:
        assert mechs(c, 1) == {"result": "ok", "mechs": "PLAIN LOGIN SCRAM-SHA-256"}
        assert mechs(c, 0) == {"result": "ok", "mechs": "SCRAM-SHA-256"}
        assert mechs(c, 1, service="imap")["mechs"] == "PLAIN LOGIN SCRAM-SHA-256"
        assert mechs(c, 0, service="pop")["mechs"] == "SCRAM-SHA-256"
        bad = mechs(c, 1, service="ftp")
        assert bad["result"] == "temp" and "unknown service" in bad["reason"]


def test_plain(sasl):
    with client(sasl) as c:
        assert plain_login(c, "bob@example.com", PASSWORD) == {"result": "ok", "user": "bob@example.com"}
        assert plain_login(c, "BOB@Example.COM", PASSWORD) == {"result": "ok", "user": "bob@example.com"}
        # the same identity as authzid is fine; someone else's is not
        r = start_req(c, 2, "plain", plain("bob@example.com", PASSWORD, "Bob@example.com"))
        assert r == {"result": "ok", "user": "bob@example.com"}
        r = start_req(c, 3, "PLAIN", plain("bob@example.com", PASSWORD, "carol@example.org"),
                      client_ip="192.0.2.99")
        assert r["result"] == "fail"
        # without an initial response: an empty challenge, then the response
        assert start_req(c, 4, "PLAIN") == {"result": "continue", "challenge": b""}
        assert step(c, 4, plain("bob@example.com", PASSWORD)) == {"result": "ok", "user": "bob@example.com"}
        # not over an unencrypted connection
        assert plain_login(c, "bob@example.com", PASSWORD, secure=0) == {"result": "encrypt"}
        assert start_req(c, 5, "LOGIN", secure=0) == {"result": "encrypt"}


def test_failures_look_alike(sasl):
    """Bad password, unknown user, disabled user: the same answer to the
    network daemon (only the reason, for its log, differs)."""
    cases = [
        ("bob@example.com", "wrong", "bad password"),
        ("nobody@example.com", PASSWORD, "unknown user"),
        ("alice@example.com", PASSWORD, "account disabled"),
        ("bob@elsewhere.net", PASSWORD, "unknown user"),
        ("bob", PASSWORD, "unknown user"),
    ]
    with client(sasl) as c:
        for i, (user, password, reason) in enumerate(cases):
            r = plain_login(c, user, password, client_ip=f"198.51.100.{i + 1}")
            assert sorted(r) == ["reason", "result"] and r["result"] == "fail", (user, r)
            assert r["reason"] == reason, (user, r)
        # unknown mechanisms fail too
        for i, mech in enumerate(("CRAM-MD5", "ANONYMOUS", "SCRAM-SHA-1", "GSSAPI")):
            r = start_req(c, 10 + i, mech, b"x", client_ip=f"198.51.100.{20 + i}")
            assert r["result"] == "fail" and r["reason"] == "mechanism not available", (mech, r)
    # one fail2ban line per failure, with the client's address
    sasl.wait_for_log(r"auth failed: .*rip=198\.51\.100\.5, mech=PLAIN")
    found = {(m.group(2), m.group(3), m.group(5)) for m in FAILED_RE.finditer(sasl.log())}
    for i, (user, _, reason) in enumerate(cases):
        assert (user.lower(), f"198.51.100.{i + 1}", reason) in found, found


def test_login(sasl):
    with client(sasl) as c:
        r = start_req(c, 7, "LOGIN")
        assert r == {"result": "continue", "challenge": b"Username:"}
        r = step(c, 7, b"Bob@Example.com")
        assert r == {"result": "continue", "challenge": b"Password:"}
        assert step(c, 7, PASSWORD.encode()) == {"result": "ok", "user": "bob@example.com"}
        # the initial response is the user name
        r = start_req(c, 8, "login", b"carol@example.org")
        assert r == {"result": "continue", "challenge": b"Password:"}
        r = step(c, 8, b"not it")
        assert r["result"] == "fail" and r["reason"] == "bad password"
        # the session is gone after its verdict
        r = step(c, 8, OTHER_PASSWORD.encode())
        assert r["result"] == "temp" and "unknown session" in r["reason"]


def test_scram(sasl):
    with client(sasl) as c:
        # no TLS needed: the password is never sent
        r, rounds = scram_login(c, "bob@example.com", PASSWORD, secure=0)
        assert r == {"result": "ok", "user": "bob@example.com"} and rounds == 2
        r, _ = scram_login(c, "carol@example.org", OTHER_PASSWORD, secure=1, session=2)
        assert r == {"result": "ok", "user": "carol@example.org"}
        # failures go as far as a wrong password does: server-first, then no
        for i, (user, password, reason) in enumerate([
                ("bob@example.com", "wrong", "bad password"),
                ("nobody@example.com", PASSWORD, "unknown user"),
                ("alice@example.com", PASSWORD, "account disabled")]):
            r, rounds = scram_login(c, user, password, client_ip=f"203.0.113.{i + 1}", session=10 + i)
            assert r["result"] == "fail" and r["reason"] == reason and rounds == 1, (user, r, rounds)
        # an unknown user's salt is stable, like a real user's
        salts = []
        for i in range(2):
            s = Scram("ghost@example.com", "x")
            r = start_req(c, 20 + i, "SCRAM-SHA-256", s.first(), secure=0)
            assert r["result"] == "continue"
            salts.append(dict(kv.split("=", 1) for kv in r["challenge"].decode().split(","))["s"])
            assert cancel(c, 20 + i) == {"result": "ok"}
        assert salts[0] == salts[1]
        # nonces differ between exchanges
        nonces = set()
        for i in range(3):
            s = Scram("bob@example.com", PASSWORD)
            r = start_req(c, 30 + i, "SCRAM-SHA-256", s.first(), secure=0)
            nonces.add(r["challenge"].split(b",")[0][len(b"r=") + len(s.nonce):])
            cancel(c, 30 + i)
        assert len(nonces) == 3


def test_cancel_and_sessions(sasl):
    with client(sasl) as a, client(sasl) as b:
        assert start_req(a, 1, "LOGIN")["result"] == "continue"
        assert start_req(a, 2, "LOGIN")["result"] == "continue"
        # sessions belong to their connection
        r = step(b, 1, b"bob@example.com")
        assert r["result"] == "temp" and "unknown session" in r["reason"]
        # interleaved exchanges on one connection
        assert step(a, 2, b"carol@example.org")["result"] == "continue"
        assert step(a, 1, b"bob@example.com")["result"] == "continue"
        assert step(a, 2, OTHER_PASSWORD.encode()) == {"result": "ok", "user": "carol@example.org"}
        assert cancel(a, 1) == {"result": "ok"}
        r = step(a, 1, PASSWORD.encode())
        assert r["result"] == "temp" and "unknown session" in r["reason"]
        assert cancel(a, 1) == {"result": "ok"}  # again: nothing to do
        # a number reused: the old exchange is dropped, the new one runs
        assert start_req(a, 3, "LOGIN")["result"] == "continue"
        assert start_req(a, 3, "PLAIN", plain("bob@example.com", PASSWORD))["result"] == "ok"
        # a connection that closes takes its sessions along
        assert start_req(b, 9, "LOGIN")["result"] == "continue"
    with client(sasl) as c:
        r = step(c, 9, b"x")
        assert r["result"] == "temp"


def test_malformed_requests(sasl):
    pid = sasl.worker_pids("auth")[0]
    cases = [
        ([("cmd", "start"), ("session", 1), ("service", "smtp"), ("mech", "PLAIN"), ("client", "not-an-ip"),
          ("secure", 1)], "client is not an IP address"),
        ([("cmd", "start"), ("session", 1), ("service", "smtp"), ("mech", "PLAIN"), ("secure", 1)],
         "missing field"),
        ([("cmd", "start"), ("session", 1), ("service", "smtp"), ("mech", "PLAIN"), ("client", "192.0.2.1"),
          ("secure", 2)], "out of range"),
        ([("cmd", "start"), ("session", 1), ("service", "smtp"), ("mech", "PLAIN"), ("client", "192.0.2.1"),
          ("secure", 1), ("response", "text")], "wrong type"),
        ([("cmd", "start"), ("session", 1), ("service", "smtp"), ("mech", "PLAIN"), ("client", "192.0.2.1"),
          ("secure", 1), ("response", b"x" * 12289)], "too long"),
        ([("cmd", "step"), ("session", 1)], "missing field"),
        ([("cmd", "cancel")], "missing field"),
        ([("cmd", "mechs"), ("service", "smtp"), ("secure", 1), ("extra", 1)], "unexpected field"),
        ([("cmd", "rcpt"), ("address", "bob@example.com")], "unknown command"),
        ([("session", 1)], "no cmd"),
    ]
    with client(sasl) as c:
        for fields, reason in cases:
            r = dict(c.request(fields))
            assert r["result"] == "temp" and reason in r["reason"], (fields, r)
        # the connection is still good
        assert plain_login(c, "bob@example.com", PASSWORD)["result"] == "ok"
    # auth-sasl is not auth-lookup: the handshake says so
    with pytest.raises(ConnectionError):
        ipc.Client(sasl.queue_dir / "private" / "sasl", LOOKUP)
    assert sasl.worker_pids("auth")[0] == pid


def test_throttling(instance):
    """Delay after 2 failures, block after 4: measured."""
    configure(instance, auth_delay_after="2", auth_block_after="4", auth_failure_delay="2s",
              auth_block_time="1h")
    populate(instance)
    start(instance)
    delay = 2.0
    with client(instance) as c:
        def timed(user, password, ip):
            t0 = time.monotonic()
            r = plain_login(c, user, password, client_ip=ip)
            return r, time.monotonic() - t0

        took = []
        for i in range(4):
            r, t = timed("bob@example.com", f"wrong {i}", "192.0.2.7")
            assert r["result"] == "fail", r
            took.append(t)
        assert took[0] < delay and took[1] < delay, took
        assert took[2] >= delay and took[3] >= delay, took  # the 3rd and 4th wait
        # the 5th is refused at once, even with the right password
        r, t = timed("bob@example.com", PASSWORD, "192.0.2.7")
        assert r == {"result": "temp", "reason": "too many failed logins"} and t < delay, (r, t)
        # ... and from that address for anybody, with any mechanism
        r, _ = timed("carol@example.org", OTHER_PASSWORD, "192.0.2.7")
        assert r["result"] == "temp"
        r, _ = scram_login(c, "carol@example.org", OTHER_PASSWORD, client_ip="192.0.2.7")
        assert r["result"] == "temp"
        # another address is not affected, for another account ...
        r, t = timed("carol@example.org", OTHER_PASSWORD, "192.0.2.8")
        assert r == {"result": "ok", "user": "carol@example.org"} and t < delay, (r, t)
        # ... but bob's account is blocked wherever the attempt comes from
        r, t = timed("BOB@example.com", PASSWORD, "192.0.2.9")
        assert r["result"] == "temp" and t < delay, (r, t)
        r, _ = scram_login(c, "bob@example.com", PASSWORD, client_ip="192.0.2.9")
        assert r["result"] == "temp"
        # IPv6 clients count per /64
        for i in range(4):
            assert plain_login(c, "nobody@example.com", "x", client_ip=f"2001:db8:1:2::{i + 1}")["result"] == "fail"
        assert plain_login(c, "dave@example.org", OTHER_PASSWORD, client_ip="2001:db8:1:2:ffff::9")["result"] == "temp"
        assert plain_login(c, "dave@example.org", OTHER_PASSWORD, client_ip="2001:db8:1:3::1")["result"] == "ok"
        # a success clears the counts: two failures, a (delayed) success,
        # then two more failures answered at once
        for i in range(2):
            r, t = timed("dave@example.org", "wrong", "192.0.2.20")
            assert r["result"] == "fail" and t < delay
        r, t = timed("dave@example.org", OTHER_PASSWORD, "192.0.2.20")
        assert r["result"] == "ok" and t >= delay, (r, t)  # successes wait too
        for i in range(2):
            r, t = timed("dave@example.org", "wrong", "192.0.2.20")
            assert r["result"] == "fail" and t < delay, (i, t)
    # while one verdict waits, others are answered: the loop never sleeps
    with client(instance) as slow, client(instance) as fast:
        slow.sock.sendall(ipc.encode([("cmd", "start"), ("session", 1), ("service", "smtp"), ("mech", "PLAIN"),
                                      ("client", "192.0.2.20"), ("secure", 1),
                                      ("response", plain("dave@example.org", "wrong")), ("req", 1)]))
        time.sleep(0.3)
        t0 = time.monotonic()
        assert mechs(fast, 1)["result"] == "ok"
        assert plain_login(fast, "carol@example.org", OTHER_PASSWORD, client_ip="192.0.2.30")["result"] == "ok"
        assert time.monotonic() - t0 < 1.0
        assert dict(slow.read())["result"] == "fail"
    log = instance.log()
    assert re.search(r"auth blocked: service=smtp, rip=192\.0\.2\.7, user=<[^>]*>, mech=PLAIN", log), log
    assert re.search(r"auth blocked: service=smtp, rip=192\.0\.2\.9, user=<bob@example\.com>", log), log
    assert len([m for m in FAILED_RE.finditer(log) if m.group(3) == "192.0.2.7"]) == 4


def test_nothing_stores_or_logs_the_password(sasl):
    with client(sasl) as c:
        plain_login(c, "bob@example.com", PASSWORD)
        plain_login(c, "bob@example.com", PASSWORD + "x", client_ip="192.0.2.50")
        scram_login(c, "bob@example.com", PASSWORD)
        start_req(c, 5, "LOGIN")
        step(c, 5, b"bob@example.com")
        step(c, 5, PASSWORD.encode())
    ctl(sasl, "user", "passwd", "dave@example.org", "--password-stdin", password=PASSWORD)
    sasl.wait_for_log(r"auth failed: .*rip=192\.0\.2\.50")
    needles = [PASSWORD.encode(), base64.b64encode(PASSWORD.encode()),
               base64.b64encode(plain("bob@example.com", PASSWORD))]
    files = [p for p in sasl.base.rglob("*") if p.is_file() and not p.is_symlink()]
    assert sasl.log_path in files and any(p.name == "users.db" for p in files)
    for path in files:
        data = path.read_bytes()
        for needle in needles:
            assert needle not in data, path
    # what is stored: a yescrypt hash and a SCRAM-SHA-256 secret of 4096
    # iterations that matches the password
    record = dict(read_table(sasl, "users")["bob@example.com"])
    assert record["password"].startswith("$y$")
    m = re.fullmatch(r"SCRAM-SHA-256\$(\d+):([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+):([A-Za-z0-9+/=]+)",
                     record["scram"])
    assert m and int(m.group(1)) == 4096, record["scram"]
    salt = base64.b64decode(m.group(2))
    assert len(salt) == 16
    salted = hashlib.pbkdf2_hmac("sha256", PASSWORD.encode(), salt, 4096)
    stored = hashlib.sha256(hmac.new(salted, b"Client Key", hashlib.sha256).digest()).digest()
    assert base64.b64decode(m.group(3)) == stored
    assert base64.b64decode(m.group(4)) == hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    # a new password replaces both
    before = dict(read_table(sasl, "users")["dave@example.org"])
    with client(sasl) as c:
        assert plain_login(c, "dave@example.org", PASSWORD)["result"] == "ok"
        assert scram_login(c, "dave@example.org", PASSWORD)[0]["result"] == "ok"
        assert scram_login(c, "dave@example.org", OTHER_PASSWORD, client_ip="192.0.2.51")[0]["result"] == "fail"
    assert before["scram"] != m.group(0)


def test_mailctl_test_login(sasl):
    def test_login(address, password):
        return ctl(sasl, "user", "test-login", address, "--password-stdin", password=password, check=False)

    r = test_login("bob@example.com", PASSWORD)
    assert (r.returncode, r.stdout, r.stderr) == (0, "ok\n", "")
    r = test_login("Bob@Example.COM", PASSWORD)
    assert r.returncode == 0 and r.stdout == "ok\n"
    r = test_login("bob@example.com", "wrong")
    assert r.returncode == 1 and r.stdout == "" and "wrong password for bob@example.com" in r.stderr
    r = test_login("alice@example.com", PASSWORD)
    assert r.returncode == 1 and "disabled" in r.stderr
    r = test_login("nobody@example.com", PASSWORD)
    assert r.returncode == 1 and "does not exist" in r.stderr
    r = test_login("bob@example.com", "")
    assert r.returncode == 1
    for out in (r.stdout, r.stderr):
        assert PASSWORD not in out
    # no terminal, no --password-stdin: a clear message
    r = ctl(sasl, "user", "test-login", "bob@example.com", check=False)
    assert r.returncode == 1 and "--password-stdin" in r.stderr
    r = ctl(sasl, "user", "test-login", check=False)
    assert r.returncode == 64


def test_sender(sasl):
    def sender(c, user, address):
        return dict(c.request([("cmd", "sender"), ("user", user), ("address", address)]))

    with client(sasl, LOOKUP) as c:
        for user, address, want in [
                ("bob@example.com", "bob@example.com", "ok"),
                ("bob@example.com", "Bob+lists@EXAMPLE.com", "ok"),
                ("bob@example.com", "info@example.com", "ok"),
                ("alice@example.com", "info@example.com", "ok"),
                ("carol@example.org", "info@example.com", "no"),
                ("bob@example.com", "alice@example.com", "no"),
                ("carol@example.org", "carol@example.org", "ok"),
                ("carol@example.org", "anything@example.org", "no"),  # only the catch-all
                ("bob@example.com", "bob@elsewhere.net", "no"),
                ("bob@example.com", "", "no")]:
            assert sender(c, user, address) == {"result": want}, (user, address)
        r = sender(c, "bob@example.com", "x" * 300 + "@example.com")
        assert r["result"] == "error"
        r = dict(c.request([("cmd", "sender"), ("user", "bob@example.com")]))
        assert r["result"] == "error" and "missing field" in r["reason"]


def test_random_device_in_the_jail(root_only, sasl):
    node = sasl.data_dir / "dev" / "urandom"
    st = os.lstat(node)
    assert stat.S_ISCHR(st.st_mode) and (os.major(st.st_rdev), os.minor(st.st_rdev)) == (1, 9)
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (0, 0o666)
    d = os.lstat(sasl.data_dir / "dev")
    assert (d.st_uid, stat.S_IMODE(d.st_mode)) == (0, 0o755)
    pid = sasl.worker_pids("auth")[0]
    assert os.readlink(f"/proc/{pid}/root") == str(sasl.data_dir)
    # SCRAM is offered and works in the jail (nonces from the device)
    with client(sasl) as c:
        assert mechs(c, 0)["mechs"] == "SCRAM-SHA-256"
        assert scram_login(c, "bob@example.com", PASSWORD)[0]["result"] == "ok"
    assert "cannot be read here" not in sasl.log()


def test_without_random_device_scram_is_withdrawn(root_only, instance):
    """A jail where the device cannot be read (here: a regular file in its
    place, which auth replaces; then a nodev-like failure simulated by a
    directory): auth says so and offers no SCRAM."""
    configure(instance)
    populate(instance)
    (instance.data_dir / "dev").mkdir(mode=0o755)
    (instance.data_dir / "dev" / "urandom").mkdir()  # not a node, and unlink() cannot remove it
    start(instance)
    instance.wait_for_log(r"cannot be read here .*not offering SCRAM-SHA-256")
    with client(instance) as c:
        assert mechs(c, 0)["mechs"] == ""
        assert mechs(c, 1)["mechs"] == "PLAIN LOGIN"
        r = start_req(c, 1, "SCRAM-SHA-256", Scram("bob@example.com", PASSWORD).first(), secure=0)
        assert r["result"] == "fail"
        assert plain_login(c, "bob@example.com", PASSWORD)["result"] == "ok"
