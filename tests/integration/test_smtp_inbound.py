"""End to end, what a sender and a mailbox owner see: smtpd -> qmgr ->
local, with auth answering from the tables mailctl writes (mailfix.py).

Messages go over a raw socket, so the tests control every byte on the
wire (CRLF, dot-stuffing, pipelining, BDAT chunk boundaries) and compare
the delivered Maildir file byte for byte: local's three headers, then
smtpd's Received header, then the client's message with CRLF turned into
LF and (for DATA) the dots unstuffed.

Reply codes live in test_smtp_replies.py, SMTP smuggling in
test_smtp_smuggling.py, bounces in test_dsn.py."""
import os
import re
import shutil
import signal

import pytest

from harness import pid_alive, wait_until
from mailfix import (Smtp, add_alias, add_user, expect_delivery, maildir, make_mail, mail, messages,  # noqa: F401
                     queued_id, send_message, split_delivered, wait_messages, wait_removed)

# The client's message as it goes on the wire (DATA: dot-stuffed) and as
# it must come out of the Maildir.
WIRE = (b"From: Alice <alice@example.test>\r\n"
        b"To: Bob <bob@example.test>\r\n"
        b"Subject: byte-exact\r\n"
        b"Message-ID: <byte-exact@example.test>\r\n"
        b"\r\n"
        b"line one\r\n"
        b"..x\r\n"            # stuffed ".x"
        b"...\r\n"            # stuffed ".."
        b"..\r\n"             # stuffed "."
        b" .not at line start\r\n"
        b"x.\r\n"
        b"trailing blanks   \r\n"
        b"\ttab first\r\n"
        b"\r\n"
        b"last line\r\n")
STORED = (b"From: Alice <alice@example.test>\n"
          b"To: Bob <bob@example.test>\n"
          b"Subject: byte-exact\n"
          b"Message-ID: <byte-exact@example.test>\n"
          b"\n"
          b"line one\n"
          b".x\n"
          b"..\n"
          b".\n"
          b" .not at line start\n"
          b"x.\n"
          b"trailing blanks   \n"
          b"\ttab first\n"
          b"\n"
          b"last line\n")


def only_message(inst, user, qid):
    """Wait for the message qid to be done; user's one message."""
    wait_removed(inst, qid)
    msgs = messages(inst, user)
    assert len(msgs) == 1, f"{user} has {len(msgs)} messages, want exactly 1: {msgs!r}"
    return msgs[0]


def assert_no_mail(inst, *users):
    for u in users:
        assert messages(inst, u) == [], f"{u} got mail it should not have: {messages(inst, u)!r}"


def content_files(inst):
    d = inst.queue_dir / "content"
    return sorted(p.name for p in d.iterdir()) if d.is_dir() else []


# ---- one plain message -------------------------------------------------

def test_message_lands_once_byte_exact(mail):
    qid = send_message(mail, "bob@example.test", WIRE)
    data = only_message(mail, "bob", qid)
    expect_delivery(data, sender="alice@example.test", orig_to="bob@example.test",
                    delivered_to="bob@example.test", qid=qid, message=STORED, rcpt_for="bob@example.test")
    md = maildir(mail, "bob")
    names = os.listdir(md / "new")
    # named after the queue ID (the arrival second, then the ID), so that a
    # repeat of this delivery would find it
    arrival = int(qid[:14], 16) // 1000000
    crlf_size = len(data.replace(b"\n", b"\r\n"))
    assert names == [f"{arrival}.Y{qid}.mx.example.test,S={len(data)},W={crlf_size}"], names
    assert os.listdir(md / "tmp") == [] and os.listdir(md / "cur") == []
    # The content file leaves content/ (for spare/) once the removal is flushed.
    wait_until(lambda: content_files(mail) == [], 5, what="the content file to leave the queue")
    assert mail.log().count(f"{qid}: to=<bob@example.test>, relay=local") == 1


def spare_files(inst):
    d = inst.queue_dir / "spare"
    return {p.name: p.stat() for p in d.iterdir()} if d.is_dir() else {}


