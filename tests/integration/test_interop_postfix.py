"""Interop with a private Postfix instance (Debian's package): Yubin's smtp
delivers to Postfix as the remote MX, and Postfix relays into Yubin.
Messages must arrive intact, headers preserved."""
import pytest

from dnsfix import dns_server  # noqa: F401 (fixture)
from harness import IS_ROOT, wait_until
from mailfix import send_message, wait_messages
from postfixfix import PostfixInstance, have_postfix
from test_smtp_out import ZONES, out_mail  # noqa: F401 (fixture)

pytestmark = [
    pytest.mark.skipif(not IS_ROOT, reason="runs Postfix and the suite as root"),
    pytest.mark.skipif(not have_postfix(), reason="postfix is not installed"),
]

BODY = (b"From: Alice <alice@example.test>\r\nTo: <fwd@example.test>\r\nSubject: interop\r\n"
        b"Message-Id: <interop.1@example.test>\r\nX-Custom: kept as is\r\n\r\n"
        b"line one\r\n.. starts with a dot\r\n" + b"x" * 990 + b"\r\nlast line\r\n")


@pytest.fixture
def postfix(instance):
    started = []

    def make(**kw):
        pf = PostfixInstance(instance.base / f"postfix{len(started)}", instance.new_port(), **kw)
        pf.start()
        started.append(pf)
        return pf
    yield make
    for pf in started:
        pf.stop()


def test_yubin_delivers_to_postfix(out_mail, postfix):
    pf = postfix(domains={"remote.test": ["someone"]})
    inst, _ = out_mail(ZONES, mx_port=pf.port)
    qid = send_message(inst, "fwd@example.test", BODY, sender="alice@example.test")
    wait_until(lambda: pf.maildir_messages("remote.test", "someone"), 30, what="the message in Postfix's Maildir")
    (data,) = pf.maildir_messages("remote.test", "someone")
    # Postfix stores LF line ends; compare the headers and body in that form
    text = data.replace(b"\r\n", b"\n")
    sent = BODY.replace(b"\r\n", b"\n").replace(b"\n.. ", b"\n. ")
    head, _, body = sent.partition(b"\n\n")
    for line in head.split(b"\n"):
        assert line in text, line
    assert text.endswith(body), text[-300:]
    assert b"by mx.example.test (Yubin)" in text  # our Received header travelled along
    inst.wait_for_log(rf"{qid}: to=<someone@remote\.test>, relay=mx\.remote\.test\[127\.0\.0\.1\]:{pf.port}, "
                      rf".*status=sent \(250 ", 20)
    assert "status=sent" in pf.log_text()


def test_postfix_relays_into_yubin(out_mail, postfix):
    inst, _ = out_mail(ZONES)
    pf = postfix(relayhost=f"[127.0.0.1]:{inst.smtp_port}")
    from mailfix import Smtp

    with Smtp(pf.port) as s:
        s.ehlo("client.example.net")
        assert s.cmd("MAIL FROM:<someone@remote.test>").code == 250
        assert s.cmd("RCPT TO:<bob@example.test>").code == 250
        assert s.cmd("DATA").code == 354
        s.send(BODY.replace(b"fwd@example.test", b"bob@example.test") + b".\r\n")
        assert s.reply().code == 250
    (data,) = wait_messages(inst, "bob", 1, timeout=30)
    text = data.replace(b"\r\n", b"\n")
    assert b"Subject: interop" in text and b"X-Custom: kept as is" in text
    assert b"\n. starts with a dot\n" in text
    assert b"by mx.remote.test (Postfix)" in text  # Postfix's Received header, then ours on top
    assert text.index(b"(Yubin)") < text.index(b"(Postfix)")
