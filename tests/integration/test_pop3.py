"""POP3 (pop3d) against a real instance: mail delivered by SMTP through
smtpd, qmgr and local into Maildirs, then fetched with Python's poplib
(STLS on the plain port, implicit TLS on the other, certificates from a
CA the tests make) and with fetchmail, a real client. Logins go through
auth (SASL), and so does its throttling."""
import os
import poplib
import re
import shutil
import socket
import ssl
import subprocess
import time

import pytest

import harness
from harness import IS_ROOT, service_line, wait_until
from mailfix import (DOMAIN, HOSTNAME, PASSWORD, maildir, messages, missing_programs, send_message, setup_mail,
                     start_mail, wait_messages)
from tlsfix import add_tls

pytestmark = pytest.mark.skipif(not IS_ROOT, reason="runs the suite's services as root")

POP3D = harness.BUILD_DIR / "pop3d" / "pop3d"


@pytest.fixture
def pop_mail(instance):
    """make(**params): an instance with smtpd, qmgr, local, auth and pop3d
    on two ports: pop3 (STLS) and pop3s (implicit TLS)."""
    missing = missing_programs() + ([str(POP3D)] if not os.access(POP3D, os.X_OK) else [])
    if missing:
        pytest.skip("not built: " + ", ".join(missing))

    def make(**params):
        setup_mail(instance, **params)
        instance.ca = add_tls(instance, HOSTNAME)
        link = instance.daemon_dir / "pop3d"
        if not link.exists():
            link.symlink_to(POP3D)
        instance.pop3_port = instance.new_port()
        instance.pop3s_port = instance.new_port()
        # pop3d reaches auth's SASL socket inside its jail (mailbox/sasl)
        instance.services["auth"] = service_line("auth", "auth,sasl,mailbox/sasl", procs=1, program="auth",
                                                 type_="unix", user="${auth_owner}", chroot="${data_directory}")
        for name, port in (("pop3", instance.pop3_port), ("pop3s", instance.pop3s_port)):
            instance.services[name] = service_line(name, f"127.0.0.1:{port}", procs=1, program="pop3d",
                                                   user="${mailbox_owner}", chroot="${mail_root}")
        instance.write_config()
        start_mail(instance)
        for name in ("pop3", "pop3s"):
            instance.wait_service(name)
        return instance
    yield make
    log = instance.log()
    assert "AddressSanitizer" not in log and "runtime error" not in log, log[-3000:]
    assert not re.search(r"service pop3s?: worker \d+ (killed|exited)", log), log[-3000:]


def context(inst):
    ctx = ssl.create_default_context(cafile=str(inst.ca.cert))
    return ctx


class VerifiedPOP3(poplib.POP3):
    """poplib checks the certificate against the host it connected to
    (127.0.0.1): the server is mx.example.test."""

    def stls(self, context=None):
        self.host = HOSTNAME
        return super().stls(context=context)


class VerifiedPOP3_SSL(poplib.POP3_SSL):
    def _create_socket(self, timeout):
        sock = socket.create_connection(("127.0.0.1", self.port), timeout)
        return self.context.wrap_socket(sock, server_hostname=HOSTNAME)


def login(inst, user="bob", secure=True):
    p = VerifiedPOP3("127.0.0.1", inst.pop3_port, timeout=20)
    if secure:
        assert p.stls(context(inst)).startswith(b"+OK")
    p.user(f"{user}@{DOMAIN}")
    assert p.pass_(PASSWORD).startswith(b"+OK")
    return p


def body(n, extra=b""):
    return (b"Subject: pop test %d\r\nMessage-Id: <pop.%d@client.example.net>\r\n\r\nmessage %d\r\n"
            b".. a line that starts with a dot\r\n" % (n, n, n)) + extra


def deliver(inst, count, user="bob", start=1):
    have = len(messages(inst, user))
    for n in range(start, start + count):
        send_message(inst, f"{user}@{DOMAIN}", body(n))
    return wait_messages(inst, user, have + count, timeout=30)


def stored_as_sent(inst, user="bob"):
    """{uidl: the bytes POP3 must send} for the Maildir's files: CRLF line
    ends. The UIDL is the file name before ',' or ':'."""
    out = {}
    md = maildir(inst, user)
    for sub in ("new", "cur"):
        for f in (md / sub).iterdir():
            out[re.split(r"[,:]", f.name)[0]] = f.read_bytes().replace(b"\n", b"\r\n")
    return out


