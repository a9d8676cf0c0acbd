"""Bounces end to end: a recipient accepted at RCPT that fails at
delivery (an alias target in a hosted domain that is nobody: 5.1.1)
gives the sender exactly one RFC 3464 report; the null sender gets
none, nor does a recipient that asked for none, and a bounce that
cannot be delivered does not bounce again.

The aliases (mailfix.ALIASES): mixed -> carol + nobody, mixed2 -> dave +
nobody2 (accepted at RCPT: something is deliverable), ghost -> nobody
(nothing is: refused at RCPT, auth/PROTOCOL.md)."""
import email
import email.policy
import re

from harness import wait_until
from mailfix import (Smtp, make_mail, mail, messages, queued_id, send_message, split_delivered,  # noqa: F401
                     wait_removed)

ORIGINAL = (b"From: Alice <alice@example.test>\r\n"
            b"To: mixed@example.test\r\n"
            b"Subject: dsn original\r\n"
            b"Message-ID: <dsn-original@example.test>\r\n"
            b"\r\n"
            b"the body, not returned by default\r\n")


def wait_dsn(inst, qid):
    """The DSN's queue ID, once the original is removed and the DSN has
    been delivered and removed."""
    m = inst.wait_for_log(rf"qmgr\[\d+\]: {re.escape(qid)}: sender non-delivery notification: (\S+)")
    dsn_id = m.group(1)
    wait_removed(inst, qid)
    inst.wait_for_log(rf"local\[\d+\]: {re.escape(dsn_id)}: to=<alice@example\.test>, relay=local, "
                      rf".*status=sent")
    wait_removed(inst, dsn_id)
    return dsn_id


def parse_report(data):
    """(message, [per-message fields, per-recipient fields...], attached)."""
    msg = email.message_from_bytes(data, policy=email.policy.compat32)
    assert msg.get_content_type() == "multipart/report", msg["Content-Type"]
    assert msg.get_param("report-type") == "delivery-status", msg["Content-Type"]
    parts = msg.get_payload()
    assert [p.get_content_type() for p in parts] == [
        "text/plain", "message/delivery-status", "text/rfc822-headers"], [p.get_content_type() for p in parts]
    groups = parts[1].get_payload()
    return msg, groups, parts[2].get_payload()


def test_one_dsn_for_a_failed_alias_target(mail):
    with Smtp(mail.smtp_port) as s:
        s.ehlo()
        assert s.cmd("MAIL FROM:<alice@example.test>").is_(250, "2.1.0")
        assert s.cmd("RCPT TO:<mixed@example.test>").is_(250, "2.1.5")
        assert s.cmd("DATA").code == 354
        s.send(ORIGINAL + b".\r\n")
        qid = queued_id(s.reply())
    dsn_id = wait_dsn(mail, qid)
    # carol, the good target, has the original once
    carol = messages(mail, "carol")
    assert len(carol) == 1 and b"Subject: dsn original" in carol[0]
    mail.wait_for_log(rf"{re.escape(qid)}: to=<nobody@example\.test>, status=bounced \(5\.1\.1 ")
    # alice has exactly one message: the report
    alice = messages(mail, "alice")
    assert len(alice) == 1, f"alice got {len(alice)} messages: {alice!r}"
    data = alice[0]
    assert data.startswith(b"Return-Path: <>\nX-Original-To: alice@example.test\n"
                           b"Delivered-To: alice@example.test\n"), data[:200]
    msg, groups, attached = parse_report(data)
    assert msg["To"] == "<alice@example.test>"
    assert "MAILER-DAEMON@mx.example.test" in msg["From"]
    assert groups[0]["Reporting-MTA"] == "dns; mx.example.test"
    rcpts = groups[1:]
    assert len(rcpts) == 1, [dict(g) for g in rcpts]
    r = rcpts[0]
    assert r["Final-Recipient"] == "rfc822; nobody@example.test"
    assert r["Action"] == "failed"
    assert r["Status"] == "5.1.1"
    assert r["Original-Recipient"] == "rfc822;mixed@example.test"
    # the original's headers are attached, not its body (no RET=FULL)
    for h in (b"Subject: dsn original", b"Message-ID: <dsn-original@example.test>",
              f"id {qid}".encode()):
        assert h.decode() in attached, (h, attached)
    assert "the body, not returned" not in attached
    assert mail.log().count(f"{qid}: sender non-delivery notification") == 1
    assert dsn_id != qid