def test_queue_file_is_reused_emptied(mail):
    """A delivered message's queue file is emptied and kept in spare/; the
    next message is written into it (same inode), and nothing of the
    bigger message before shows through."""
    big = b"Subject: big\r\n\r\n" + b"x" * 998 + b"\r\n"
    qid = send_message(mail, "bob@example.test", big * 200)
    only_message(mail, "bob", qid)
    spares = wait_until(lambda: spare_files(mail), 10, what="a spare queue file")
    assert len(spares) == 1 and next(iter(spares.values())).st_size == 0, spares
    inode = next(iter(spares.values())).st_ino

    qid = send_message(mail, "carol@example.test", WIRE)
    data = only_message(mail, "carol", qid)
    expect_delivery(data, sender="alice@example.test", orig_to="carol@example.test",
                    delivered_to="carol@example.test", qid=qid, message=STORED, rcpt_for="carol@example.test")
    spares = wait_until(lambda: (f := spare_files(mail)) and qid in f and f, 10, what="the second file recycled")
    assert [st.st_ino for st in spares.values()] == [inode], spares
    assert content_files(mail) == []  # the same file: recycled means gone from content/


def test_pipelining_whole_session_in_one_write(mail):
    """EHLO..QUIT in one write: every reply comes, in order, including a
    refused recipient in the middle."""
    with Smtp(mail.smtp_port) as s:
        s.send(b"EHLO client.example.net\r\n"
               b"MAIL FROM:<alice@example.test>\r\n"
               b"RCPT TO:<bob@example.test>\r\n"
               b"RCPT TO:<nobody@example.test>\r\n"
               b"RCPT TO:<carol@example.test>\r\n"
               b"DATA\r\n" + WIRE + b".\r\n"
               b"QUIT\r\n")
        ehlo = s.reply()
        assert ehlo.code == 250 and ehlo.lines[0].startswith("mx.example.test"), ehlo
        keywords = [line.split()[0] for line in ehlo.lines[1:]]
        for kw in ("PIPELINING", "SIZE", "8BITMIME", "ENHANCEDSTATUSCODES", "SMTPUTF8", "CHUNKING", "DSN"):
            assert kw in keywords, (kw, ehlo)
        got = [s.reply() for _ in range(6)]
        assert [(r.code, r.enhanced) for r in got] == [
            (250, "2.1.0"), (250, "2.1.5"), (550, "5.1.1"), (250, "2.1.5"), (354, None), (250, "2.0.0")], got
        qid = queued_id(got[5])
        assert s.reply().is_(221, "2.0.0")
        assert s.read_eof() == b""
    for user in ("bob", "carol"):
        data = only_message(mail, user, qid)
        # Two recipients: the Received header names none of them.
        expect_delivery(data, sender="alice@example.test", orig_to=f"{user}@example.test",
                        delivered_to=f"{user}@example.test", qid=qid, message=STORED)


# ---- BDAT (CHUNKING) ---------------------------------------------------

# BDAT content is not dot-stuffed: "..x" stays "..x".
BDAT_MSG = (b"From: alice@example.test\r\n"
            b"Subject: chunked\r\n"
            b"\r\n"
            b"..x stays as is\r\n"
            b"body line\r\n")


def test_bdat_one_chunk_last(mail):
    with Smtp(mail.smtp_port) as s:
        s.ehlo()
        assert s.cmd("MAIL FROM:<alice@example.test>").is_(250, "2.1.0")
        assert s.cmd("RCPT TO:<bob@example.test>").is_(250, "2.1.5")
        s.send(b"BDAT %d LAST\r\n" % len(BDAT_MSG) + BDAT_MSG)
        qid = queued_id(s.reply())
        assert s.cmd("QUIT").is_(221)
    data = only_message(mail, "bob", qid)
    expect_delivery(data, sender="alice@example.test", orig_to="bob@example.test",
                    delivered_to="bob@example.test", qid=qid, message=BDAT_MSG.replace(b"\r\n", b"\n"),
                    rcpt_for="bob@example.test")


