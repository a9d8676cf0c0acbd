"""Every refusal a sender can meet, end to end (DESIGN.md "Status codes
users meet", libmail/smtp_reply.c): the exact code and enhanced status,
what was (not) delivered, and that the session goes on where it should."""
import re
import shutil
import time

import pytest

from mailfix import (BODY_SMALL, Smtp, make_mail, mail, messages, queued_id, send_message,  # noqa: F401
                     start_mail, wait_removed)
from harness import wait_until


def session(inst):
    s = Smtp(inst.smtp_port)
    s.ehlo()
    return s


def content_files(inst):
    d = inst.queue_dir / "content"
    return sorted(p.name for p in d.iterdir()) if d.is_dir() else []


def deliver_small(s, rcpt="bob@example.test"):
    """A good message on an open session; returns its queue ID."""
    assert s.cmd("MAIL FROM:<alice@example.test>").is_(250, "2.1.0")
    assert s.cmd(f"RCPT TO:<{rcpt}>").is_(250, "2.1.5")
    assert s.cmd("DATA").code == 354
    s.send(BODY_SMALL + b".\r\n")
    return queued_id(s.reply())


def only_mail_is(inst, user, qid):
    """After qid is done, user's Maildir holds exactly that message."""
    wait_removed(inst, qid)
    msgs = messages(inst, user)
    assert len(msgs) == 1 and f" id {qid}".encode() in msgs[0], msgs


# ---- recipients ---------------------------------------------------------

def test_unknown_user_550_511(mail):
    with session(mail) as s:
        assert s.cmd("MAIL FROM:<alice@example.test>").is_(250, "2.1.0")
        r = s.cmd("RCPT TO:<nobody@example.test>")
        assert r.is_(550, "5.1.1"), r
        assert r.text == "5.1.1 Recipient address rejected: user unknown", r
        # Nothing accepted: DATA has nobody to deliver to.
        assert s.cmd("DATA").is_(554, "5.5.1")
    assert mail.wait_for_log(r"reject: RCPT from unknown\[127\.0\.0\.1\]: 550 5\.1\.1 <nobody@example\.test>")


def test_relay_denied_554_571(mail):
    with session(mail) as s:
        assert s.cmd("MAIL FROM:<alice@example.test>").is_(250, "2.1.0")
        r = s.cmd("RCPT TO:<someone@elsewhere.example>")
        assert r.is_(554, "5.7.1") and r.text == "5.7.1 Relay access denied", r
        # the transaction goes on for the local recipient
        assert s.cmd("RCPT TO:<bob@example.test>").is_(250, "2.1.5")
        assert s.cmd("DATA").code == 354
        s.send(BODY_SMALL + b".\r\n")
        qid = queued_id(s.reply())
    only_mail_is(mail, "bob", qid)
    assert "elsewhere.example" not in "".join(l for l in mail.log().splitlines() if "qmgr" in l)


def test_malformed_recipient_501_513(mail):
    with session(mail) as s:
        assert s.cmd("MAIL FROM:<alice@example.test>").is_(250, "2.1.0")
        for bad in ("<bob@@example.test>", "<bob@>", "<bob example.test>", "<@example.test>"):
            r = s.cmd(f"RCPT TO:{bad}")
            assert r.is_(501, "5.1.3"), (bad, r)
        assert s.cmd("RCPT TO:<bob@example.test>").is_(250, "2.1.5")


def test_malformed_sender_553_517(mail):
    with session(mail) as s:
        for bad in ("<alice@@example.test>", "<alice@>", "<alice example.test>"):
            r = s.cmd(f"MAIL FROM:{bad}")
            assert r.is_(553, "5.1.7"), (bad, r)
            assert r.text == "5.1.7 Sender address rejected: bad address syntax", r
        qid = deliver_small(s)
    only_mail_is(mail, "bob", qid)


