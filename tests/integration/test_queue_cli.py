"""mailctl queue: list/show/delete/hold/release/flush/requeue/stats, all through
qmgr's control socket (qmgr/PROTOCOL.md, "qmgr-control").

A message to fwd@example.test, an alias whose only target is remote, is
accepted (smtpd expands it: the queued recipient is someone@remote.test)
and then deferred: these instances run no smtp delivery agent ("4.3.0
smtp delivery agent unavailable"), so it stays in the queue. minimal_backoff_time is left at its default (300s), so
nothing is retried unless a command makes it due."""
import json
import re
import time

from harness import wait_until
from mailfix import add_alias, make_mail, mail, send_message  # noqa: F401

BODY = (b"From: Alice <alice@example.test>\r\n"
        b"To: fwd@example.test\r\n"
        b"Subject: queue cli\r\n"
        b"\r\n"
        b"stays in the queue\r\n")

UNKNOWN_ID = "0000000000000100000A0001"


def queue(inst, *args, **kw):
    return inst.mailctl("queue", *args, **kw)


def ok(r, what="mailctl"):
    assert r.returncode == 0, f"{what}: exit {r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}"
    return r


def list_json(inst, *selectors):
    return json.loads(ok(queue(inst, "list", "--json", *selectors)).stdout)


def show_json(inst, qid):
    return json.loads(ok(queue(inst, "show", qid, "--json")).stdout)


def deferred_message(inst, rcpt="fwd@example.test", sender="alice@example.test", target="someone@remote.test"):
    """Queue a message that stays deferred; its ID once the first attempt is recorded."""
    qid = send_message(inst, rcpt, BODY, sender=sender)
    inst.wait_for_log(rf"qmgr\[\d+\]: {qid}: to=<{re.escape(target)}>, status=deferred "
                      rf"\(4\.3\.0 smtp delivery agent unavailable: ")
    wait_until(lambda: show_json(inst, qid)["state"] == "deferred", what="deferred and stored")
    return qid


def attempts(inst, qid):
    return show_json(inst, qid)["recipients"][0]["attempts"]


def test_queue_list_show_selectors(mail):
    inst = mail
    add_alias(inst, "fwd@example.test", "someone@remote.test")
    qid = deferred_message(inst)

    # The table: the ID, the sender, one recipient, deferred.
    out = ok(queue(inst, "list")).stdout
    assert re.search(rf"^{qid} +\S+ +\d+ +alice@example\.test +1 deferred$", out, re.M), out
    assert out.splitlines()[0].split()[:4] == ["ID", "AGE", "SIZE", "SENDER"]

    doc = list_json(inst)
    assert doc["count"] == 1 and doc["truncated"] is False
    m = doc["messages"][0]
    assert m["id"] == qid and m["sender"] == "alice@example.test" and m["rcpts"] == 1
    assert m["state"] == "deferred" and m["held"] is False and m["size"] > 0
    assert 0 <= m["age"] < 600 and abs(m["arrival"] - time.time()) < 600

    # Selectors.
    def ids(*sel):
        return [x["id"] for x in list_json(inst, *sel)["messages"]]
    assert ids("--sender", "ALICE") == [qid]
    assert ids("--sender", "bob@") == []
    assert ids("--rcpt", "SOMEONE@") == [qid]
    assert ids("--rcpt", "carol") == []
    assert ids("--domain", "Remote.Test") == [qid]
    assert ids("--domain", "remote") == []         # exact domain, not a substring
    assert ids("--domain", "example.test") == []
    assert ids("--age", "0") == [qid]
    assert ids("--age", "2h") == []
    assert ids("--sender", "alice", "--domain", "remote.test", "--age", "0s") == [qid]
    assert "the queue is empty" in ok(queue(inst, "list", "--sender", "nobody-sends-this")).stdout

    # show: every recipient with its state, attempts and last response.
    s = show_json(inst, qid)
    assert s["id"] == qid and s["sender"] == "alice@example.test" and s["held"] is False
    assert s["state"] == "deferred"
    (r,) = s["recipients"]
    assert r["address"] == "someone@remote.test" and r["state"] == "deferred"
    assert r["attempts"] == 1 and r["last_status"] == "4.3.0"
    assert r["last_response"].startswith("smtp delivery agent unavailable: ")
    assert r["next_try"] > time.time() + 100  # default back-off: 300s
    text = ok(queue(inst, "show", qid)).stdout
    assert f"id:       {qid}" in text and "<someone@remote.test>" in text
    assert "smtp delivery agent unavailable" in text and "attempts:      1" in text
    # IDs are taken in lowercase too.
    assert show_json(inst, qid.lower())["id"] == qid


