"""The local delivery agent under master: the local-deliver protocol over
its UNIX socket, Maildir files on disk, quotas, refusals, the log line and
(as root) the account it runs as and owns the mailboxes with.

The instance runs local alone ("local unix local ${mailbox_owner} - 2
local"), with mail_root inside the instance directory and mailbox_owner
the instance's worker account (yubin-test under root)."""
import os
import re
import socket
import stat
import tempfile

import pytest

import harness
from harness import IS_ROOT, proc_status, service_line, wait_until
from ipc import Client

LOCAL = harness.BUILD_DIR / "local" / "local"
PROTOCOL = "local-deliver"
MAILBOX = "alice@example.org"
MAILDIR_REL = ("example.org", "alice", "Maildir")

CONTENT = (b"Received: from client.example.net (client.example.net [192.0.2.7])\r\n"
           b"\tby mx.example.org with ESMTP id 4Q1ABC; Mon, 1 Jan 2024 00:00:00 +0000\r\n"
           b"From: Bob <bob@example.net>\r\n"
           b"Subject: test\r\n"
           b"\r\n"
           b"Hello,\r\n"
           b"a bare\rCR stays.\r\n"
           b".\r\n"
           b"bye\r\n")

EXPECTED = (b"Return-Path: <bob@example.net>\n"
            b"X-Original-To: Info@Example.ORG\n"
            b"Delivered-To: alice@example.org\n"
            + CONTENT.replace(b"\r\n", b"\n"))


def setup_local(inst, hostname="mx.example.org", **params):
    """Configure inst to run local (2 workers) with a private mail_root."""
    if not (inst.daemon_dir / "local").exists():
        (inst.daemon_dir / "local").symlink_to(LOCAL)
    inst.mail_root = inst.base / "mail"
    inst.params.update({"mail_root": str(inst.mail_root), "mailbox_owner": inst.user})
    if hostname is not None:
        inst.params["myhostname"] = hostname
    inst.params.update(params)
    inst.set_services(local=service_line("local", "local", procs=2, program="local", type_="unix",
                                         user="${mailbox_owner}", chroot="-"))
    inst.local_socket = inst.queue_dir / "private" / "local"


@pytest.fixture
def local(instance):
    if not os.access(LOCAL, os.X_OK):
        pytest.skip(f"{LOCAL} not built")
    setup_local(instance)
    instance.start()
    instance.wait_service("local")
    return instance


def maildir(inst, *rest):
    return inst.mail_root.joinpath(*MAILDIR_REL, *rest)


def files(inst, sub):
    d = maildir(inst, sub)
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


def content_fd(data):
    """A read-only descriptor of a temporary file holding data (unlinked)."""
    with tempfile.NamedTemporaryFile(delete=False) as f:
        f.write(data)
        path = f.name
    fd = os.open(path, os.O_RDONLY)
    os.unlink(path)
    return fd


def deliver(client, data=CONTENT, *, id="4Q1ABC", sender="bob@example.net",
            recipient="Info@Example.ORG", mailbox=MAILBOX, quota=0, recheck=0, fd=True, extra=()):
    fields = [("cmd", "deliver"), ("id", id), ("sender", sender), ("recipient", recipient),
              ("mailbox", mailbox), ("quota", quota), ("recheck", recheck), *extra]
    if not fd:
        return client.request(fields)
    desc = content_fd(data)
    try:
        return client.request(fields, fd=desc)
    finally:
        os.close(desc)


def status(reply):
    return (reply.get("status"), reply.get("dsn"), reply.get("text"))