def test_bdat_several_chunks_pipelined(mail):
    """Chunk boundaries anywhere (inside a CRLF, inside a header name);
    all chunks in one write; "250 2.0.0 N octets received" per chunk."""
    cuts = [7, len(b"From: alice@example.test\r"), len(BDAT_MSG) - 3]
    parts = [BDAT_MSG[a:b] for a, b in zip([0] + cuts, cuts + [len(BDAT_MSG)])]
    wire = b"".join(b"BDAT %d%s\r\n" % (len(p), b" LAST" if i == len(parts) - 1 else b"") + p
                    for i, p in enumerate(parts))
    with Smtp(mail.smtp_port) as s:
        s.ehlo()
        s.send(b"MAIL FROM:<alice@example.test>\r\nRCPT TO:<bob@example.test>\r\n" + wire + b"QUIT\r\n")
        assert s.reply().is_(250, "2.1.0")
        assert s.reply().is_(250, "2.1.5")
        for p in parts[:-1]:
            r = s.reply()
            assert r.is_(250, "2.0.0") and r.text == f"2.0.0 {len(p)} octets received", r
        qid = queued_id(s.reply())
        assert s.reply().is_(221)
    data = only_message(mail, "bob", qid)
    expect_delivery(data, sender="alice@example.test", orig_to="bob@example.test",
                    delivered_to="bob@example.test", qid=qid, message=BDAT_MSG.replace(b"\r\n", b"\n"),
                    rcpt_for="bob@example.test")


def test_bdat_crlf_dot_crlf_is_content(mail):
    """Inside a BDAT chunk <CRLF>.<CRLF> is just content: no end of
    message, no commands after it; one reply per chunk."""
    chunk1 = (b"Subject: not the end\r\n\r\nbefore\r\n.\r\n"
              b"MAIL FROM:<evil@x.example>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\nafter\r\n")
    chunk2 = b".\r\nQUIT\r\n"
    with Smtp(mail.smtp_port) as s:
        s.ehlo()
        assert s.cmd("MAIL FROM:<alice@example.test>").is_(250, "2.1.0")
        assert s.cmd("RCPT TO:<carol@example.test>").is_(250, "2.1.5")
        s.send(b"BDAT %d\r\n" % len(chunk1) + chunk1)
        r = s.reply()
        assert r.is_(250, "2.0.0") and r.text == f"2.0.0 {len(chunk1)} octets received", r
        assert s.no_more_replies(), f"extra reply after one BDAT chunk: {s.buf!r}"
        s.send(b"BDAT %d LAST\r\n" % len(chunk2) + chunk2)
        qid = queued_id(s.reply())
        assert s.no_more_replies(), f"extra reply after BDAT LAST: {s.buf!r}"
        assert s.cmd("NOOP").is_(250, "2.0.0")
        assert s.cmd("QUIT").is_(221)
    data = only_message(mail, "carol", qid)
    expect_delivery(data, sender="alice@example.test", orig_to="carol@example.test",
                    delivered_to="carol@example.test", qid=qid,
                    message=(chunk1 + chunk2).replace(b"\r\n", b"\n"), rcpt_for="carol@example.test")
    assert_no_mail(mail, "bob")
    assert "evil@x.example" not in "".join(l for l in mail.log().splitlines() if "from=<" in l)


# ---- 8BITMIME, SMTPUTF8 ------------------------------------------------

def test_8bitmime_body_unchanged(mail):
    body = (b"Subject: 8bit\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
            b"Content-Transfer-Encoding: 8bit\r\n\r\n"
            b"Caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x93\xae\r\nlatin-1 \xe9\xff\x80\r\n")
    qid = send_message(mail, "bob@example.test", body, mail_params=" BODY=8BITMIME")
    data = only_message(mail, "bob", qid)
    expect_delivery(data, sender="alice@example.test", orig_to="bob@example.test",
                    delivered_to="bob@example.test", qid=qid, message=body.replace(b"\r\n", b"\n"),
                    rcpt_for="bob@example.test")


def test_smtputf8_sender(mail):
    sender = "jörg@bücher.example"
    body = "Subject: Grüße\r\nFrom: Jörg <jörg@bücher.example>\r\n\r\nHallo ✉\r\n".encode()
    with Smtp(mail.smtp_port) as s:
        s.ehlo()
        # Without SMTPUTF8 a non-ASCII address is refused.
        assert s.cmd(f"MAIL FROM:<{sender}>").is_(553, "5.6.7")
        assert s.cmd(f"MAIL FROM:<{sender}> SMTPUTF8 BODY=8BITMIME").is_(250, "2.1.0")
        assert s.cmd("RCPT TO:<bob@example.test>").is_(250, "2.1.5")
        assert s.cmd("DATA").code == 354
        s.send(body + b".\r\n")
        qid = queued_id(s.reply())
        assert s.cmd("QUIT").is_(221)
    data = only_message(mail, "bob", qid)
    expect_delivery(data, sender=sender.encode(), orig_to="bob@example.test", delivered_to="bob@example.test",
                    qid=qid, message=body.replace(b"\r\n", b"\n"), proto="UTF8SMTP",
                    rcpt_for="bob@example.test")