# ---- the whole path ----------------------------------------------------

def test_poplib_leave_mail_on_server(pop_mail):
    """Gmail's fetcher with "leave a copy": STAT, LIST, UIDL and RETR agree
    with the Maildir; the sizes are the octets sent; nothing goes; the
    UIDLs are the same in the next session."""
    inst = pop_mail()
    deliver(inst, 3)
    files = stored_as_sent(inst)
    p = login(inst)
    count, total = p.stat()
    assert count == 3 and total == sum(len(v) for v in files.values())
    _, listing, _ = p.list()
    _, uidls, _ = p.uidl()
    uidl_of = dict(line.decode().split() for line in uidls)
    assert sorted(uidl_of.values()) == sorted(files)
    for line in listing:
        num, size = line.decode().split()
        data = files[uidl_of[num]]
        assert int(size) == len(data)
        _, lines, octets = p.retr(int(num))
        assert b"\r\n".join(lines) + b"\r\n" == data
        assert octets == len(data)
    # in arrival order
    subjects = [p.retr(i)[1] for i in (1, 2, 3)]
    assert [next(l for l in s if l.startswith(b"Subject:")) for s in subjects] == \
        [b"Subject: pop test 1", b"Subject: pop test 2", b"Subject: pop test 3"]
    assert p.quit().startswith(b"+OK")
    assert len(messages(inst, "bob")) == 3
    p = login(inst)
    assert dict(line.decode().split() for line in p.uidl()[1]) == uidl_of
    # one UIDL, asked for alone
    assert p.uidl(2).decode().split()[1:] == ["2", uidl_of["2"]]
    p.quit()


def test_dele_then_quit_removes(pop_mail):
    inst = pop_mail()
    deliver(inst, 3)
    p = login(inst)
    uidl_of = dict(line.decode().split() for line in p.uidl()[1])
    assert p.dele(2).startswith(b"+OK")
    # marked: gone from the listings, an error to touch
    assert [l.split()[0] for l in p.list()[1]] == [b"1", b"3"]
    assert p.stat()[0] == 2
    with pytest.raises(poplib.error_proto, match=r"-ERR"):
        p.retr(2)
    with pytest.raises(poplib.error_proto, match=r"-ERR"):
        p.dele(2)
    assert p.quit().startswith(b"+OK")
    left = stored_as_sent(inst)
    assert sorted(left) == sorted([uidl_of["1"], uidl_of["3"]])
    # the quota cache knows (a negative line for the message gone)
    lines = (maildir(inst, "bob") / "maildirsize").read_text().splitlines()
    assert re.fullmatch(r"-\d+ -1", lines[-1]), lines
    p = login(inst)
    assert sorted(l.decode().split()[1] for l in p.uidl()[1]) == sorted(left)
    p.quit()


def test_rset_unmarks(pop_mail):
    inst = pop_mail()
    deliver(inst, 2)
    p = login(inst)
    p.dele(1)
    p.dele(2)
    assert p.rset().startswith(b"+OK")
    assert p.stat()[0] == 2
    p.quit()
    assert len(messages(inst, "bob")) == 2


def test_dele_then_dropped_connection_keeps(pop_mail):
    inst = pop_mail()
    deliver(inst, 2)
    p = login(inst)
    p.dele(1)
    p.dele(2)
    # no QUIT: the connection drops, the session never reaches UPDATE
    p.sock.shutdown(socket.SHUT_RDWR)
    p.file.close()
    p.sock.close()
    # the session ends, and the next one sees everything
    wait_until(lambda: try_login(inst), 10, what="the mailbox free again")
    assert len(messages(inst, "bob")) == 2


def try_login(inst):
    try:
        p = login(inst)
    except poplib.error_proto:
        return False
    p.quit()
    return True


def test_second_session_gets_in_use(pop_mail):
    inst = pop_mail()
    deliver(inst, 1)
    first = login(inst)
    second = VerifiedPOP3("127.0.0.1", inst.pop3_port, timeout=20)
    second.stls(context(inst))
    second.user(f"bob@{DOMAIN}")
    with pytest.raises(poplib.error_proto, match=r"-ERR \[IN-USE\]"):
        second.pass_(PASSWORD)
    second.close()
    first.quit()
    login(inst).quit()  # free again