def test_too_many_recipients_452_453(make_mail):
    inst = make_mail(smtpd_recipient_limit=2)
    with session(inst) as s:
        assert s.cmd("MAIL FROM:<alice@example.test>").is_(250, "2.1.0")
        assert s.cmd("RCPT TO:<bob@example.test>").is_(250, "2.1.5")
        assert s.cmd("RCPT TO:<carol@example.test>").is_(250, "2.1.5")
        r = s.cmd("RCPT TO:<dave@example.test>")
        assert r.is_(452, "4.5.3") and r.text == "4.5.3 Too many recipients", r
        assert s.cmd("DATA").code == 354
        s.send(BODY_SMALL + b".\r\n")
        qid = queued_id(s.reply())
    wait_removed(inst, qid)
    assert len(messages(inst, "bob")) == 1 and len(messages(inst, "carol")) == 1
    assert messages(inst, "dave") == []


# ---- size ---------------------------------------------------------------

def test_declared_size_over_limit_552_534(make_mail):
    inst = make_mail(message_size_limit="10k")
    with Smtp(inst.smtp_port) as s:
        ehlo = s.ehlo()
        assert "SIZE 10240" in ehlo.lines, ehlo
        r = s.cmd("MAIL FROM:<alice@example.test> SIZE=10241")
        assert r.is_(552, "5.3.4") and r.text == "5.3.4 Message size exceeds fixed limit", r
        assert s.cmd("RCPT TO:<bob@example.test>").is_(503, "5.5.1")  # no transaction began
        assert s.cmd("MAIL FROM:<alice@example.test> SIZE=10240").is_(250, "2.1.0")


@pytest.mark.parametrize("how", ["DATA", "BDAT"])
def test_message_grows_past_limit_552_534(make_mail, how):
    """No SIZE=, the message streams past message_size_limit: 552 5.3.4
    at its end (DATA) or at the chunk that crosses it (BDAT); nothing is
    queued or delivered; the session goes on."""
    inst = make_mail(message_size_limit="10k")
    big = b"Subject: big\r\n\r\n" + (b"x" * 78 + b"\r\n") * 200  # 16 kB
    with session(inst) as s:
        assert s.cmd("MAIL FROM:<alice@example.test>").is_(250, "2.1.0")
        assert s.cmd("RCPT TO:<bob@example.test>").is_(250, "2.1.5")
        if how == "DATA":
            assert s.cmd("DATA").code == 354
            s.send(big + b".\r\n")
        else:
            s.send(b"BDAT %d\r\n" % len(big) + big)
        r = s.reply()
        assert r.is_(552, "5.3.4"), r
        if how == "BDAT":
            # the transaction is over: a last chunk has nothing to finish
            s.send(b"BDAT 0 LAST\r\n")
            assert s.reply().is_(503, "5.5.1")
        assert content_files(inst) == [], "a refused message left its content file"
        qid = deliver_small(s)
    only_mail_is(inst, "bob", qid)
    assert "size=16" not in inst.log()


# ---- quota --------------------------------------------------------------

QUOTA_USERS = {"alice": None, "bob": "2k", "carol": None, "dave": None}


def fill_bob(inst):
    """A first message of about 1 kB into bob's 2 kB mailbox."""
    body = b"Subject: filler\r\n\r\n" + (b"y" * 70 + b"\r\n") * 10
    qid = send_message(inst, "bob@example.test", body)
    wait_removed(inst, qid)
    assert len(messages(inst, "bob")) == 1


@pytest.mark.parametrize("permanent, code, status, text", [
    ("no", 452, "4.2.2", "4.2.2 Mailbox full, try again later"),
    ("yes", 552, "5.2.2", "5.2.2 Mailbox full"),
])
def test_mailbox_over_quota_at_rcpt(make_mail, permanent, code, status, text):
    inst = make_mail(users=QUOTA_USERS, quota_over_permanent=permanent)
    fill_bob(inst)
    with session(inst) as s:
        assert s.cmd("MAIL FROM:<alice@example.test> SIZE=1500").is_(250, "2.1.0")
        r = s.cmd("RCPT TO:<bob@example.test>")
        assert r.is_(code, status) and r.text == text, r
        # through an alias too
        assert s.cmd("RCPT TO:<info@example.test>").is_(code, status)
        # others are not affected
        assert s.cmd("RCPT TO:<carol@example.test>").is_(250, "2.1.5")
        assert s.cmd("RSET").is_(250)
        # what still fits is taken
        assert s.cmd("MAIL FROM:<alice@example.test> SIZE=200").is_(250, "2.1.0")
        assert s.cmd("RCPT TO:<bob@example.test>").is_(250, "2.1.5")