def test_smtputf8_recipient(mail):
    """A hosted user with a UTF-8 name gets mail under SMTPUTF8 (into
    mail_root/DOMAIN/NAME/Maildir, the name as UTF-8); without SMTPUTF8 the
    address is refused with 553 5.6.7, and an unknown UTF-8 user gets the
    same 550 5.1.1 as any other. The session stays usable throughout."""
    add_user(mail, "jörg@example.test")
    body = "Subject: Grüße\r\n\r\nfür Jörg\r\n".encode()
    with Smtp(mail.smtp_port) as s:
        s.ehlo()
        assert s.cmd("MAIL FROM:<alice@example.test>").is_(250, "2.1.0")
        assert s.cmd("RCPT TO:<jörg@example.test>").is_(553, "5.6.7")
        assert s.cmd("RSET").is_(250, "2.0.0")
        assert s.cmd("MAIL FROM:<alice@example.test> SMTPUTF8 BODY=8BITMIME").is_(250, "2.1.0")
        assert s.cmd("RCPT TO:<jürgen@example.test>").is_(550, "5.1.1")
        assert s.cmd("RCPT TO:<Jörg@example.test>").is_(250, "2.1.5")
        assert s.cmd("DATA").code == 354
        s.send(body + b".\r\n")
        qid = queued_id(s.reply())
    data = only_message(mail, "jörg", qid)
    expect_delivery(data, sender="alice@example.test", orig_to="Jörg@example.test".encode(),
                    delivered_to="jörg@example.test".encode(), qid=qid, message=body.replace(b"\r\n", b"\n"),
                    proto="UTF8SMTP", rcpt_for="Jörg@example.test".encode())
    assert (mail.mail_root / "example.test" / "jörg" / "Maildir" / "new").is_dir()


def test_user_names_that_pass_for_others_refused(mail):
    """Invisible and bidi control characters would let one UTF-8 user name
    look like another: mailctl refuses them (as it refuses bad UTF-8)."""
    for name in ("jo\u202erg@example.test", "jo\u200brg@example.test"):
        r = add_user(mail, name, check=False)
        assert r.returncode != 0 and "user name" in r.stderr, (name, r.returncode, r.stderr)


# ---- aliases, catch-all, plus-addressing -------------------------------

BODY = b"Subject: hello\r\n\r\nhello\r\n"


def test_alias_to_one_user(mail):
    qid = send_message(mail, "info@example.test", BODY)
    data = only_message(mail, "bob", qid)
    m, rest = split_delivered(data)
    assert m.group("dt") == b"bob@example.test" and rest == b"Subject: hello\n\nhello\n"


def test_alias_to_two_users(mail):
    qid = send_message(mail, "team@example.test", BODY)
    for user in ("bob", "carol"):
        m, rest = split_delivered(only_message(mail, user, qid))
        assert m.group("dt") == f"{user}@example.test".encode() and rest == b"Subject: hello\n\nhello\n"
    assert_no_mail(mail, "alice", "dave")


def test_two_aliases_same_user_delivered_once(mail):
    """info -> bob, team -> bob + carol, and bob himself: bob once, carol once."""
    qid = send_message(mail, ["info@example.test", "team@example.test", "Bob@Example.Test"], BODY)
    only_message(mail, "bob", qid)
    only_message(mail, "carol", qid)
    assert mail.log().count(f"{qid}: to=<bob@example.test>") == 1


def test_catch_all(mail):
    """@example.test -> dave for every unknown local part (added while
    running: auth sees the new table); an exact user still wins."""
    add_alias(mail, "@example.test", "dave@example.test")
    qid = send_message(mail, "whoever@example.test", BODY)
    m, _ = split_delivered(only_message(mail, "dave", qid))
    assert m.group("dt") == b"dave@example.test"
    qid2 = send_message(mail, "bob@example.test", BODY)
    only_message(mail, "bob", qid2)
    assert len(messages(mail, "dave")) == 1, "the catch-all took mail for an existing user"