def test_delivery_during_a_session_does_not_disturb_it(pop_mail):
    inst = pop_mail()
    deliver(inst, 2)
    p = login(inst)
    before = p.stat(), p.uidl()[1]
    deliver(inst, 1, start=3)
    assert (p.stat(), p.uidl()[1]) == before
    assert p.retr(2)[1]
    p.quit()
    p = login(inst)
    assert p.stat()[0] == 3
    p.quit()


def test_top_and_byte_stuffing(pop_mail):
    inst = pop_mail()
    send_message(inst, f"bob@{DOMAIN}", b"Subject: dots\r\n\r\n.. one dot\r\n...\r\nline 3\r\nline 4\r\n")
    wait_messages(inst, "bob", 1)
    with socket.create_connection(("127.0.0.1", inst.pop3_port), timeout=20) as raw:
        s = context(inst).wrap_socket(stls_raw(raw), server_hostname=HOSTNAME)
        f = s.makefile("rb")
        cmd(s, f, f"USER bob@{DOMAIN}")
        cmd(s, f, f"PASS {PASSWORD}")
        assert cmd(s, f, "RETR 1").startswith(b"+OK")
        wire = multiline(f)
        # the message holds ". one dot" and ".." (stuffed once for SMTP);
        # lines starting with '.' go out with one more (RFC 1939 3)
        assert b"\r\n.. one dot\r\n...\r\nline 3\r\n" in wire
        assert cmd(s, f, "TOP 1 1").startswith(b"+OK")
        top = multiline(f)
        assert top.endswith(b"\r\n\r\n.. one dot\r\n") and b"line 3" not in top
        assert cmd(s, f, "TOP 1 0").startswith(b"+OK")
        assert multiline(f).endswith(b"Subject: dots\r\n\r\n")
        assert cmd(s, f, "QUIT").startswith(b"+OK")


def stls_raw(sock):
    f = sock.makefile("rb")
    assert f.readline().startswith(b"+OK")
    sock.sendall(b"STLS\r\n")
    assert f.readline().startswith(b"+OK")
    return sock


def cmd(sock, f, line):
    sock.sendall(line.encode() + b"\r\n")
    return f.readline()


def multiline(f):
    out = b""
    while (line := f.readline()) != b".\r\n":
        assert line, "connection closed in a multi-line reply"
        out += line
    return out


# ---- TLS and logins ----------------------------------------------------

def test_pop3s_implicit_tls(pop_mail):
    inst = pop_mail()
    deliver(inst, 1)
    p = VerifiedPOP3_SSL("127.0.0.1", inst.pop3s_port, context=context(inst), timeout=20)
    caps = p.capa()
    assert "STLS" not in caps and "USER" in caps and "SASL" in caps
    p.user(f"bob@{DOMAIN}")
    p.pass_(PASSWORD)
    assert p.stat()[0] == 1
    p.quit()