def test_delivers_exact_bytes_into_new(local):
    with Client(local.local_socket, PROTOCOL) as c:
        r = deliver(c)
    assert status(r) == ("ok", "2.0.0", "delivered to maildir")
    new = files(local, "new")
    assert len(new) == 1, new
    assert files(local, "tmp") == [] and files(local, "cur") == []
    data = maildir(local, "new", new[0]).read_bytes()
    assert data == EXPECTED
    # TIME.M<usec>P<pid>Q<n>.HOST,S=<size>,W=<size with CRLF line ends>
    m = re.fullmatch(r"(\d+)\.M(\d+)P(\d+)Q(\d+)\.mx\.example\.org,S=(\d+),W=(\d+)", new[0])
    assert m, new[0]
    assert int(m.group(5)) == len(EXPECTED)
    assert int(m.group(6)) == len(EXPECTED.replace(b"\n", b"\r\n"))
    assert int(m.group(3)) in local.worker_pids("local")
    # Maildir++ accounting
    assert maildir(local, "maildirsize").read_text() == f"0S\n0 0\n{len(EXPECTED)} 1\n"
    # every directory 0700
    for d in (local.mail_root / "example.org", local.mail_root / "example.org" / "alice",
              maildir(local), maildir(local, "new"), maildir(local, "tmp"), maildir(local, "cur")):
        assert stat.S_IMODE(d.lstat().st_mode) == 0o700, d
    local.wait_for_log(r"yubin/local\[\d+\]: 4Q1ABC: to=<alice@example\.org>, orig_to=<Info@Example\.ORG>, "
                       r"relay=local, delay=\d+\.\d\d, dsn=2\.0\.0, status=sent \(delivered to maildir\)")


def test_two_deliveries_make_two_files(local):
    with Client(local.local_socket, PROTOCOL) as c:
        a = deliver(c, b"Subject: one\r\n\r\n1\r\n", id="A1")
        b = deliver(c, b"Subject: two\r\n\r\n2\r\n", id="A2", sender="", recipient="ALICE@example.org")
    assert a.get("status") == b.get("status") == "ok"
    new = files(local, "new")
    assert len(new) == 2 and new[0] != new[1]
    bodies = sorted(maildir(local, "new", n).read_bytes() for n in new)
    assert bodies == sorted([
        b"Return-Path: <bob@example.net>\nX-Original-To: Info@Example.ORG\n"
        b"Delivered-To: alice@example.org\nSubject: one\n\n1\n",
        b"Return-Path: <>\nX-Original-To: ALICE@example.org\n"
        b"Delivered-To: alice@example.org\nSubject: two\n\n2\n"])
    # orig_to only when it differs from the mailbox (case aside)
    local.wait_for_log(r": A2: to=<alice@example\.org>, relay=local, ")


def test_several_connections_and_workers(local):
    """Both workers deliver; 20 messages over 4 connections, 20 files."""
    clients = [Client(local.local_socket, PROTOCOL) for _ in range(4)]
    try:
        for i in range(20):
            r = deliver(clients[i % 4], f"Subject: {i}\r\n\r\nbody\r\n".encode(), id=f"M{i}")
            assert r.get("status") == "ok", r
    finally:
        for c in clients:
            c.close()
    assert len(files(local, "new")) == 20
    text = maildir(local, "maildirsize").read_text().splitlines()
    assert text[0] == "0S"
    assert sum(int(line.split()[1]) for line in text[1:]) == 20


def test_quota_defer_then_fail(local):
    size = len(EXPECTED)
    with Client(local.local_socket, PROTOCOL) as c:
        assert deliver(c, quota=2 * size).get("status") == "ok"
        assert deliver(c, quota=2 * size).get("status") == "ok"
        # full: deferred while quota_over_permanent = no
        r = deliver(c, quota=2 * size, id="FULL1")
        assert status(r) == ("defer", "4.2.2", "mailbox full")
        # the RCPT-time question
        assert c.request([("cmd", "quota"), ("mailbox", MAILBOX), ("size", 1)]).get("status") == "over"
        assert c.request([("cmd", "quota"), ("mailbox", MAILBOX), ("size", 0)]).get("status") == "over"
        assert c.request([("cmd", "quota"), ("mailbox", MAILBOX), ("size", 1),
                          ("quota", 3 * size)]).get("status") == "ok"
        assert c.request([("cmd", "quota"), ("mailbox", "nobody-yet@example.org"),
                          ("size", 10 ** 6)]).get("status") == "ok"
        assert c.request([("cmd", "quota"), ("mailbox", "nobody-yet@example.org"), ("size", 101),
                          ("quota", 100)]).get("status") == "over"
        # a bigger quota lets it in
        assert deliver(c, quota=3 * size).get("status") == "ok"
    assert len(files(local, "new")) == 3
    assert files(local, "tmp") == []
    assert not (local.mail_root / "example.org" / "nobody-yet").exists()
    local.wait_for_log(r": FULL1: to=<alice@example\.org>, .*dsn=4\.2\.2, status=deferred \(mailbox full\)")

    # quota_over_permanent = yes: the same refusal is final
    local.params["quota_over_permanent"] = "yes"
    local.write_config()
    assert local.reload().returncode == 0
    wait_until(lambda: all(w["state"] != "retiring" for w in local.service_status("local")["workers"])
               and len(local.worker_pids("local")) == 2, what="new local workers")
    with Client(local.local_socket, PROTOCOL) as c:
        r = deliver(c, quota=3 * size, id="FULL2")
        assert status(r) == ("fail", "5.2.2", "mailbox full")
    assert len(files(local, "new")) == 3
    assert files(local, "tmp") == []
    local.wait_for_log(r": FULL2: to=<alice@example\.org>, .*dsn=5\.2\.2, status=bounced \(mailbox full\)")


