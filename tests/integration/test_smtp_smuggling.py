"""SMTP smuggling (CVE-2023-51766 and friends): a sender whose idea of
the end of DATA differs from ours must not get a second message through.
Only <CRLF>.<CRLF> ends DATA; a message with a bare LF or bare CR is
refused whole (550 5.5.2, the documented policy), with exactly one reply,
and the session stays in step."""
import pytest

from mailfix import BODY_SMALL, Smtp, make_mail, mail, messages, queued_id, wait_removed  # noqa: F401

PATTERNS = {
    "LF.LF": b"\n.\n",
    "CR.CR": b"\r.\r",
    "LF.CRLF": b"\n.\r\n",
    "CRLF.LF": b"\r\n.\n",
    "CRLF.CR": b"\r\n.\r",  # also listed in libmail/smtp_server.md
}

SMUGGLED = (b"MAIL FROM:<evil@attacker.example>\r\n"
            b"RCPT TO:<bob@example.test>\r\n"
            b"DATA\r\n"
            b"Subject: smuggled\r\n\r\nsmuggled\r\n")


def content(pattern):
    return b"Subject: outer\r\n\r\nhello" + pattern + SMUGGLED + b".\r\n"


def check_aftermath(inst, clean_qid):
    """Nothing smuggled anywhere; carol has just the clean message."""
    wait_removed(inst, clean_qid)
    assert messages(inst, "bob") == [], "the smuggled message was delivered"
    carol = messages(inst, "carol")
    assert len(carol) == 1 and b"Subject: small" in carol[0], carol
    log = inst.log()
    assert "evil@attacker.example" not in log, [l for l in log.splitlines() if "evil" in l]
    qd = inst.queue_dir / "content"
    assert sorted(p.name for p in qd.iterdir()) == [], "content left in the queue"


@pytest.mark.parametrize("pattern", list(PATTERNS), ids=list(PATTERNS))
def test_smuggling_refused_one_reply(mail, pattern):
    with Smtp(mail.smtp_port) as s:
        s.ehlo()
        assert s.cmd("MAIL FROM:<alice@example.test>").is_(250, "2.1.0")
        assert s.cmd("RCPT TO:<carol@example.test>").is_(250, "2.1.5")
        assert s.cmd("DATA").code == 354
        s.send(content(PATTERNS[pattern]))
        r = s.reply()
        assert r.is_(550, "5.5.2"), r
        assert r.text == "5.5.2 Message contains bare CR or LF; lines must end with CRLF", r
        assert s.no_more_replies(), f"a second reply to one DATA: {s.buf!r}"
        # still in step: a clean message goes through on the same session
        assert s.cmd("MAIL FROM:<alice@example.test>").is_(250, "2.1.0")
        assert s.cmd("RCPT TO:<carol@example.test>").is_(250, "2.1.5")
        assert s.cmd("DATA").code == 354
        s.send(BODY_SMALL + b".\r\n")
        qid = queued_id(s.reply())
        assert s.cmd("QUIT").is_(221, "2.0.0")
    check_aftermath(mail, qid)


@pytest.mark.parametrize("pattern", list(PATTERNS), ids=list(PATTERNS))
def test_smuggling_pipelined_session(mail, pattern):
    """The whole session in one write (the way an attacker's relay sends
    it): exactly the replies of one transaction and a clean one."""
    with Smtp(mail.smtp_port) as s:
        s.send(b"EHLO client.example.net\r\n"
               b"MAIL FROM:<alice@example.test>\r\nRCPT TO:<carol@example.test>\r\nDATA\r\n"
               + content(PATTERNS[pattern])
               + b"MAIL FROM:<alice@example.test>\r\nRCPT TO:<carol@example.test>\r\nDATA\r\n"
               + BODY_SMALL + b".\r\nQUIT\r\n")
        got = [s.reply() for _ in range(9)]
        assert [(r.code, r.enhanced) for r in got] == [
            (250, None), (250, "2.1.0"), (250, "2.1.5"), (354, None), (550, "5.5.2"),
            (250, "2.1.0"), (250, "2.1.5"), (354, None), (250, "2.0.0")], got
        assert s.reply().is_(221, "2.0.0")
        assert s.read_eof() == b"", "replies after QUIT"
    check_aftermath(mail, queued_id(got[8]))
