"""The auth daemon under master: the auth-lookup protocol (auth/PROTOCOL.md)
over its real socket, tables written by mailctl, changes picked up without
a restart, malformed requests, and (as root) the jail and the account."""
import os
import socket
import struct
import subprocess

import pytest

import ipc
from harness import AUTH, IS_ROOT, MAILCTL, TEST_USER, proc_status, service_line, wait_until
from test_tables import AUTH_USER, ensure_auth_user

PROTOCOL = "auth-lookup"


@pytest.fixture(autouse=True)
def auth_built():
    if not os.access(AUTH, os.X_OK):
        pytest.skip(f"auth is not built ({AUTH})")


def configure(inst):
    """auth as master.conf ships it: auth_owner, jailed in data_directory."""
    if IS_ROOT:
        ensure_auth_user()
        inst.params["auth_owner"] = AUTH_USER
    else:
        inst.params["auth_owner"] = inst.user
    inst.params["mail_root"] = str(inst.base / "mail")
    inst.set_services(auth=service_line("auth", "auth", procs=1, program="auth", type_="unix",
                                        user="${auth_owner}", chroot="${data_directory}"))
    return inst


def ctl(inst, *args, password=None):
    cmd = [str(MAILCTL), "-c", str(inst.config_dir), *args]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60,
                       input=None if password is None else password + "\n",
                       stdin=subprocess.DEVNULL if password is None else None)
    assert r.returncode == 0, (args, r.returncode, r.stderr)


def populate(inst):
    ctl(inst, "domain", "add", "example.com")
    ctl(inst, "domain", "add", "example.org")
    ctl(inst, "user", "add", "bob@example.com", "--quota", "1M", "--password-stdin", password="pw")
    ctl(inst, "user", "add", "alice@example.com", "--disable", "--password-stdin", password="pw")
    ctl(inst, "user", "add", "carol@example.org", "--password-stdin", password="pw")
    ctl(inst, "alias", "add", "info@example.com", "bob@example.com", "alice@example.com", "Ext@Remote.NET")
    ctl(inst, "alias", "add", "team@example.com", "info@example.com", "bob@example.com")
    ctl(inst, "alias", "add", "sales@example.com", "info@example.com", "carol@example.org")
    ctl(inst, "alias", "add", "loop1@example.com", "loop2@example.com")
    ctl(inst, "alias", "add", "loop2@example.com", "loop1@example.com")
    ctl(inst, "alias", "add", "dead@example.com", "nobody@example.com")
    ctl(inst, "alias", "add", "@example.org", "carol@example.org")


@pytest.fixture
def auth(instance):
    """A running instance with auth and the tables above."""
    configure(instance)
    populate(instance)
    instance.start()
    instance.wait_service("auth")
    return instance


def socket_path(inst):
    return inst.queue_dir / "private" / "auth"


def client(inst):
    return ipc.Client(socket_path(inst), PROTOCOL)


def rcpt(c, address):
    return dict(c.request([("cmd", "rcpt"), ("address", address)]))


def expand(c, address):
    return list(c.request([("cmd", "expand"), ("address", address)]))


def auth_pid(inst):
    return inst.worker_pids("auth")[0]


RCPT_CASES = [
    ("bob@example.com", {"result": "local", "mailbox": "bob@example.com", "quota": 1 << 20, "enabled": 1}),
    ("BOB@Example.COM", {"result": "local", "mailbox": "bob@example.com", "quota": 1 << 20, "enabled": 1}),
    ("bob+lists@example.com", {"result": "local", "mailbox": "bob@example.com", "quota": 1 << 20,
                               "enabled": 1}),
    ("alice@example.com", {"result": "local", "mailbox": "alice@example.com", "quota": 0, "enabled": 0}),
    ("info@example.com", {"result": "alias"}),
    ("info+x@example.com", {"result": "alias"}),
    ("carol@example.org", {"result": "local", "mailbox": "carol@example.org", "quota": 0, "enabled": 1}),
    ("anyone@example.org", {"result": "alias"}),  # the catch-all
    ("nobody@example.com", {"result": "unknown"}),
    ("dead@example.com", {"result": "unknown"}),
    ("bob@remote.net", {"result": "not_hosted"}),
    ("bob@sub.example.com", {"result": "not_hosted"}),
]


def test_rcpt(auth):
    with client(auth) as c:
        for address, want in RCPT_CASES:
            assert rcpt(c, address) == want, address
        got = rcpt(c, "loop1@example.com")
        assert got["result"] == "error" and "alias loop" in got["reason"], got
        got = rcpt(c, "no-at-sign")
        assert got["result"] == "error" and got["reason"], got