def test_quota_raised_by_operator_counts_at_rcpt(make_mail):
    """The operator raises a full mailbox's quota (mailctl user set): the
    next RCPT must be judged against the new quota, not the old one that
    the last delivery left in maildirsize."""
    inst = make_mail(users=QUOTA_USERS)
    fill_bob(inst)
    r = inst.mailctl("user", "set", "bob@example.test", "--quota", "10M")
    assert r.returncode == 0, r.stderr
    with session(inst) as s:
        assert s.cmd("MAIL FROM:<alice@example.test> SIZE=1500").is_(250, "2.1.0")
        r = s.cmd("RCPT TO:<bob@example.test>")
        assert r.is_(250, "2.1.5"), f"quota raised to 10M, yet: {r!r}"


def test_quota_lowered_by_operator_counts_at_rcpt(make_mail):
    inst = make_mail()
    fill_bob(inst)  # unlimited: maildirsize says 0S
    r = inst.mailctl("user", "set", "bob@example.test", "--quota", "100")
    assert r.returncode == 0, r.stderr
    with session(inst) as s:
        assert s.cmd("MAIL FROM:<alice@example.test>").is_(250, "2.1.0")
        r = s.cmd("RCPT TO:<bob@example.test>")
        assert r.is_(452, "4.2.2"), f"bob holds ~1 kB with a 100-byte quota, yet: {r!r}"


# ---- command sequence and syntax ------------------------------------------

def test_rcpt_before_mail_503_551(mail):
    with session(mail) as s:
        r = s.cmd("RCPT TO:<bob@example.test>")
        assert r.is_(503, "5.5.1") and r.text == "5.5.1 Need MAIL command", r


def test_data_before_rcpt_503_551(mail):
    with session(mail) as s:
        assert s.cmd("DATA").is_(503, "5.5.1")  # no MAIL yet
        assert s.cmd("MAIL FROM:<alice@example.test>").is_(250, "2.1.0")
        r = s.cmd("DATA")
        assert r.is_(503, "5.5.1") and r.text == "5.5.1 Need RCPT command", r
        # BDAT likewise (its chunk is read and dropped first)
        s.send(b"BDAT 5 LAST\r\nhello")
        assert s.reply().is_(503, "5.5.1")
        assert s.cmd("NOOP").is_(250, "2.0.0")  # still in step


def test_mail_before_ehlo_503_551(mail):
    with Smtp(mail.smtp_port) as s:
        assert s.greeting.code == 220 and s.greeting.text.startswith("mx.example.test ESMTP"), s.greeting
        r = s.cmd("MAIL FROM:<alice@example.test>")
        assert r.is_(503, "5.5.1") and r.text == "5.5.1 Send EHLO or HELO first", r


def test_nested_mail_503_551(mail):
    with session(mail) as s:
        assert s.cmd("MAIL FROM:<alice@example.test>").is_(250, "2.1.0")
        assert s.cmd("MAIL FROM:<alice@example.test>").is_(503, "5.5.1")


def test_unknown_command_500_552(mail):
    with session(mail) as s:
        r = s.cmd("FROBNICATE now")
        assert r.is_(500, "5.5.2") and r.text == "5.5.2 Command not recognized", r
        assert s.cmd("NOOP").is_(250, "2.0.0")


def test_line_too_long_500_552(mail):
    with session(mail) as s:
        r = s.cmd("NOOP " + "x" * 600)
        assert r.is_(500, "5.5.2") and r.text == "5.5.2 Line too long", r
        # a line with no end in sight: one reply, then back in step
        s.send(b"y" * 5000 + b"\r\n")
        assert s.reply().is_(500, "5.5.2")
        assert s.no_more_replies(), s.buf
        qid = deliver_small(s)
    only_mail_is(mail, "bob", qid)