@pytest.mark.parametrize("mailbox", ["../../etc@example.org", "a/b@example.org", ".hidden@example.org",
                                     "alice@..", "alice@../../tmp", "alice", "a@b@example.org",
                                     "", "alice@", "al ice@example.org"])
def test_bad_mailbox_names_are_refused(local, mailbox):
    with Client(local.local_socket, PROTOCOL) as c:
        r = deliver(c, mailbox=mailbox)
    assert r.get("status") == "fail" and r.get("dsn") == "5.1.1", r
    assert "bad mailbox name" in r.get("text")
    assert list(local.mail_root.iterdir()) == []
    local.wait_for_log(r"status=bounced \(bad mailbox name")


def test_missing_descriptor(local):
    with Client(local.local_socket, PROTOCOL) as c:
        r = deliver(c, id="NOFD", fd=False)
        assert status(r) == ("defer", "4.3.0", "bad request: no message descriptor passed")
        # the connection is still good
        assert deliver(c).get("status") == "ok"
    assert len(files(local, "new")) == 1
    local.wait_for_log(r"warning: NOFD: bad request: no message descriptor passed")
    local.wait_for_log(r": NOFD: to=<alice@example\.org>, .*status=deferred \(bad request: no message")


def test_bad_requests(local):
    with Client(local.local_socket, PROTOCOL) as c:
        r = c.request([("cmd", "deliver"), ("id", "X"), ("sender", ""), ("recipient", MAILBOX),
                       ("mailbox", MAILBOX)], fd=None)
        assert status(r) == ("defer", "4.3.0", "bad request: missing field: quota")
        r = deliver(c, extra=[("surprise", "x")])
        assert status(r) == ("defer", "4.3.0", "bad request: unexpected field: surprise")
        r = deliver(c, quota=-1)
        assert status(r) == ("defer", "4.3.0", "bad request: field out of range: quota")
        r = deliver(c, recheck=2)
        assert status(r) == ("defer", "4.3.0", "bad request: field out of range: recheck")
        r = deliver(c, sender="bob@example.net\r\nX-Injected: yes")
        assert status(r) == ("defer", "4.3.0", "bad request: control character in an address")
        r = c.request([("cmd", "frobnicate")])
        assert (r.get("status"), r.get("reason")) == ("error", "unknown command")
        r = c.request([("cmd", "quota"), ("mailbox", MAILBOX)])
        assert r.get("status") == "error" and "size" in r.get("reason")
        r = c.request([("cmd", "quota"), ("mailbox", "../x@example.org"), ("size", 1)])
        assert r.get("status") == "error" and "bad mailbox name" in r.get("reason")
        # still serving; the descriptors of the refused requests were not
        # kept for a later one
        r = deliver(c, fd=False)
        assert r.get("text") == "bad request: no message descriptor passed"
        assert deliver(c).get("status") == "ok"
    assert len(files(local, "new")) == 1