def test_expand(auth):
    with client(auth) as c:
        assert expand(c, "bob+x@example.com") == [("result", "ok"), ("local", "bob@example.com"),
                                                  ("quota", 1 << 20)]
        assert expand(c, "info@example.com") == [
            ("result", "ok"), ("local", "bob@example.com"), ("quota", 1 << 20),
            ("local", "alice@example.com"), ("quota", 0), ("remote", "Ext@remote.net")]
        # bob through info and directly: once
        assert expand(c, "team@example.com") == [
            ("result", "ok"), ("local", "bob@example.com"), ("quota", 1 << 20),
            ("local", "alice@example.com"), ("quota", 0), ("remote", "Ext@remote.net")]
        assert expand(c, "sales@example.com") == [
            ("result", "ok"), ("local", "bob@example.com"), ("quota", 1 << 20),
            ("local", "alice@example.com"), ("quota", 0), ("local", "carol@example.org"), ("quota", 0),
            ("remote", "Ext@remote.net")]
        assert expand(c, "whoever@example.org") == [("result", "ok"), ("local", "carol@example.org"),
                                                    ("quota", 0)]
        assert expand(c, "dead@example.com") == [("result", "unknown"), ("unknown", "nobody@example.com")]
        assert expand(c, "nobody@example.com") == [("result", "unknown")]
        assert expand(c, "x@remote.net") == [("result", "not_hosted")]
        loop = expand(c, "loop2@example.com")
        assert loop[0] == ("result", "loop") and len(loop) == 2
        assert loop[1] == ("reason", "alias loop: loop2@example.com -> loop1@example.com -> loop2@example.com")


def test_domain(auth):
    with client(auth) as c:
        for domain, want in (("example.com", "hosted"), ("EXAMPLE.org", "hosted"),
                             ("example.net", "not_hosted")):
            assert list(c.request([("cmd", "domain"), ("domain", domain)])) == [("result", want)], domain


def test_table_changes_are_seen_without_restart(instance):
    configure(instance)
    instance.start()  # no tables at all yet
    instance.wait_service("auth")
    pid = auth_pid(instance)
    with client(instance) as c:
        assert rcpt(c, "bob@example.com") == {"result": "not_hosted"}
        ctl(instance, "domain", "add", "example.com")
        assert rcpt(c, "bob@example.com") == {"result": "unknown"}
        ctl(instance, "user", "add", "bob@example.com", "--password-stdin", password="pw")
        assert rcpt(c, "bob@example.com")["result"] == "local"
        ctl(instance, "user", "set", "bob@example.com", "--quota", "5M", "--disable")
        assert rcpt(c, "bob@example.com") == {"result": "local", "mailbox": "bob@example.com",
                                              "quota": 5 << 20, "enabled": 0}
        ctl(instance, "alias", "add", "@example.com", "bob@example.com")
        assert rcpt(c, "random@example.com") == {"result": "alias"}
        ctl(instance, "alias", "del", "@example.com")
        assert rcpt(c, "random@example.com") == {"result": "unknown"}
        ctl(instance, "user", "del", "bob@example.com")
        assert rcpt(c, "bob@example.com") == {"result": "unknown"}
        ctl(instance, "domain", "del", "example.com")
        assert rcpt(c, "bob@example.com") == {"result": "not_hosted"}
    assert auth_pid(instance) == pid  # the same process all along


def raw_request(c, payload_fields):
    """Send fields plus req without the client's checks; return the reply."""
    return c.request(payload_fields)


def test_malformed_requests(auth):
    pid = auth_pid(auth)
    long_address = "a" * 250 + "@example.com"
    cases = [
        ([("cmd", "rcpt")], "missing field"),
        ([("address", "bob@example.com")], "no cmd"),
        ([("cmd", "rcpt"), ("address", "bob@example.com"), ("extra", "x")], "unexpected field"),
        ([("cmd", "rcpt"), ("address", 42)], "wrong type"),
        ([("cmd", "rcpt"), ("address", b"bob@example.com")], "wrong type"),
        ([("cmd", "rcpt"), ("address", "a@example.com"), ("address", "b@example.com")], "duplicate"),
        ([("cmd", "expand"), ("domain", "example.com")], "malformed expand request"),
        ([("cmd", "domain"), ("address", "bob@example.com")], "malformed domain request"),
        ([("cmd", "delete-everything"), ("address", "bob@example.com")], "unknown command"),
        ([("cmd", 1), ("address", "bob@example.com")], "no cmd"),
        ([("cmd", "rcpt"), ("address", long_address)], "longer than 256"),
        ([("cmd", "expand"), ("address", long_address)], "longer than 256"),
        ([("cmd", "domain"), ("domain", "d" * 300)], "longer than 255"),
    ]
    with client(auth) as c:
        for fields, reason in cases:
            reply = dict(raw_request(c, fields))
            assert reply["result"] == "error", (fields, reply)
            assert reason in reply["reason"], (fields, reply)
            # the connection is still good
            assert rcpt(c, "bob@example.com")["result"] == "local"
    # a frame too large for auth, or not a frame: the connection closes
    with client(auth) as c:
        c.sock.sendall(ipc.encode([("cmd", "rcpt"), ("address", "x" * 5000), ("req", 1)]))
        with pytest.raises((ConnectionError, OSError)):
            c.read()
    with client(auth) as c:
        c.sock.sendall(struct.pack(">I", 3) + b"zzz")
        with pytest.raises((ConnectionError, OSError)):
            c.read()
    # a request that skips the handshake
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(str(socket_path(auth)))
        s.sendall(ipc.encode([("cmd", "rcpt"), ("address", "bob@example.com"), ("req", 1)]))
        data = s.recv(4096)
        assert b"error" in data
    # auth lived through all of it and logged each failure
    assert auth_pid(auth) == pid
    with client(auth) as c:
        assert rcpt(c, "bob@example.com")["result"] == "local"
    log = auth.wait_for_log(r"auth\[\d+\]: warning: unknown command")
    assert log
    text = auth.log()
    assert "malformed rcpt request: missing field" in text
    assert "longer than 256 octets" in text
    assert "request larger than" in text


