"""The sendmail command and smtpd's pickup mode (mailfix.py's "pickup"
service on queue_directory/public/pickup): a local user pipes a message
into sendmail, which speaks SMTP to the pickup socket; smtpd names the
caller by the socket's peer credentials (uid), whatever the caller says.

Exit codes are sysexits.h: 64 usage, 67 unknown user, 75 try again."""
import os
import pwd
import re
import subprocess

import pytest

import harness
from harness import wait_until
from mailfix import (HOSTNAME, make_mail, mail, messages,  # noqa: F401
                     wait_messages, wait_removed)

SENDMAIL = harness.BUILD_DIR / "sendmail" / "sendmail"

MESSAGE = (b"Subject: from cron\n"
           b"\n"
           b"line one\n"
           b".\n"                 # a lone dot is text, not the end
           b".leading dot\n"
           b"last line without a newline")
STORED = (b"Subject: from cron\n"
          b"\n"
          b"line one\n"
          b".\n"
          b".leading dot\n"
          b"last line without a newline\n")


@pytest.fixture(autouse=True)
def need_sendmail():
    if not os.access(SENDMAIL, os.X_OK):
        pytest.skip(f"not built: {SENDMAIL}")


@pytest.fixture
def pmail(mail):
    mail.wait_service("pickup")
    return mail


# A pickup message as local stores it: local's headers, then smtpd's
# Received header naming the account and its uid, then the message.
PICKUP_RE = (rb"Return-Path: <(?P<rp>[^>]*)>\nX-Original-To: (?P<xot>[^\n]*)\n"
             rb"Delivered-To: (?P<dt>[^\n]*)\n"
             rb"Received: from localhost \((?P<user>[^ ]+) \[uid=(?P<uid>\d+)\]\)\n"
             rb"\tby mx\.example\.test \(Yubin\) with ESMTP id (?P<id>\S+)"
             rb"(?:\n\tfor <(?P<for>[^>]*)>;|;\n\t)"
             rb" ?[A-Z][a-z]{2}, \d{1,2} [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d [+-]\d{4}\n")


def split_delivered(data):
    m = re.match(PICKUP_RE, data)
    assert m, f"delivered message does not start with the expected headers:\n{data[:600]!r}"
    return m, data[m.end():]


def sendmail(inst, *args, data=MESSAGE, user=None, env_config=False):
    cmd = [str(SENDMAIL)]
    env = dict(os.environ)
    if env_config:
        env["YUBIN_CONFIG_DIR"] = str(inst.config_dir)
    else:
        cmd += ["-C", str(inst.config_dir)]
    cmd += list(args)
    if user is not None:
        cmd = ["runuser", "-u", user, "--"] + cmd
    return subprocess.run(cmd, input=data, capture_output=True, timeout=30, env=env)


def queue_id_for(inst, uid, sender):
    """The queue ID smtpd logged for a pickup submission by uid."""
    m = inst.wait_for_log(rf"smtpd\[\d+\]: (\S+): uid={uid} \(\S+\), from=<{re.escape(sender)}>")
    return m.group(1)


def delivered(inst, user, uid, sender):
    qid = queue_id_for(inst, uid, sender)
    wait_removed(inst, qid)
    msgs = wait_messages(inst, user)
    assert len(msgs) == 1, msgs
    m, rest = split_delivered(msgs[0])
    return qid, m, rest


def test_root_submission(pmail):
    r = sendmail(pmail, "bob@example.test")
    assert r.returncode == 0, r
    assert r.stdout == b"" and r.stderr == b""
    qid, m, rest = delivered(pmail, "bob", 0, f"root@{HOSTNAME}")
    assert m.group("rp") == f"root@{HOSTNAME}".encode()
    assert m.group("id") == qid.encode()
    assert m.group("for") == b"bob@example.test"
    assert rest == STORED
    # The Received header names the account by its uid.
    assert (m.group("user"), m.group("uid")) == (b"root", b"0")


def test_unprivileged_user(pmail):
    nobody = pwd.getpwnam("nobody")
    r = sendmail(pmail, "bob@example.test", user="nobody", env_config=True)
    assert r.returncode == 0, r
    qid, m, rest = delivered(pmail, "bob", nobody.pw_uid, f"nobody@{HOSTNAME}")
    assert m.group("rp") == f"nobody@{HOSTNAME}".encode()
    assert rest == STORED
    assert (m.group("user"), m.group("uid")) == (b"nobody", str(nobody.pw_uid).encode())
    assert re.search(rf"smtpd\[\d+\]: pickup: connect from uid={nobody.pw_uid} \(nobody\)", pmail.log())