def test_too_many_errors_421_and_close(make_mail):
    inst = make_mail(smtpd_error_limit=3)
    with session(inst) as s:
        assert s.cmd("FOO").is_(500, "5.5.2")
        assert s.cmd("BAR").is_(500, "5.5.2")
        assert s.cmd("BAZ").is_(500, "5.5.2")
        r = s.reply()
        assert r.is_(421, "4.7.0") and r.text == "4.7.0 Too many errors, closing connection", r
        assert s.read_eof() == b""


def test_idle_timeout_421_442(make_mail):
    inst = make_mail(smtpd_timeout="2s")
    with session(inst) as s:
        t0 = time.monotonic()
        s.sock.settimeout(10)
        r = s.reply()
        waited = time.monotonic() - t0
        assert r.is_(421, "4.4.2") and r.text == "4.4.2 Idle timeout, closing connection", r
        assert 1.5 <= waited <= 6, f"421 after {waited:.1f}s with smtpd_timeout = 2s"
        assert s.read_eof() == b""


def test_idle_timeout_inside_data_delivers_nothing(make_mail):
    inst = make_mail(smtpd_timeout="2s")
    with session(inst) as s:
        assert s.cmd("MAIL FROM:<alice@example.test>").is_(250, "2.1.0")
        assert s.cmd("RCPT TO:<bob@example.test>").is_(250, "2.1.5")
        assert s.cmd("DATA").code == 354
        s.send(b"Subject: half\r\n\r\nhalf a message\r\n")
        s.sock.settimeout(10)
        assert s.reply().is_(421, "4.4.2")
        assert s.read_eof() == b""
    wait_until(lambda: content_files(inst) == [], 5, what="the half message's content file to go")
    assert messages(inst, "bob") == []


# ---- content checks -----------------------------------------------------

def received(n):
    return b"".join(b"Received: from hop%d.example (hop%d.example [192.0.2.%d])\r\n"
                    b"\tby relay%d.example; Mon, 1 Jan 2024 00:00:00 +0000\r\n" % (i, i, i, i)
                    for i in range(n))


@pytest.mark.parametrize("how", ["DATA", "BDAT"])
def test_mail_loop_554_546(make_mail, how):
    """More Received headers than hopcount_limit: 554 5.4.6 at the end of
    the message, nothing delivered; well under the limit passes."""
    inst = make_mail(hopcount_limit=5)

    def transfer(s, content):
        assert s.cmd("MAIL FROM:<alice@example.test>").is_(250, "2.1.0")
        assert s.cmd("RCPT TO:<bob@example.test>").is_(250, "2.1.5")
        if how == "DATA":
            assert s.cmd("DATA").code == 354
            s.send(content + b".\r\n")
        else:
            s.send(b"BDAT %d LAST\r\n" % len(content) + content)
        return s.reply()

    with session(inst) as s:
        r = transfer(s, received(6) + b"Subject: loop\r\n\r\nloop\r\n")
        assert r.is_(554, "5.4.6") and r.text == "5.4.6 Too many Received headers: mail loop", r
        qid = queued_id(transfer(s, received(3) + b"Subject: fine\r\n\r\nfine\r\n"))
    only_mail_is(inst, "bob", qid)
    assert b"Subject: fine" in messages(inst, "bob")[0]


def test_queue_below_minfree_452_431(make_mail):
    """queue_minfree above the free space: 452 4.3.1 at DATA (and at the
    first BDAT chunk). yubin.conf caps queue_minfree at 1024G, so that is
    the "huge value" (100000G is refused at start)."""
    inst = make_mail(start=False)
    free = shutil.disk_usage(inst.queue_dir).free
    if free >= 1024 ** 4:
        pytest.skip("more than 1 TiB free: queue_minfree cannot exceed it")
    inst.params["queue_minfree"] = "1024G"
    inst.write_config()
    start_mail(inst)
    with session(inst) as s:
        assert s.cmd("MAIL FROM:<alice@example.test>").is_(250, "2.1.0")
        assert s.cmd("RCPT TO:<bob@example.test>").is_(250, "2.1.5")
        r = s.cmd("DATA")
        assert r.is_(452, "4.3.1") and r.text == "4.3.1 Insufficient system storage, try again later", r
        assert s.cmd("MAIL FROM:<alice@example.test>").is_(250, "2.1.0")
        assert s.cmd("RCPT TO:<bob@example.test>").is_(250, "2.1.5")
        s.send(b"BDAT 5 LAST\r\nhello")
        assert s.reply().is_(452, "4.3.1")
        assert s.cmd("NOOP").is_(250)
    assert content_files(inst) == []