def test_two_failures_one_dsn(mail):
    qid = send_message(mail, ["mixed@example.test", "mixed2@example.test"], ORIGINAL)
    wait_dsn(mail, qid)
    alice = messages(mail, "alice")
    assert len(alice) == 1, f"alice got {len(alice)} messages"
    _, groups, _ = parse_report(alice[0])
    finals = sorted(g["Final-Recipient"] for g in groups[1:])
    assert finals == ["rfc822; nobody2@example.test", "rfc822; nobody@example.test"], finals
    assert all(g["Status"] == "5.1.1" and g["Action"] == "failed" for g in groups[1:])
    assert len(messages(mail, "carol")) == 1 and len(messages(mail, "dave")) == 1


def test_null_sender_gets_no_dsn(mail):
    qid = send_message(mail, "mixed@example.test", ORIGINAL, sender="")
    wait_removed(mail, qid)
    mail.wait_for_log(rf"{re.escape(qid)}: to=<nobody@example\.test>, status=bounced \(5\.1\.1 ")
    m, _ = split_delivered(messages(mail, "carol")[0])
    assert m.group("rp") == b""
    assert "non-delivery notification" not in mail.log()
    assert messages(mail, "alice") == []
    # content files leave content/ (for spare/) once the removal is flushed
    wait_until(lambda: not any((mail.queue_dir / "content").iterdir()), 5, what="content/ to be empty")


def test_notify_never_gets_no_dsn(mail):
    with Smtp(mail.smtp_port) as s:
        s.ehlo()
        assert s.cmd("MAIL FROM:<alice@example.test>").is_(250, "2.1.0")
        assert s.cmd("RCPT TO:<mixed@example.test> NOTIFY=NEVER").is_(250, "2.1.5")
        assert s.cmd("DATA").code == 354
        s.send(ORIGINAL + b".\r\n")
        qid = queued_id(s.reply())
    wait_removed(mail, qid)
    assert "non-delivery notification" not in mail.log()
    assert messages(mail, "alice") == []


def test_undeliverable_dsn_does_not_bounce_again(mail):
    """The sender is nobody here: the DSN itself fails (5.1.1) and, being
    from the null sender, is dropped - no second report, no loop."""
    qid = send_message(mail, "mixed@example.test", ORIGINAL, sender="nobody3@example.test")
    m = mail.wait_for_log(rf"{re.escape(qid)}: sender non-delivery notification: (\S+)")
    dsn_id = m.group(1)
    wait_removed(mail, qid)
    mail.wait_for_log(rf"{re.escape(dsn_id)}: to=<nobody3@example\.test>, status=bounced \(5\.1\.1 ")
    wait_removed(mail, dsn_id)
    assert mail.log().count("non-delivery notification") == 1
    # content files leave content/ (for spare/) once the removal is flushed
    wait_until(lambda: not any((mail.queue_dir / "content").iterdir()), 5, what="content/ to be empty")


def test_alias_with_only_unknown_targets_refused_at_rcpt(mail):
    """ghost -> nobody: nothing deliverable, so 550 5.1.1 now rather than
    a bounce later (auth/PROTOCOL.md: rcpt `unknown`)."""
    with Smtp(mail.smtp_port) as s:
        s.ehlo()
        assert s.cmd("MAIL FROM:<alice@example.test>").is_(250, "2.1.0")
        assert s.cmd("RCPT TO:<ghost@example.test>").is_(550, "5.1.1")


def test_ret_full_and_envid(mail):
    with Smtp(mail.smtp_port) as s:
        s.ehlo()
        assert s.cmd("MAIL FROM:<alice@example.test> RET=FULL ENVID=env+2Dtest-1").is_(250, "2.1.0")
        assert s.cmd("RCPT TO:<mixed@example.test>").is_(250, "2.1.5")
        assert s.cmd("DATA").code == 354
        s.send(ORIGINAL + b".\r\n")
        qid = queued_id(s.reply())
    wait_dsn(mail, qid)
    alice = messages(mail, "alice")
    assert len(alice) == 1
    msg = email.message_from_bytes(alice[0], policy=email.policy.compat32)
    parts = msg.get_payload()
    assert [p.get_content_type() for p in parts] == ["text/plain", "message/delivery-status", "message/rfc822"]
    assert parts[1].get_payload()[0]["Original-Envelope-Id"] == "env-test-1"
    returned = parts[2].get_payload()[0]
    assert returned["Subject"] == "dsn original"
    assert "the body, not returned by default" in returned.get_payload()