def test_queue_flush_hold_release_requeue_delete(mail):
    inst = mail
    add_alias(inst, "fwd@example.test", "someone@remote.test")
    qid = deferred_message(inst)
    content = inst.queue_dir / "content" / qid
    assert content.exists()

    # flush: the deferred recipient is tried again now.
    assert ok(queue(inst, "flush")).stdout.strip()
    wait_until(lambda: attempts(inst, qid) == 2, what="a second attempt after flush")
    assert show_json(inst, qid)["state"] == "deferred"

    # hold: not scheduled, even when flushed or requeued.
    assert ok(queue(inst, "hold", qid)).stdout.strip() == f"{qid}: held"
    s = show_json(inst, qid)
    assert s["held"] is True and s["state"] == "held"
    assert list_json(inst)["messages"][0]["state"] == "held"
    assert re.search(rf"^{qid} .* held$", ok(queue(inst, "list")).stdout, re.M)
    ok(queue(inst, "flush"))
    ok(queue(inst, "requeue", qid))        # attempts reset, but still held
    time.sleep(2.5)
    s = show_json(inst, qid)
    assert s["state"] == "held" and s["recipients"][0]["attempts"] == 0
    assert s["recipients"][0]["next_try"] <= time.time()

    # release: due (requeue made it so), so it is tried at once.
    assert ok(queue(inst, "release", qid)).stdout.strip() == f"{qid}: released"
    wait_until(lambda: attempts(inst, qid) == 1, what="an attempt after release")
    s = show_json(inst, qid)
    assert s["held"] is False and s["state"] == "deferred"

    # requeue all: attempts reset, tried again now (so back to 1).
    assert queue(inst, "requeue", "all").returncode == 0
    inst.wait_for_log(rf"qmgr\[\d+\]: queue requeued by the operator")
    wait_until(lambda: len(re.findall(rf"qmgr\[\d+\]: {qid}: to=<someone@remote\.test>, status=deferred",
                                      inst.log())) == 4, what="a fourth attempt after requeue all")
    wait_until(lambda: attempts(inst, qid) == 1, what="attempts reset by requeue all")

    # delete: gone from the queue, and so is the content file.
    assert ok(queue(inst, "delete", qid)).stdout.strip() == f"{qid}: deleted"
    assert list_json(inst) == {"count": 0, "truncated": False, "messages": []}
    wait_until(lambda: not content.exists(), 5, what="the content file to leave the queue")
    inst.wait_for_log(rf"qmgr\[\d+\]: {qid}: removed by the operator")
    r = queue(inst, "show", qid)
    assert r.returncode == 1 and f"mailctl: no message {qid} in the queue" in r.stderr


def test_queue_errors(mail):
    inst = mail
    for cmd in ("show", "delete", "hold", "release", "requeue"):
        r = queue(inst, cmd, UNKNOWN_ID)
        assert r.returncode == 1, (cmd, r)
        assert f"mailctl: no message {UNKNOWN_ID} in the queue" in r.stderr, (cmd, r.stderr)
    for bad in ("../../etc/passwd", "XYZ", UNKNOWN_ID + "0", ""):
        r = queue(inst, "show", bad)
        assert r.returncode in (1, 64), (bad, r)
        assert queue(inst, "delete", bad).returncode in (1, 64)
    assert queue(inst, "show").returncode == 64
    assert queue(inst, "list", "--bogus").returncode == 64
    assert queue(inst, "list", "--age", "soon").returncode == 64
    assert queue(inst, "flush", "extra").returncode == 64
    assert queue(inst, "requeue").returncode == 64
    assert "queue list" in ok(inst.mailctl("help")).stdout

    # Not root: the private directory keeps it out.
    r = queue(inst, "list", as_user="nobody")
    assert r.returncode == 77 or "permission denied" in r.stderr, r
    assert r.returncode != 0
    # Past the directory (opened up for the test), qmgr checks the peer's
    # uid itself: only root and qmgr's own account.
    private = inst.queue_dir / "private"
    mode = private.stat().st_mode & 0o7777
    private.chmod(0o711)
    try:
        r = queue(inst, "list", as_user="nobody")
    finally:
        private.chmod(mode)
    assert r.returncode == 77, r
    assert "permission denied" in r.stderr and "qmgr-control:" not in r.stderr, r.stderr
    ok(queue(inst, "list", as_user=inst.user))  # qmgr's own uid

    # qmgr down: exit 3.
    inst.stop()
    r = queue(inst, "list")
    assert r.returncode == 3, r
    assert "not running" in r.stderr
    assert queue(inst, "delete", UNKNOWN_ID).returncode == 3


def test_queue_not_started(make_mail):
    inst = make_mail(start=False)
    r = queue(inst, "list", "--json")
    assert r.returncode == 3, r


def test_queue_many_messages(mail):
    """More messages than fit in one reply frame; selectors pick some."""
    inst = mail
    add_alias(inst, "fwd@example.test", "someone@remote.test")
    add_alias(inst, "fwd2@example.test", "other@remote.test")
    qids = []
    for i in range(40):
        qids.append(send_message(inst, "fwd@example.test" if i % 2 else "fwd2@example.test", BODY,
                                 sender=f"s{i}@sender.test"))
    wait_until(lambda: len(re.findall(r"status=deferred", inst.log())) >= 40, timeout=30,
               what="40 first attempts")
    doc = list_json(inst)
    assert doc["count"] == 40 and sorted(m["id"] for m in doc["messages"]) == sorted(qids)
    assert [m["id"] for m in doc["messages"]] == sorted(qids)  # arrival order
    assert len(list_json(inst, "--rcpt", "other@")["messages"]) == 20
    assert [m["id"] for m in list_json(inst, "--sender", "s7@")["messages"]] == [qids[7]]
    assert ok(queue(inst, "list")).stdout.rstrip().endswith("-- 40 messages")


def test_queue_stats(mail):
    """stats counts what qmgr committed since it started: every queued
    message once, never more log syncs than commits (checkpoints aside)."""
    before = json.loads(ok(queue(mail, "stats", "--json")).stdout)
    assert set(before) == {"enqueued", "commits", "log_syncs", "log_writes", "checkpoints", "active"}, before
    for i in range(3):
        send_message(mail, "bob@example.test", BODY)
    after = json.loads(ok(queue(mail, "stats", "--json")).stdout)
    assert after["enqueued"] - before["enqueued"] == 3, (before, after)
    assert after["commits"] - before["commits"] >= 1
    assert 1 <= after["log_syncs"] - before["log_syncs"] <= \
        after["commits"] - before["commits"] + after["checkpoints"] - before["checkpoints"], (before, after)
    text = ok(queue(mail, "stats")).stdout
    assert re.search(r"messages queued: +%d\n" % after["enqueued"], text), text
    assert queue(mail, "stats", "--bogus").returncode == 64