def test_plus_addressing(mail):
    qid = send_message(mail, "bob+lists@example.test", BODY)
    m, rest = split_delivered(only_message(mail, "bob", qid))
    assert m.group("dt") == b"bob@example.test" and rest == b"Subject: hello\n\nhello\n"


def test_x_original_to_is_the_address_the_client_gave(mail):
    """X-Original-To (and local's orig_to=) name the recipient as the
    client gave it (local/PROTOCOL.md: `recipient` is "the envelope
    recipient as the sender wrote it"), as Postfix does; Delivered-To
    names the mailbox."""
    cases = {"info@example.test": "bob", "bob+tag@example.test": "bob", "sales@example.test": "carol"}
    for rcpt, user in cases.items():
        qid = send_message(mail, rcpt, BODY)
        wait_removed(mail, qid)
    got = []
    for user in ("bob", "carol"):
        for data in messages(mail, user):
            m, _ = split_delivered(data)
            got.append((m.group("xot").decode(), m.group("dt").decode()))
    assert sorted(got) == sorted((rcpt, f"{user}@example.test") for rcpt, user in cases.items())


# ---- durability --------------------------------------------------------

def kill_qmgr_and_wait_restart(inst):
    old = inst.worker_pids("qmgr")
    assert len(old) == 1
    os.kill(old[0], signal.SIGKILL)
    wait_until(lambda: not pid_alive(old[0]), 5, what="the old qmgr to die")
    inst.wait_status(lambda svc: len(svc["workers"]) == 1 and svc["workers"][0]["pid"] != old[0],
                     "qmgr", timeout=15, what="master to restart qmgr")


def stopped(pids):
    """Context: the processes pids are SIGSTOPped inside, always resumed."""
    import contextlib

    @contextlib.contextmanager
    def cm():
        for p in pids:
            os.kill(p, signal.SIGSTOP)
        try:
            yield
        finally:
            for p in pids:
                if pid_alive(p):
                    os.kill(p, signal.SIGCONT)
    return cm()


needs_ss = pytest.mark.skipif(shutil.which("ss") is None, reason="needs ss (iproute2) to see socket queues")