def test_broken_table_answers_error_then_recovers(auth):
    users = auth.data_dir / "users.db"
    broken = auth.data_dir / "users.db.broken"
    broken.write_bytes(b"this is not a berkeley db file\n")
    os.chmod(broken, 0o644)
    os.rename(broken, users)
    with client(auth) as c:
        got = rcpt(c, "bob@example.com")
        assert got["result"] == "error" and "users.db" in got["reason"], got
        # lookups that do not need users.db still work
        assert rcpt(c, "bob@remote.net") == {"result": "not_hosted"}
        assert list(c.request([("cmd", "domain"), ("domain", "example.com")])) == [("result", "hosted")]
        auth.wait_for_log(r"warning: rcpt <bob@example.com>: .*users\.db")
        users.unlink()
        ctl(auth, "user", "add", "bob@example.com", "--password-stdin", password="pw")
        assert rcpt(c, "bob@example.com")["result"] == "local"


def test_several_clients_at_once(auth):
    clients = [client(auth) for _ in range(5)]
    try:
        for i in range(20):
            for c in clients:
                assert rcpt(c, f"bob+{i}@example.com")["mailbox"] == "bob@example.com"
    finally:
        for c in clients:
            c.close()


def test_auth_runs_as_auth_owner_in_the_jail(root_only, auth):
    pid = auth_pid(auth)
    st = proc_status(pid)
    auth_uid = int(subprocess.run(["id", "-u", AUTH_USER], capture_output=True, text=True).stdout)
    auth_gid = int(subprocess.run(["id", "-g", AUTH_USER], capture_output=True, text=True).stdout)
    assert [int(x) for x in st["Uid"].split()] == [auth_uid] * 4
    assert [int(x) for x in st["Gid"].split()] == [auth_gid] * 4
    assert [int(x) for x in st["Groups"].split()] == [auth_gid]
    assert st["NoNewPrivs"] == "1"
    assert int(st["CapEff"], 16) == 0
    assert os.readlink(f"/proc/{pid}/root") == str(auth.data_dir)
    assert os.readlink(f"/proc/{pid}/cwd") == str(auth.data_dir)
    # auth_owner is not the mail owner, and only auth can read the hashes
    mail_uid = int(subprocess.run(["id", "-u", TEST_USER], capture_output=True, text=True).stdout)
    assert mail_uid != auth_uid
    users = auth.data_dir / "users.db"
    denied = subprocess.run(["runuser", "-u", TEST_USER, "--", "cat", str(users)], capture_output=True)
    assert denied.returncode != 0 and b"Permission denied" in denied.stderr
    readable = subprocess.run(["runuser", "-u", AUTH_USER, "--", "test", "-r", str(users)])
    assert readable.returncode == 0
    # the mail owner reaches the socket (smtpd and qmgr run as that account)
    code = ("import sys; sys.path.insert(0, %r); import ipc; "
            "c = ipc.Client(%r, 'auth-lookup'); "
            "print(dict(c.request([('cmd', 'rcpt'), ('address', 'bob@example.com')]))['result'])"
            % (os.path.dirname(ipc.__file__), str(socket_path(auth))))
    r = subprocess.run(["runuser", "-u", TEST_USER, "--", "/usr/bin/python3",
                        "-c", code], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and r.stdout.strip() == "local", (r.stdout, r.stderr)
    # ... and other local users do not
    r = subprocess.run(["runuser", "-u", "nobody", "--", "/usr/bin/python3", "-c", code],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and "Permission denied" in r.stderr


def test_unreadable_tables_for_auth_owner(root_only, instance):
    """Tables auth cannot read (written before auth_owner existed, say)
    make lookups fail with a reason instead of killing auth."""
    configure(instance)
    populate(instance)
    os.chmod(instance.data_dir / "users.db", 0o600)
    instance.start()
    instance.wait_service("auth")
    with client(instance) as c:
        got = rcpt(c, "bob@example.com")
        assert got["result"] == "error" and "Permission denied" in got["reason"], got
        assert rcpt(c, "x@remote.net") == {"result": "not_hosted"}
    instance.wait_for_log(r"auth\[\d+\]: warning: .*users\.db")
    wait_until(lambda: instance.service_status("auth")["restarts"] == 0, 1)