def test_identity_comes_from_the_socket(pmail):
    """Whatever the client says, smtpd logs the kernel's uid."""
    nobody = pwd.getpwnam("nobody")
    r = sendmail(pmail, "-f", "root@example.test", "bob@example.test", user="nobody")
    assert r.returncode == 0, r
    qid, m, _ = delivered(pmail, "bob", nobody.pw_uid, "root@example.test")
    assert m.group("rp") == b"root@example.test"
    assert m.group("uid") == str(nobody.pw_uid).encode()


def test_f_sets_the_sender(pmail):
    r = sendmail(pmail, "-f", "robot@example.test", "-oi", "carol@example.test")
    assert r.returncode == 0, r
    _, m, _ = delivered(pmail, "carol", 0, "robot@example.test")
    assert m.group("rp") == b"robot@example.test"


def test_t_reads_recipients_and_drops_bcc(pmail):
    msg = (b"From: Cron Daemon <root@example.test>\n"
           b"To: Bob <bob@example.test>\n"
           b"Cc: carol@example.test (Carol),\n"
           b"  \"Team, the\" <alice@example.test>\n"
           b"Bcc: dave@example.test\n"
           b"Subject: hello\n"
           b"\n"
           b"body\n")
    r = sendmail(pmail, "-t", "-i", data=msg)
    assert r.returncode == 0, r
    qid = queue_id_for(pmail, 0, f"root@{HOSTNAME}")
    wait_removed(pmail, qid)
    for user in ("bob", "carol", "alice", "dave"):
        got = wait_messages(pmail, user)
        assert len(got) == 1, (user, got)
        _, rest = split_delivered(got[0])
        assert b"Bcc" not in rest, (user, rest)
        assert rest == msg.replace(b"Bcc: dave@example.test\n", b""), (user, rest)


def test_F_adds_from(pmail):
    r = sendmail(pmail, "-F", "Cron Daemon", "bob@example.test", data=b"Subject: x\n\nhi\n")
    assert r.returncode == 0, r
    _, _, rest = delivered(pmail, "bob", 0, f"root@{HOSTNAME}")
    assert rest == f'From: "Cron Daemon" <root@{HOSTNAME}>\nSubject: x\n\nhi\n'.encode()


def test_remote_recipient_is_queued(pmail):
    """Local users may send anywhere: the remote recipient waits in the
    queue (no outbound delivery yet)."""
    r = sendmail(pmail, "someone@remote.example")
    assert r.returncode == 0, r
    queue_id_for(pmail, 0, f"root@{HOSTNAME}")


def test_unknown_hosted_user(pmail):
    r = sendmail(pmail, "nosuchuser@example.test")
    assert r.returncode == 67, r
    assert b"550 5.1.1" in r.stderr


def test_bad_option(pmail):
    r = sendmail(pmail, "-q", "bob@example.test")
    assert r.returncode == 64, r
    assert b"usage: sendmail" in r.stderr
    r = sendmail(pmail, "-bs")
    assert r.returncode == 64, r
    assert b"usage: sendmail" in r.stderr


def test_no_recipients(pmail):
    r = sendmail(pmail)
    assert r.returncode == 64, r
    r = sendmail(pmail, "-t", data=b"Subject: nobody to send to\n\nx\n")
    assert r.returncode == 64, r
    assert b"no recipients" in r.stderr


def test_mail_system_down(pmail):
    assert pmail.stop().returncode == 0
    r = sendmail(pmail, "bob@example.test")
    assert r.returncode == 75, r
    assert b"cannot reach the mail system" in r.stderr


def test_public_directory(pmail):
    public = pmail.queue_dir / "public"
    st = public.stat()
    assert st.st_mode & 0o777 == 0o755
    if os.geteuid() == 0:
        assert st.st_uid == 0
    assert (public / "pickup").is_socket()


def test_eight_bit_body_and_bm(pmail):
    body = "Subject: gr\u00fc\u00dfe\n\nK\u00e4se\n".encode()
    r = sendmail(pmail, "-bm", "bob@example.test", data=body)
    assert r.returncode == 0, r
    _, _, rest = delivered(pmail, "bob", 0, f"root@{HOSTNAME}")
    assert rest == body