def listen_queue(path):
    """Connections waiting in the accept queue of the UNIX socket path."""
    import subprocess
    out = subprocess.run(["ss", "-xlH"], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        f = line.split()
        if len(f) >= 5 and f[4] == str(path):
            return int(f[2])
    return 0


def test_kill_qmgr_after_250_delivers_once(mail):
    """250 is a promise: qmgr killed with SIGKILL right after it (before
    it could hand the message on: auth, which it must ask first, is held
    stopped), master restarts qmgr, the message is delivered once."""
    with Smtp(mail.smtp_port) as s:
        s.ehlo()
        assert s.cmd("MAIL FROM:<alice@example.test>").is_(250, "2.1.0")
        assert s.cmd("RCPT TO:<bob@example.test>").is_(250, "2.1.5")
        # smtpd asked auth already; from here only qmgr needs it
        with stopped(mail.worker_pids("auth")):
            s.send(b"DATA\r\n")
            assert s.reply().code == 354
            s.send(BODY + b".\r\n")
            qid = queued_id(s.reply())
            kill_qmgr_and_wait_restart(mail)
            # still nothing delivered: auth is held, so no qmgr could route it
            assert messages(mail, "bob") == []
    wait_removed(mail, qid, timeout=15)
    wait_until(lambda: content_files(mail) == [], 15, what="the queue to be empty")
    msgs = messages(mail, "bob")
    assert len(msgs) == 1, f"delivered {len(msgs)} times after the qmgr restart"
    m, _ = split_delivered(msgs[0])
    assert m.group("id") == qid.encode()
    # and the path works after the restart
    qid2 = send_message(mail, "carol@example.test", BODY)
    only_message(mail, "carol", qid2)


@needs_ss
def test_kill_qmgr_during_delivery_no_duplicate(mail):
    """DESIGN.md: after kill -9 of any process the message "is delivered
    once". Here qmgr dies after local delivered but before qmgr read the
    answer (made certain by holding processes with SIGSTOP: local until
    qmgr's request is in its socket, then qmgr until local's answer is
    in its socket). The restarted qmgr must not deliver it again."""
    local_sock = mail.queue_dir / "private" / "local"
    qmgr = mail.worker_pids("qmgr")
    with stopped(mail.worker_pids("local")):
        qid = send_message(mail, "bob@example.test", BODY)
        wait_until(lambda: listen_queue(local_sock) >= 1, 10, what="qmgr to hand the message to local")
        os.kill(qmgr[0], signal.SIGSTOP)
    wait_messages(mail, "bob", 1)  # local delivered; qmgr has not heard
    kill_qmgr_and_wait_restart(mail)
    wait_removed(mail, qid, timeout=15)
    wait_until(lambda: content_files(mail) == [], 15, what="the queue to be empty")
    msgs = messages(mail, "bob")
    assert len(msgs) == 1, (f"bob got the message {len(msgs)} times; local says:\n"
                            + "\n".join(l for l in mail.log().splitlines() if f"{qid}: to=" in l))


def test_x_original_to_is_not_the_clients_orcpt(mail):
    """ORCPT= is the client's claim for DSNs (RFC 3461), not the address
    it sent to: X-Original-To must stay the RCPT TO address, or any client
    can write what it likes into that header (and local's orig_to=)."""
    with Smtp(mail.smtp_port) as s:
        s.ehlo()
        assert s.cmd("MAIL FROM:<alice@example.test>").is_(250, "2.1.0")
        assert s.cmd("RCPT TO:<info@example.test> ORCPT=rfc822;ceo@example.org").is_(250, "2.1.5")
        assert s.cmd("DATA").code == 354
        s.send(BODY + b".\r\n")
        qid = queued_id(s.reply())
    m, _ = split_delivered(only_message(mail, "bob", qid))
    assert m.group("xot") == b"info@example.test", m.group("xot")


# ---- more shapes of the same path --------------------------------------

def test_two_transactions_one_session(mail):
    """Recipients of one transaction do not leak into the next (also not
    after a refused one)."""
    with Smtp(mail.smtp_port) as s:
        s.ehlo()
        ids = []
        for rcpt in ("bob@example.test", "carol@example.test"):
            assert s.cmd("MAIL FROM:<alice@example.test>").is_(250, "2.1.0")
            assert s.cmd(f"RCPT TO:<{rcpt}>").is_(250, "2.1.5")
            assert s.cmd("DATA").code == 354
            s.send(b"Subject: to " + rcpt.encode() + b"\r\n\r\nx\r\n.\r\n")
            ids.append(queued_id(s.reply()))
            # a transaction that is abandoned with RSET
            assert s.cmd("MAIL FROM:<alice@example.test>").is_(250, "2.1.0")
            assert s.cmd("RCPT TO:<dave@example.test>").is_(250, "2.1.5")
            assert s.cmd("RSET").is_(250, "2.0.0")
        assert s.cmd("QUIT").is_(221)
    assert ids[0] != ids[1]
    b = only_message(mail, "bob", ids[0])
    c = only_message(mail, "carol", ids[1])
    assert b"Subject: to bob@" in b and b"Subject: to carol@" in c
    assert_no_mail(mail, "dave", "alice")


def test_empty_message_and_helo(mail):
    """HELO (not EHLO): "with SMTP"; an empty message is just our
    Received header; a HELO name cannot break the Received header."""
    with Smtp(mail.smtp_port) as s:
        r = s.cmd("HELO odd(name);[x]")
        assert r.code == 250 and r.text == "mx.example.test", r
        assert s.cmd("MAIL FROM:<alice@example.test> SIZE=10").is_(555, "5.5.4")
        assert s.cmd("MAIL FROM:<alice@example.test>").is_(250, "2.1.0")
        assert s.cmd("RCPT TO:<bob@example.test>").is_(250, "2.1.5")
        assert s.cmd("DATA").code == 354
        s.send(b".\r\n")
        qid = queued_id(s.reply())
    data = only_message(mail, "bob", qid)
    expect_delivery(data, sender="alice@example.test", orig_to="bob@example.test",
                    delivered_to="bob@example.test", qid=qid, message=b"", proto="SMTP",
                    helo="odd?name???x?", rcpt_for="bob@example.test")


def test_long_lines_and_large_message_intact(mail):
    """A 1.5 MB message with a 5000-octet line and a stuffed dot on every
    line, sent in odd-sized pieces: stored exactly (lines never split,
    dots unstuffed across every read boundary)."""
    lines = [b"Subject: large\r\n", b"\r\n", b"x" * 5000 + b"\r\n"]
    lines += [b"..%06d %s\r\n" % (i, b"y" * (i % 97)) for i in range(25000)]
    wire = b"".join(lines)
    stored = b"".join(l[1:] if l.startswith(b"..") else l for l in lines).replace(b"\r\n", b"\n")
    with Smtp(mail.smtp_port) as s:
        s.ehlo()
        assert s.cmd("MAIL FROM:<alice@example.test>").is_(250, "2.1.0")
        assert s.cmd("RCPT TO:<bob@example.test>").is_(250, "2.1.5")
        assert s.cmd("DATA").code == 354
        data = wire + b".\r\n"
        pos, step = 0, 1
        while pos < len(data):
            s.send(data[pos:pos + step])
            pos += step
            step = step * 7 % 65521 + 1
        qid = queued_id(s.reply())
    got = only_message(mail, "bob", qid)
    _, rest = split_delivered(got)
    assert rest == stored


def test_byte_by_byte(mail):
    """Every octet in its own segment: ".", CR and LF split from their
    neighbours still unstuff and terminate right."""
    import socket as socketmod
    with Smtp(mail.smtp_port) as s:
        s.sock.setsockopt(socketmod.IPPROTO_TCP, socketmod.TCP_NODELAY, 1)
        s.ehlo()
        assert s.cmd("MAIL FROM:<alice@example.test>").is_(250, "2.1.0")
        assert s.cmd("RCPT TO:<bob@example.test>").is_(250, "2.1.5")
        assert s.cmd("DATA").code == 354
        for b in WIRE + b".\r\n":
            s.send(bytes([b]))
        qid = queued_id(s.reply())
    expect_delivery(only_message(mail, "bob", qid), sender="alice@example.test", orig_to="bob@example.test",
                    delivered_to="bob@example.test", qid=qid, message=STORED, rcpt_for="bob@example.test")


def test_concurrent_sessions_each_message_once(mail):
    """Five clients at once, four messages each: every message lands once
    (qmgr commits concurrent enqueues together)."""
    import threading
    ids, errors = [], []

    def client(n):
        try:
            with Smtp(mail.smtp_port) as s:
                s.ehlo(f"client{n}.example.net")
                for k in range(4):
                    s.send(b"MAIL FROM:<alice@example.test>\r\nRCPT TO:<bob@example.test>\r\n"
                           b"RCPT TO:<team@example.test>\r\nDATA\r\n")
                    assert s.reply().is_(250) and s.reply().is_(250) and s.reply().is_(250)
                    assert s.reply().code == 354
                    s.send(b"Subject: c%d m%d\r\n\r\nx\r\n.\r\n" % (n, k))
                    ids.append(queued_id(s.reply()))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == [] and len(ids) == 20 and len(set(ids)) == 20, (errors, ids)
    for qid in ids:
        wait_removed(mail, qid)
    for user in ("bob", "carol"):
        subjects = sorted(re.search(rb"Subject: (c\d m\d)", m).group(1) for m in messages(mail, user))
        assert subjects == sorted(b"c%d m%d" % (n, k) for n in range(5) for k in range(4)), (user, subjects)


def test_bdat_zero_last_and_sequence(mail):
    """BDAT 0 LAST ends a message (also an empty one); DATA or RCPT
    between BDAT chunks is 503 5.5.1 and the message still completes."""
    with Smtp(mail.smtp_port) as s:
        s.ehlo()
        assert s.cmd("MAIL FROM:<alice@example.test>").is_(250, "2.1.0")
        assert s.cmd("RCPT TO:<bob@example.test>").is_(250, "2.1.5")
        s.send(b"BDAT 0 LAST\r\n")
        qid_empty = queued_id(s.reply())
        assert s.cmd("MAIL FROM:<alice@example.test>").is_(250, "2.1.0")
        assert s.cmd("RCPT TO:<carol@example.test>").is_(250, "2.1.5")
        s.send(b"BDAT 9\r\nSubject: ")
        assert s.reply().is_(250, "2.0.0")
        assert s.cmd("DATA").is_(503, "5.5.1")
        assert s.cmd("RCPT TO:<dave@example.test>").is_(503, "5.5.1")
        s.send(b"BDAT 12\r\nsplit\r\n\r\nx\r\n")
        assert s.reply().is_(250, "2.0.0")
        s.send(b"BDAT 0 LAST\r\n")
        qid = queued_id(s.reply())
    m, rest = split_delivered(only_message(mail, "bob", qid_empty))
    assert rest == b""
    m, rest = split_delivered(only_message(mail, "carol", qid))
    assert rest == b"Subject: split\n\nx\n"
    assert_no_mail(mail, "dave")


def test_quoted_sender_and_source_route(mail):
    """A quoted local part in MAIL FROM goes into Return-Path as quoted;
    a source route in RCPT TO is ignored (RFC 5321 4.1.1.3, C)."""
    with Smtp(mail.smtp_port) as s:
        s.ehlo()
        assert s.cmd('MAIL FROM:<"john doe"@example.net>').is_(250, "2.1.0")
        assert s.cmd("RCPT TO:<@relay.example,@r2.example:carol@example.test>").is_(250, "2.1.5")
        assert s.cmd("DATA").code == 354
        s.send(BODY + b".\r\n")
        qid = queued_id(s.reply())
    m, _ = split_delivered(only_message(mail, "carol", qid))
    assert m.group("rp") == b'"john doe"@example.net'


def test_client_gone_mid_data_leaves_nothing(mail):
    s = Smtp(mail.smtp_port)
    s.ehlo()
    assert s.cmd("MAIL FROM:<alice@example.test>").is_(250, "2.1.0")
    assert s.cmd("RCPT TO:<bob@example.test>").is_(250, "2.1.5")
    assert s.cmd("DATA").code == 354
    s.send(b"Subject: cut\r\n\r\nhalf a mess")
    s.close()
    mail.wait_for_log(r"lost connection after END-OF-MESSAGE from unknown\[127\.0\.0\.1\]")
    wait_until(lambda: content_files(mail) == [], 5, what="the content file of the cut message to go")
    # the next message passes the cut one in the queue, which never was
    qid = send_message(mail, "bob@example.test", BODY)
    m, _ = split_delivered(only_message(mail, "bob", qid))
    assert m.group("id") == qid.encode()


def test_disabled_user_still_receives(mail):
    r = mail.mailctl("user", "set", "bob@example.test", "--disable")
    assert r.returncode == 0, r.stderr
    qid = send_message(mail, "bob@example.test", BODY)
    only_message(mail, "bob", qid)


def server_recv_queue(port):
    """Octets waiting unread in smtpd's end of the (one) connection to port."""
    import subprocess
    out = subprocess.run(["ss", "-tnH", "state", "established", f"( sport = :{port} )"],
                         capture_output=True, text=True, check=True).stdout
    return max((int(line.split()[0]) for line in out.splitlines() if line.strip()), default=0)


@needs_ss
def test_large_pipelined_bdat_while_lookup_is_slow(mail):
    """MAIL, RCPT and a 1.5 MB BDAT LAST in one go while auth is held
    (a slow lookup): smtpd must stop reading (flow control) rather than
    buffer past its 1 MiB limit and drop the client with 421; once auth
    answers, the message is accepted whole."""
    import threading
    body = b"Subject: big chunk\r\n\r\n" + (b"w" * 98 + b"\r\n") * 15000
    wire = (b"MAIL FROM:<alice@example.test>\r\nRCPT TO:<bob@example.test>\r\n"
            b"BDAT %d LAST\r\n" % len(body) + body)
    with Smtp(mail.smtp_port) as s:
        s.ehlo()
        sender = None
        with stopped(mail.worker_pids("auth")):
            sender = threading.Thread(target=s.sock.sendall, args=(wire,), daemon=True)
            sender.start()
            assert s.reply().is_(250, "2.1.0")
            # smtpd has stopped reading: data piles up in its socket. (If it
            # dropped us instead, the 421 shows up below.)
            wait_until(lambda: server_recv_queue(mail.smtp_port) >= 65536 or "pipelined input" in mail.log(),
                       10, what="smtpd to stop reading (or to give up)")
        r = s.reply()
        assert r.is_(250, "2.1.5"), f"while auth was slow: {r!r}"
        qid = queued_id(s.reply())
        sender.join(10)
    _, rest = split_delivered(only_message(mail, "bob", qid))
    assert rest == body.replace(b"\r\n", b"\n")