QUOTA_USERS = {"alice": None, "bob": "2k", "carol": None, "dave": None}
BIG = b"Subject: too big for bob\r\n\r\n" + (b"z" * 70 + b"\r\n") * 40  # ~3 kB, no SIZE=


def test_over_quota_at_delivery_bounces_522(make_mail):
    """No SIZE=: RCPT cannot tell, the delivery finds the mailbox too
    small; quota_over_permanent = yes: one DSN with 5.2.2."""
    inst = make_mail(users=QUOTA_USERS, quota_over_permanent="yes")
    qid = send_message(inst, "bob@example.test", BIG)
    wait_dsn(inst, qid)
    inst.wait_for_log(rf"{re.escape(qid)}: to=<bob@example\.test>, relay=local, .*dsn=5\.2\.2, status=bounced")
    assert messages(inst, "bob") == []
    _, groups, _ = parse_report(messages(inst, "alice")[0])
    assert [(g["Final-Recipient"], g["Action"], g["Status"]) for g in groups[1:]] == [
        ("rfc822; bob@example.test", "failed", "5.2.2")]


def test_over_quota_at_delivery_deferred_then_delivered(make_mail):
    """quota_over_permanent = no: deferred (4.2.2), no DSN, the message
    stays queued; once the operator raises the quota, the retry
    delivers it."""
    inst = make_mail(users=QUOTA_USERS, minimal_backoff_time="1s", maximal_backoff_time="2s")
    qid = send_message(inst, "bob@example.test", BIG)
    inst.wait_for_log(rf"qmgr\[\d+\]: {re.escape(qid)}: to=<bob@example\.test>, status=deferred \(4\.2\.2 ")
    assert (inst.queue_dir / "content" / qid).exists()
    r = inst.mailctl("user", "set", "bob@example.test", "--quota", "1M")
    assert r.returncode == 0, r.stderr
    wait_removed(inst, qid, timeout=15)
    msgs = messages(inst, "bob")
    assert len(msgs) == 1 and b"Subject: too big for bob" in msgs[0]
    assert "non-delivery notification" not in inst.log()


def test_notify_success_gives_delivered_dsn(mail):
    """EHLO offers DSN; RCPT ... NOTIFY=SUCCESS asks for a report on
    delivery (RFC 3461: final delivery with SUCCESS requested issues a
    "delivered" DSN). alice gets one, Action: delivered, Status 2.x."""
    with Smtp(mail.smtp_port) as s:
        s.ehlo()
        assert s.cmd("MAIL FROM:<alice@example.test>").is_(250, "2.1.0")
        assert s.cmd("RCPT TO:<bob@example.test> NOTIFY=SUCCESS,FAILURE").is_(250, "2.1.5")
        assert s.cmd("DATA").code == 354
        s.send(ORIGINAL + b".\r\n")
        qid = queued_id(s.reply())
    wait_removed(mail, qid)
    assert len(messages(mail, "bob")) == 1
    # a report is queued before the original is removed
    m = re.search(rf"{re.escape(qid)}: [^\n]*notification: (\S+)", mail.log())
    assert m, "no delivery status notification queued for NOTIFY=SUCCESS"
    wait_removed(mail, m.group(1))
    alice = wait_until(lambda: messages(mail, "alice"), 5, what="the success DSN in alice's Maildir")
    assert len(alice) == 1
    msg = email.message_from_bytes(alice[0], policy=email.policy.compat32)
    assert msg.get_content_type() == "multipart/report"
    groups = msg.get_payload()[1].get_payload()
    assert [(g["Final-Recipient"], g["Action"], g["Status"][:2]) for g in groups[1:]] == [
        ("rfc822; bob@example.test", "delivered", "2.")]