def test_no_plaintext_login_before_stls(pop_mail):
    inst = pop_mail()
    p = poplib.POP3("127.0.0.1", inst.pop3_port, timeout=20)
    caps = p.capa()
    # no password in clear: neither USER nor PLAIN/LOGIN (SCRAM sends none)
    assert "STLS" in caps and "USER" not in caps
    assert not {"PLAIN", "LOGIN"} & set(caps.get("SASL", []))
    assert {"RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "UIDL", "TOP"} <= set(caps)
    with pytest.raises(poplib.error_proto, match=r"-ERR"):
        p.user(f"bob@{DOMAIN}")
        p.pass_(PASSWORD)
    p.close()
    assert f"{PASSWORD}" not in inst.log()


def test_plaintext_login_when_allowed(pop_mail):
    inst = pop_mail(pop3d_auth_plaintext="yes")
    deliver(inst, 1)
    p = login(inst, secure=False)
    assert p.stat()[0] == 1
    p.quit()


def test_sasl_plain_and_bad_password(pop_mail):
    import base64
    inst = pop_mail()
    with socket.create_connection(("127.0.0.1", inst.pop3_port), timeout=20) as raw:
        s = context(inst).wrap_socket(stls_raw(raw), server_hostname=HOSTNAME)
        f = s.makefile("rb")
        bad = base64.b64encode(f"\0bob@{DOMAIN}\0wrong".encode()).decode()
        assert cmd(s, f, f"AUTH PLAIN {bad}").startswith(b"-ERR [AUTH]")
        assert cmd(s, f, "AUTH PLAIN").startswith(b"+ ")
        good = base64.b64encode(f"\0bob@{DOMAIN}\0{PASSWORD}".encode()).decode()
        assert cmd(s, f, good).startswith(b"+OK")
        assert cmd(s, f, "STAT").startswith(b"+OK 0 0")
        assert cmd(s, f, "QUIT").startswith(b"+OK")


def test_failed_logins_are_throttled_by_auth(pop_mail):
    inst = pop_mail(auth_block_after="3", auth_failure_delay="0")
    for _ in range(3):
        p = VerifiedPOP3("127.0.0.1", inst.pop3_port, timeout=20)
        p.stls(context(inst))
        p.user(f"bob@{DOMAIN}")
        with pytest.raises(poplib.error_proto, match=r"-ERR \[AUTH\]"):
            p.pass_("wrong")
        p.close()
    p = VerifiedPOP3("127.0.0.1", inst.pop3_port, timeout=20)
    p.stls(context(inst))
    p.user(f"bob@{DOMAIN}")
    # even the right password: blocked for now, and said so
    with pytest.raises(poplib.error_proto, match=r"-ERR \[(SYS/TEMP|LOGIN-DELAY)\]"):
        p.pass_(PASSWORD)
    p.close()


# ---- bad input -------------------------------------------------------------

def test_bad_commands_get_err_and_the_session_goes_on(pop_mail):
    inst = pop_mail(pop3d_error_limit="20")
    deliver(inst, 1)
    with socket.create_connection(("127.0.0.1", inst.pop3_port), timeout=20) as raw:
        s = context(inst).wrap_socket(stls_raw(raw), server_hostname=HOSTNAME)
        f = s.makefile("rb")
        assert cmd(s, f, "STAT").startswith(b"-ERR")          # before login
        assert cmd(s, f, "FROB").startswith(b"-ERR")
        s.sendall(b"USER " + b"x" * 400 + b"\r\n")              # over 255 octets
        assert f.readline().startswith(b"-ERR")
        cmd(s, f, f"USER bob@{DOMAIN}")
        assert cmd(s, f, f"PASS {PASSWORD}").startswith(b"+OK")
        for bad in ("RETR 0", "RETR 2", "RETR x", "DELE 99", "LIST 7", "TOP 1", "TOP 1 -1", "UIDL 1 2"):
            assert cmd(s, f, bad).startswith(b"-ERR"), bad
        assert cmd(s, f, "USER bob").startswith(b"-ERR")        # wrong state
        assert cmd(s, f, "NOOP").startswith(b"+OK")
        assert cmd(s, f, "QUIT").startswith(b"+OK")
    assert len(messages(inst, "bob")) == 1


def test_too_many_errors_close_the_connection(pop_mail):
    inst = pop_mail(pop3d_error_limit="3")
    with socket.create_connection(("127.0.0.1", inst.pop3_port), timeout=20) as raw:
        s = context(inst).wrap_socket(stls_raw(raw), server_hostname=HOSTNAME)
        f = s.makefile("rb")
        for _ in range(3):
            assert cmd(s, f, "FROB").startswith(b"-ERR")
        # the third error is the last: said so, then closed
        assert f.readline().startswith(b"-ERR Too many")
        assert f.readline() == b""


def test_pipelined_commands_answered_in_order(pop_mail):
    inst = pop_mail()
    deliver(inst, 2)
    with socket.create_connection(("127.0.0.1", inst.pop3_port), timeout=20) as raw:
        s = context(inst).wrap_socket(stls_raw(raw), server_hostname=HOSTNAME)
        f = s.makefile("rb")
        s.sendall(f"USER bob@{DOMAIN}\r\nPASS {PASSWORD}\r\nSTAT\r\nLIST\r\nDELE 1\r\nSTAT\r\nRSET\r\n"
                  "QUIT\r\n".encode())
        assert f.readline().startswith(b"+OK")
        assert f.readline().startswith(b"+OK")
        assert f.readline().startswith(b"+OK 2 ")
        assert f.readline().startswith(b"+OK")
        assert len(multiline(f).splitlines()) == 2
        assert f.readline().startswith(b"+OK")
        assert f.readline().startswith(b"+OK 1 ")
        assert f.readline().startswith(b"+OK")
        assert f.readline().startswith(b"+OK")
    assert len(messages(inst, "bob")) == 2


def test_big_mailbox(pop_mail):
    """10,000 messages: listed and fetched, then half deleted at QUIT.
    (Written straight into the Maildir as local names its files, for
    speed; the other tests deliver by SMTP.)"""
    inst = pop_mail()
    deliver(inst, 1)
    new = maildir(inst, "bob") / "new"
    owner = os.stat(new)
    for n in range(10000):
        data = b"Subject: bulk %d\nMessage-Id: <bulk.%d@x>\n\nbody %d\n" % (n, n, n)
        crlf_size = len(data) + data.count(b"\n")
        name = new / f"{1700000000 + n}.M{n}P1Q1.bulk,S={len(data)},W={crlf_size}"
        name.write_bytes(data)
        os.chown(name, owner.st_uid, owner.st_gid)
    p = login(inst)
    count, total = p.stat()
    assert count == 10001
    assert len(p.list()[1]) == 10001 and len(set(l.split()[1] for l in p.uidl()[1])) == 10001
    assert p.retr(10000)[1][0] == b"Subject: bulk 9999"
    for i in range(1, 5001):
        p.dele(i)
    assert p.quit().startswith(b"+OK")
    assert len(os.listdir(new)) + len(os.listdir(new.parent / "cur")) == 5001


# ---- privilege separation --------------------------------------------------

def test_pop3d_runs_as_the_mailbox_owner_in_mail_root(pop_mail):
    inst = pop_mail()
    uid = int(subprocess.run(["id", "-u", harness.TEST_USER], capture_output=True, text=True).stdout)
    for svc in ("pop3", "pop3s"):
        (pid,) = inst.worker_pids(svc)
        st = harness.proc_status(pid)
        assert [int(x) for x in st["Uid"].split()] == [uid] * 4
        assert os.readlink(f"/proc/{pid}/root") == str(inst.mail_root)
    # the SASL socket in the jail: only the mailbox owner gets in
    d = inst.mail_root / ".yubin"
    assert os.stat(d).st_uid == uid and (os.stat(d).st_mode & 0o777) == 0o700


# ---- fetchmail ---------------------------------------------------------------

@pytest.mark.skipif(shutil.which("fetchmail") is None, reason="fetchmail is not installed")
@pytest.mark.parametrize("keep", [True, False])
def test_fetchmail(pop_mail, tmp_path, keep):
    """A real client: fetchmail over STLS with the certificate checked,
    handing each message to an MDA; --keep leaves them (and fetchmail's
    UIDL memory then fetches nothing new), --nokeep deletes."""
    inst = pop_mail()
    deliver(inst, 3)
    out = tmp_path / "out"
    out.mkdir()
    mda = tmp_path / "mda"  # (fetchmail expands % in an mda string: a script)
    mda.write_text(f"#!/bin/sh\nexec cat > \"$(mktemp {out}/msg.XXXXXX)\"\n")
    mda.chmod(0o755)
    rc = tmp_path / "fetchmailrc"
    rc.write_text(f"poll 127.0.0.1 service {inst.pop3_port} protocol pop3 uidl\n"
                  f"  user 'bob@{DOMAIN}' password '{PASSWORD}'\n"
                  f"  sslproto tls1.2+ sslcertck sslcertfile {inst.ca.cert} sslcommonname {HOSTNAME}\n"
                  f"  {'keep' if keep else 'nokeep'}\n"
                  f"  mda {mda}\n")
    rc.chmod(0o600)
    ids = tmp_path / "fetchids"

    def run():
        return subprocess.run(["fetchmail", "-f", str(rc), "-i", str(ids), "--nosyslog", "-v"],
                              capture_output=True, text=True, timeout=60,
                              env=dict(os.environ, HOME=str(tmp_path)))
    r = run()
    assert r.returncode == 0, r.stdout + r.stderr
    got = sorted(p.read_bytes() for p in out.iterdir())
    assert len(got) == 3 and all(b"Subject: pop test" in g for g in got)
    assert len(messages(inst, "bob")) == (3 if keep else 0)
    if keep:
        r = run()
        assert r.returncode == 1, r.stdout + r.stderr  # 1: no new mail
        assert len(list(out.iterdir())) == 3