def test_log_lines_are_sanitised(local):
    with Client(local.local_socket, PROTOCOL) as c:
        r = deliver(c, id="EVIL\nfake: line", recipient="x\u00e9@example.org")
    assert r.get("status") == "ok"
    # local writes EVIL\x0a...; master escapes the backslash once more
    # when it forwards the line (\x5cx0a): either way, one line.
    log = local.wait_for_log(r"EVIL\\(?:x5c)?x0afake: line: to=<alice@example\.org>, "
                             r"orig_to=<x\\(?:x5c)?xc3\\(?:x5c)?xa9@example\.org>").string
    assert "\nfake: line" not in log


def test_symlink_in_maildir_defers(local):
    with Client(local.local_socket, PROTOCOL) as c:
        assert deliver(c).get("status") == "ok"
        outside = local.base / "outside"
        outside.mkdir()
        if IS_ROOT:
            os.chown(outside, local.uid, local.gid)
        new = maildir(local, "new")
        for name in os.listdir(new):
            os.unlink(new / name)
        new.rmdir()
        new.symlink_to(outside)
        r = deliver(c, id="LINK")
        assert r.get("status") == "defer" and r.get("dsn") == "4.2.0", r
        assert "symbolic link" in r.get("text")
    assert list(outside.iterdir()) == []
    assert files(local, "tmp") == []


def test_mail_root_created_at_start(local):
    st = local.mail_root.stat()
    assert stat.S_ISDIR(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o750
    assert st.st_uid == local.uid
    local.wait_for_log(r"yubin/local\[\d+\]: created mail_root ")


def test_runs_as_mailbox_owner_and_owns_the_mail(root_only, local):
    for pid in local.worker_pids("local"):
        st = proc_status(pid)
        assert [int(x) for x in st["Uid"].split()] == [local.uid] * 4
        assert [int(x) for x in st["Gid"].split()] == [local.gid] * 4
        assert int(st["CapEff"], 16) == 0
        assert st["NoNewPrivs"] == "1"
        assert os.readlink(f"/proc/{pid}/root") == "/"  # not chrooted
    st = local.mail_root.stat()
    assert (st.st_uid, st.st_gid) == (local.uid, local.gid)
    with Client(local.local_socket, PROTOCOL) as c:
        assert deliver(c).get("status") == "ok"
    paths = [local.mail_root / "example.org", local.mail_root / "example.org" / "alice", maildir(local),
             maildir(local, "new"), maildir(local, "maildirsize")]
    paths += [maildir(local, "new", n) for n in files(local, "new")]
    for p in paths:
        s = p.lstat()
        assert s.st_uid == local.uid, (p, s.st_uid)
    msg = maildir(local, "new", files(local, "new")[0]).lstat()
    assert stat.S_IMODE(msg.st_mode) == 0o600


def test_existing_mail_root_is_left_alone(instance):
    if not os.access(LOCAL, os.X_OK):
        pytest.skip(f"{LOCAL} not built")
    setup_local(instance)
    instance.mail_root.mkdir()
    instance.mail_root.chmod(0o711)
    if IS_ROOT:
        os.chown(instance.mail_root, instance.uid, instance.gid)
    instance.start()
    instance.wait_service("local")
    assert stat.S_IMODE(instance.mail_root.stat().st_mode) == 0o711
    with Client(instance.local_socket, PROTOCOL) as c:
        assert deliver(c).get("status") == "ok"


def test_file_names_carry_the_system_host_name_by_default(instance):
    """With myhostname unset, the unique names use the system's name."""
    if not os.access(LOCAL, os.X_OK):
        pytest.skip(f"{LOCAL} not built")
    setup_local(instance, hostname=None)
    instance.start()
    instance.wait_service("local")
    with Client(instance.local_socket, PROTOCOL) as c:
        assert deliver(c).get("status") == "ok"
    host = socket.gethostname().replace("/", "\\057").replace(":", "\\072").replace(",", "\\054")
    (name,) = files(instance, "new")
    crlf_size = len(EXPECTED.replace(b"\n", b"\r\n"))
    assert name.endswith(f".{host},S={len(EXPECTED)},W={crlf_size}"), name