def test_shutdown_421_432(mail):
    """mailctl stop with a client connected: 421 4.3.2, then close."""
    with session(mail) as s:
        assert s.cmd("MAIL FROM:<alice@example.test>").is_(250, "2.1.0")
        r = mail.stop()
        assert r.returncode == 0, r.stderr
        s.sock.settimeout(10)
        rep = s.reply()
        assert rep.is_(421, "4.3.2") and rep.text == "4.3.2 Service shutting down, try again later", rep
        assert s.read_eof() == b""


def test_shutdown_with_several_clients(mail):
    """Every connected client gets its 421, and smtpd stops cleanly (each
    connection closes while the list of them is being walked)."""
    import contextlib
    with contextlib.ExitStack() as stack:
        sessions = [stack.enter_context(session(mail)) for _ in range(4)]
        r = mail.stop()
        assert r.returncode == 0, r.stderr
        for s in sessions:
            s.sock.settimeout(10)
            assert s.reply().is_(421, "4.3.2")
            assert s.read_eof() == b""
    log = mail.log()
    assert "AddressSanitizer" not in log and not re.search(r"smtpd\[\d+\].*(killed|signal)", log), log[-2000:]


def test_postmaster_without_domain_accepted(mail):
    """RFC 5321 4.1.1.3: RCPT TO:<Postmaster> (no domain, any case) must
    be accepted. The parser takes it; the lookup must not turn it into a
    temporary failure that the sender retries for days."""
    with session(mail) as s:
        assert s.cmd("MAIL FROM:<alice@example.test>").is_(250, "2.1.0")
        for rcpt in ("<postmaster>", "<Postmaster>"):
            r = s.cmd(f"RCPT TO:{rcpt}")
            assert r.is_(250, "2.1.5"), (rcpt, r)


def test_alias_with_a_full_member_is_accepted(make_mail):
    """team -> bob + carol, bob's mailbox full: the list address is not
    full. Refusing team@ at RCPT (for good, with quota_over_permanent)
    would keep the mail from carol because of bob; bob's share is
    deferred or bounced at delivery instead."""
    inst = make_mail(users=QUOTA_USERS, quota_over_permanent="yes")
    fill_bob(inst)
    with session(inst) as s:
        assert s.cmd("MAIL FROM:<alice@example.test> SIZE=1500").is_(250, "2.1.0")
        r = s.cmd("RCPT TO:<team@example.test>")
        assert r.is_(250, "2.1.5"), f"the list refused because one member is full: {r!r}"


def test_other_commands(mail):
    with session(mail) as s:
        assert s.cmd("NOOP").is_(250, "2.0.0")
        assert s.cmd("RSET").is_(250, "2.0.0")
        r = s.cmd("VRFY bob")
        assert r.is_(252, "2.5.0"), r
        assert s.cmd("HELP").is_(214, "2.0.0")
        for cmd in ("EXPN team", "STARTTLS"):  # no certificate here: no TLS
            assert s.cmd(cmd).is_(502, "5.5.1"), cmd
        r = s.cmd("AUTH PLAIN")  # not offered on port 25 (smtpd_auth_on_mx = no)
        assert r.is_(503, "5.5.1") and "not enabled" in r.text, r
        assert s.cmd("RSET junk").is_(501, "5.5.4")
        assert s.cmd("QUIT").is_(221, "2.0.0")
        assert s.read_eof() == b""


def test_ehlo_resets_the_transaction(mail):
    with session(mail) as s:
        assert s.cmd("MAIL FROM:<alice@example.test>").is_(250, "2.1.0")
        assert s.cmd("RCPT TO:<bob@example.test>").is_(250, "2.1.5")
        s.ehlo("again.example.net")
        assert s.cmd("DATA").is_(503, "5.5.1")
        qid = deliver_small(s, "carol@example.test")
    wait_removed(mail, qid)
    assert messages(mail, "bob") == [] and len(messages(mail, "carol")) == 1
