"""Outbound delivery: qmgr routes remote recipients to the smtp agent,
which finds the destination's MX hosts through a real DNS server on
loopback (unbound, dnsfix.py) and delivers over SMTP; smtp-sink (from
Postfix) plays the remote MX and keeps what it receives. Failures come
back to the sender as one DSN."""
import re
import shutil
import socket
import subprocess
import time

import pytest

from dnsfix import dns_server, have_unbound  # noqa: F401 (fixture)
from harness import IS_ROOT, service_line, wait_until
from mailfix import add_alias, messages, send_message, setup_mail, start_mail, missing_programs, wait_messages
import harness

pytestmark = [
    pytest.mark.skipif(not IS_ROOT, reason="runs the suite's services as root"),
    pytest.mark.skipif(not have_unbound(), reason="unbound is not installed"),
    pytest.mark.skipif(shutil.which("smtp-sink") is None, reason="smtp-sink (postfix) is not installed"),
]

SMTP = harness.BUILD_DIR / "smtp" / "smtp"
BODY = b"Subject: out\r\nMessage-Id: <out.1@example.test>\r\n\r\nto the world\r\n.. a dot line\r\n"


class Sink:
    """smtp-sink on 127.0.0.1:port, dumping each message into a directory."""

    def __init__(self, base, port, reject=None, soft=None):
        self.dir = base / f"sink-{port}"
        self.dir.mkdir(exist_ok=True)
        self.dir.chmod(0o777)  # smtp-sink writes as nobody
        self.port = port
        self.start(reject, soft)

    def start(self, reject=None, soft=None):
        cmd = ["smtp-sink", "-u", "nobody", "-d", str(self.dir) + "/%M."]
        if reject:
            cmd += ["-f", reject]  # hard 5xx for these commands
        if soft:
            cmd += ["-r", soft]  # soft 4xx
        cmd += [f"127.0.0.1:{self.port}", "10"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        port = self.port
        wait_until(lambda: self._listening(port), 10, what="smtp-sink listening")

    @staticmethod
    def _listening(port):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return False

    def messages(self):
        # smtp-sink opens a transaction's file at MAIL FROM; one refused
        # later, on a connection kept for reuse, leaves it empty until the
        # connection ends. A message's file always has its X-Client-* lines.
        files = [p.read_bytes() for p in sorted(self.dir.rglob("*")) if p.is_file()]
        return [f for f in files if f]

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture
def out_mail(instance, dns_server):
    if missing_programs() or not SMTP.exists():
        pytest.skip("not built")
    sinks = []

    def make(zones, reject=None, soft=None, relay=False, relay_port=None, relay_login=None, mx_port=None, **extra):
        port = instance.new_port()
        sink = Sink(instance.base, port, reject, soft)
        sinks.append(sink)
        dns = dns_server(zones)
        params = {"smtp_tcp_port": mx_port or port, **extra}
        if relay:
            params = {"relayhost": f"[127.0.0.1]:{relay_port or port}"}
        if relay_login:
            pw = instance.base / "relay-passwords"
            pw.write_text("# host user password\n127.0.0.1 %s %s\n" % relay_login)
            pw.chmod(0o600)
            params["relayhost_password_file"] = str(pw)
        setup_mail(instance, dns_resolvers=dns.servers, **params)
        link = instance.daemon_dir / "smtp"
        if not link.exists():
            link.symlink_to(SMTP)
        instance.services["smtp"] = service_line("smtp", "smtp", procs=1, program="smtp", type_="unix")
        instance.write_config()
        for alias, target in (("fwd", "someone@remote.test"), ("nomail", "someone@nullmx.test"),
                              ("backup", "someone@backup.test"), ("gone", "someone@nxdomain.test"),
                              ("stuck", "someone@noaddr.test")):
            add_alias(instance, f"{alias}@example.test", target)
        start_mail(instance)
        instance.wait_service("smtp")
        return instance, sink
    yield make
    for s in sinks:
        s.stop()
    # smtp never crashed, and (in a sanitizer build) never misbehaved
    log = instance.log()
    assert "AddressSanitizer" not in log and "runtime error" not in log, log[-3000:]
    assert not re.search(r"service smtp: worker \d+ (killed|exited)", log), log[-3000:]


ZONES = {
    "remote.test": ["@ MX 10 mx", "mx A 127.0.0.1"],
    "backup.test": ["@ MX 10 down", "down A 127.0.0.2", "@ MX 20 mx.remote.test."],
    "nullmx.test": ["@ MX 0 ."],
    "noaddr.test": ["@ MX 10 mx"],  # the MX host has no address
}


def test_delivered_to_the_mx(out_mail):
    inst, sink = out_mail(ZONES)
    qid = send_message(inst, "fwd@example.test", BODY, sender="alice@example.test")
    wait_until(lambda: sink.messages(), 20, what="the message at the remote MX")
    (data,) = sink.messages()
    assert b"Subject: out" in data and b"\r\n.. a dot line\r\n" not in data  # un-stuffed on arrival
    assert b"\n. a dot line" in data.replace(b"\r\n", b"\n")
    assert re.search(rb"Received: from client\.example\.net .*by mx\.example\.test \(Yubin\)", data, re.S)
    inst.wait_for_log(rf"smtp\[\d+\]: {qid}: to=<someone@remote\.test>, relay=mx\.remote\.test\[127\.0\.0\.1\]:\d+, "
                      rf"delay=[\d.]+, dsn=2\.0\.0, status=sent \(250 ", 20)
    inst.wait_for_log(rf"qmgr\[\d+\]: {qid}: removed", 20)


def test_best_mx_down_then_the_next(out_mail):
    inst, sink = out_mail(ZONES)
    qid = send_message(inst, "backup@example.test", BODY, sender="alice@example.test")
    wait_until(lambda: sink.messages(), 40, what="the message at the backup MX")
    inst.wait_for_log(rf"{qid}: to=<someone@backup\.test>, relay=mx\.remote\.test\[127\.0\.0\.1\]:\d+, .*status=sent", 20)


@pytest.mark.parametrize("alias,dsn", [("nomail", "5.1.10"), ("gone", "5.1.2")])
def test_undeliverable_domain_bounces_once(out_mail, alias, dsn):
    inst, sink = out_mail(ZONES)
    qid = send_message(inst, f"{alias}@example.test", BODY, sender="alice@example.test")
    inst.wait_for_log(rf"{qid}: to=<someone@\S+>, relay=none, .*dsn={re.escape(dsn)}, status=bounced", 20)
    bounces = wait_messages(inst, "alice", 1, timeout=20)
    time.sleep(1)
    assert len(messages(inst, "alice")) == 1
    text = bounces[0].decode(errors="replace")
    assert "multipart/report" in text and f"Status: {dsn}" in text
    assert sink.messages() == []


def test_mx_hosts_without_address_defer(out_mail):
    """MX records whose hosts have no address: the domain's owner can mend
    that, so the mail waits (4.4.4) instead of bouncing."""
    inst, sink = out_mail(ZONES)
    qid = send_message(inst, "stuck@example.test", BODY, sender="alice@example.test")
    inst.wait_for_log(rf"smtp\[\d+\]: {qid}: to=<someone@noaddr\.test>, relay=none, .*dsn=4\.4\.4, "
                      rf"status=deferred \(Host or domain name not found\. .*name=mx\.noaddr\.test", 20)
    inst.wait_for_log(rf"qmgr\[\d+\]: {qid}: to=<someone@noaddr\.test>, status=deferred", 20)
    time.sleep(1)
    assert messages(inst, "alice") == []


def test_remote_5xx_bounces_with_the_remote_reply(out_mail):
    inst, sink = out_mail(ZONES, reject="rcpt")
    qid = send_message(inst, "fwd@example.test", BODY, sender="alice@example.test")
    inst.wait_for_log(rf"{qid}: to=<someone@remote\.test>, relay=mx\.remote\.test\[127\.0\.0\.1\]:\d+, "
                      rf".*status=bounced \(5\d\d ", 20)
    (bounce,) = wait_messages(inst, "alice", 1, timeout=20)
    text = bounce.decode(errors="replace")
    assert "Diagnostic-Code: smtp; 5" in text, text
    time.sleep(1)
    assert len(messages(inst, "alice")) == 1


def test_smtp_runs_unprivileged_in_the_jail(out_mail):
    import os
    inst, _ = out_mail(ZONES)
    (pid,) = inst.worker_pids("smtp")
    st = harness.proc_status(pid)
    uid = int(subprocess.run(["id", "-u", harness.TEST_USER], capture_output=True, text=True).stdout)
    assert [int(x) for x in st["Uid"].split()] == [uid] * 4
    assert int(st["CapEff"], 16) == 0 and st["NoNewPrivs"] == "1"
    assert os.readlink(f"/proc/{pid}/root") == str(inst.queue_dir)


def test_remote_4xx_then_success_on_retry(out_mail):
    inst, sink = out_mail(ZONES, soft="rcpt")
    qid = send_message(inst, "fwd@example.test", BODY, sender="alice@example.test")
    inst.wait_for_log(rf"smtp\[\d+\]: {qid}: to=<someone@remote\.test>, relay=mx\.remote\.test\[127\.0\.0\.1\]:\d+, "
                      rf".*status=deferred \(4\d\d ", 20)
    inst.wait_for_log(rf"qmgr\[\d+\]: {qid}: to=<someone@remote\.test>, status=deferred", 20)
    assert sink.messages() == []
    # the remote end recovers; the operator retries now instead of in 5 minutes
    sink.stop()
    sink.start()
    r = inst.mailctl("queue", "flush")
    assert r.returncode == 0, r.stdout + r.stderr
    wait_until(lambda: sink.messages(), 20, what="the message at the recovered MX")
    inst.wait_for_log(rf"{qid}: to=<someone@remote\.test>, relay=mx\.remote\.test\[127\.0\.0\.1\]:\d+, .*status=sent", 20)
    inst.wait_for_log(rf"qmgr\[\d+\]: {qid}: removed", 20)
    assert messages(inst, "alice") == []  # no bounce


def flush_until_attempted(inst, qid, n):
    """mailctl queue flush until the n-th deferral of qid is logged."""
    def attempted():
        inst.mailctl("queue", "flush")
        return len(re.findall(rf"qmgr\[\d+\]: {qid}: to=<someone@remote\.test>, status=deferred", inst.log())) >= n
    wait_until(attempted, 30, what=f"deferral {n} of {qid}")


def test_delay_warning_once_then_delivery(out_mail):
    """delay_warning_time: the sender hears once that the message is still
    being retried (an RFC 3464 report with Action: delayed and the remote
    reply, headers only), then nothing more until it is delivered."""
    inst, sink = out_mail(ZONES, soft="rcpt", delay_warning_time="1s")
    qid = send_message(inst, "fwd@example.test", BODY, sender="alice@example.test")
    inst.wait_for_log(rf"qmgr\[\d+\]: {qid}: to=<someone@remote\.test>, status=deferred", 20)
    assert f"{qid}: sender delay notification" not in inst.log()  # younger than 1 s at its first try
    time.sleep(1.2)
    flush_until_attempted(inst, qid, 2)
    inst.wait_for_log(rf"qmgr\[\d+\]: {qid}: sender delay notification: \w+", 20)
    (warning,) = wait_messages(inst, "alice", 1, timeout=20)
    text = warning.decode(errors="replace")
    assert "Subject: Delayed Mail (still being retried)" in text, text
    assert "Action: delayed" in text and re.search(r"Status: 4\.\d+\.\d+", text), text
    assert "Diagnostic-Code: smtp; 450 " in text, text
    assert "Will-Retry-Until: " in text and "Final-Recipient: rfc822; someone@remote.test" in text, text
    assert "Original-Recipient: rfc822;fwd@example.test" in text, text
    assert "Content-Type: text/rfc822-headers" in text and "to the world" not in text, text
    # later deferrals: no second warning
    flush_until_attempted(inst, qid, 3)
    time.sleep(1)
    assert len(messages(inst, "alice")) == 1
    assert inst.log().count(f"{qid}: sender delay notification") == 1
    # the remote end recovers: delivered, and no bounce either
    sink.stop()
    sink.start()
    inst.mailctl("queue", "flush")
    wait_until(lambda: sink.messages(), 20, what="the message at the recovered MX")
    inst.wait_for_log(rf"qmgr\[\d+\]: {qid}: removed", 20)
    assert len(messages(inst, "alice")) == 1


def test_no_delay_warning_without_notify_delay(out_mail):
    """NOTIFY=FAILURE (no DELAY): the sender asked for no delay warning."""
    from mailfix import Smtp, queued_id
    inst, _ = out_mail(ZONES, soft="rcpt", delay_warning_time="1s")
    with Smtp(inst.smtp_port) as s:
        s.ehlo("client.example.net")
        assert s.cmd("MAIL FROM:<alice@example.test>").code == 250
        assert s.cmd("RCPT TO:<fwd@example.test> NOTIFY=FAILURE").code == 250
        assert s.cmd("DATA").code == 354
        s.send(BODY + b".\r\n")
        qid = queued_id(s.reply())
    inst.wait_for_log(rf"qmgr\[\d+\]: {qid}: to=<someone@remote\.test>, status=deferred", 20)
    time.sleep(1.2)
    flush_until_attempted(inst, qid, 2)
    time.sleep(1)
    assert "sender delay notification" not in inst.log()
    assert messages(inst, "alice") == []


def test_relayhost_takes_everything(out_mail):
    # nxdomain.test has no DNS at all: through the relay host it still goes
    inst, sink = out_mail(ZONES, relay=True)
    qid = send_message(inst, "gone@example.test", BODY, sender="alice@example.test")
    wait_until(lambda: sink.messages(), 20, what="the message at the relay host")
    inst.wait_for_log(rf"{qid}: to=<someone@nxdomain\.test>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:\d+, "
                      rf".*status=sent", 20)


@pytest.mark.parametrize("password", ["relay-secret", "wrong-secret"])
def test_relayhost_with_auth(out_mail, instance, password):
    """A provider's submission server (aiosmtpd: STARTTLS, then AUTH
    required) as the relay host: Yubin logs in with the password file's
    login, over TLS."""
    aiosmtpd_controller = pytest.importorskip("aiosmtpd.controller")
    from aiosmtpd.smtp import AuthResult
    import ssl
    from tlsfix import CA

    got = []

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            login = getattr(session.auth_data, "login", None)
            got.append((session.authenticated, login, envelope.rcpt_tos, envelope.content))
            return "250 2.0.0 Ok: relayed"

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = auth_data.login == b"yubin@provider.test" and auth_data.password == b"relay-secret"
        return AuthResult(success=ok, handled=False, auth_data=auth_data)

    ca = CA(instance.base / "relay-tls")
    cert, key = ca.issue("relay.provider.test")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(cert), str(key))
    port = instance.new_port()
    ctl = aiosmtpd_controller.Controller(Handler(), hostname="127.0.0.1", port=port, tls_context=ctx,
                                         require_starttls=True, authenticator=authenticator, auth_required=True,
                                         auth_require_tls=True)
    ctl.start()
    try:
        inst, _ = out_mail(ZONES, relay=True, relay_port=port, relay_login=("yubin@provider.test", password))
        qid = send_message(inst, "fwd@example.test", BODY, sender="alice@example.test")
        if password != "relay-secret":
            # refused login: deferred with the relay's reply, kept for later
            inst.wait_for_log(rf"{qid}: to=<someone@remote\.test>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:{port}, "
                              rf".*dsn=4\.7\.8, status=deferred \(535 ", 20)
            assert got == [] and password not in inst.log()
            return
        wait_until(lambda: got, 20, what="the message at the relay host")
        authenticated, login, rcpts, content = got[0]
        assert authenticated and login == b"yubin@provider.test"
        assert rcpts == ["someone@remote.test"]
        assert b"Subject: out" in content
        inst.wait_for_log(rf"{qid}: to=<someone@remote\.test>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:{port}, "
                          rf".*status=sent \(250 2\.0\.0 Ok: relayed\)", 20)
        assert "relay-secret" not in inst.log()
    finally:
        ctl.stop()


def test_destination_rate_delay(out_mail):
    """smtp_destination_rate_delay: one delivery at a time to a domain, the
    pause between starts (a lower bound, so no flakiness from load)."""
    import datetime
    inst, sink = out_mail(ZONES)
    inst.params["smtp_destination_rate_delay"] = "1s"
    inst.write_config()
    r = inst.mailctl("reload")
    assert r.returncode == 0, r.stdout + r.stderr
    inst.wait_service("smtp")
    time.sleep(1)
    qids = [send_message(inst, "fwd@example.test", BODY, sender="alice@example.test") for _ in range(3)]
    wait_until(lambda: len(sink.messages()) == 3, 30, what="three messages at the remote MX")
    stamps = []
    for qid in qids:
        m = inst.wait_for_log(rf"(?m)^(\S+) \S*smtp\[\d+\]: {qid}: to=<someone@remote\.test>, .*status=sent", 20)
        stamps.append(datetime.datetime.fromisoformat(m.group(1).rstrip("Z")))
    stamps.sort()
    assert all((b - a).total_seconds() >= 0.9 for a, b in zip(stamps, stamps[1:])), stamps



def established_to(port):
    """How many TCP connections to 127.0.0.1:port are established."""
    out = subprocess.run(["ss", "-Htn", "state", "established", f"( dport = :{port} )"],
                         capture_output=True, text=True, check=True).stdout
    return len(out.splitlines())


def test_connection_reused_for_the_next_message(out_mail):
    """Messages to one domain in a row go down one connection
    (conn_use=N in the log, as Postfix writes it); the connection says
    QUIT once it has waited smtp_connection_cache_time_limit for more."""
    inst, sink = out_mail(ZONES, smtp_connection_cache_time_limit="3s")
    qids = []
    for n in range(1, 5):
        qids.append(send_message(inst, "fwd@example.test", BODY + b"number %d\r\n" % n, sender="alice@example.test"))
        wait_until(lambda: len(sink.messages()) == n, 20, what=f"message {n} at the remote MX")
    inst.wait_for_log(rf"{qids[0]}: to=<someone@remote\.test>, relay=mx\.remote\.test\[127\.0\.0\.1\]:\d+, "
                      rf"delay=[\d.]+, dsn=2\.0\.0, status=sent", 20)
    for n, qid in enumerate(qids[1:], 2):
        inst.wait_for_log(rf"{qid}: to=<someone@remote\.test>, relay=mx\.remote\.test\[127\.0\.0\.1\]:\d+, "
                          rf"conn_use={n}, delay=[\d.]+, dsn=2\.0\.0, status=sent", 20)
    assert established_to(sink.port) == 1
    bodies = sorted(sink.messages())
    assert [b.count(b"Subject: out") for b in bodies] == [1] * 4
    assert all(re.search(rb"number %d\r?\n" % n, b"".join(bodies)) for n in range(1, 5))
    # idle for the time limit: QUIT, and nothing left open
    wait_until(lambda: established_to(sink.port) == 0, 15, what="the idle connection closed")
    assert "lost connection" not in inst.log()


def test_no_reuse_when_the_cache_time_is_zero(out_mail):
    inst, sink = out_mail(ZONES, smtp_connection_cache_time_limit="0")
    for n in range(1, 3):
        send_message(inst, "fwd@example.test", BODY, sender="alice@example.test")
        wait_until(lambda: len(sink.messages()) == n, 20, what=f"message {n} at the remote MX")
    time.sleep(0.5)
    assert "conn_use=" not in inst.log()
    wait_until(lambda: established_to(sink.port) == 0, 10, what="no connection kept")


class OneMessageMX:
    """An MX that takes one message per connection, then drops the
    connection without a word at the next MAIL FROM: the way a server
    that timed out an idle client looks to that client."""

    def __init__(self, port):
        import threading
        self.got = []
        self.connections = 0
        self.dropped = 0
        self.sock = socket.create_server(("127.0.0.1", port))
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        import threading
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._session, args=(conn,), daemon=True).start()

    def _session(self, conn):
        f = conn.makefile("rb")
        conn.sendall(b"220 mx.remote.test ESMTP\r\n")
        mails = 0
        try:
            while True:
                line = f.readline()
                if not line:
                    return
                verb = line[:4].upper()
                if verb == b"EHLO":
                    conn.sendall(b"250-mx.remote.test\r\n250 PIPELINING\r\n")
                elif verb == b"MAIL":
                    mails += 1
                    if mails > 1:
                        self.dropped += 1
                        return  # gone, as after a server-side idle timeout
                    conn.sendall(b"250 2.1.0 Ok\r\n")
                elif verb == b"RCPT":
                    conn.sendall(b"250 2.1.5 Ok\r\n")
                elif verb == b"DATA":
                    conn.sendall(b"354 go on\r\n")
                    data = b""
                    while (line := f.readline()) not in (b".\r\n", b""):
                        data += line
                    self.got.append(data)
                    conn.sendall(b"250 2.0.0 Ok: queued\r\n")
                elif verb == b"QUIT":
                    conn.sendall(b"221 2.0.0 Bye\r\n")
                    return
                else:
                    conn.sendall(b"250 2.0.0 Ok\r\n")
        finally:
            f.close()
            conn.close()

    def stop(self):
        self.sock.close()


def test_reused_connection_found_dead_takes_a_new_one(out_mail, instance):
    """A kept connection the server has dropped meanwhile: the message is
    not deferred, it goes through a new connection at once."""
    port = instance.new_port()
    mx = OneMessageMX(port)
    try:
        inst, _ = out_mail(ZONES, mx_port=port, smtp_connection_cache_time_limit="10s")
        send_message(inst, "fwd@example.test", BODY, sender="alice@example.test")
        wait_until(lambda: len(mx.got) == 1, 20, what="the first message")
        qid = send_message(inst, "fwd@example.test", BODY + b"second\r\n", sender="alice@example.test")
        wait_until(lambda: len(mx.got) == 2, 20, what="the second message, through a new connection")
        inst.wait_for_log(rf"{qid}: to=<someone@remote\.test>, relay=mx\.remote\.test\[127\.0\.0\.1\]:{port}, "
                          rf"delay=[\d.]+, dsn=2\.0\.0, status=sent", 20)
        assert (mx.connections, mx.dropped) == (2, 1)  # the kept one was tried, then a new one
        assert b"second" in mx.got[1]
        assert f"{qid}: to=<someone@remote.test>, relay=mx.remote.test[127.0.0.1]:{port}, conn_use" not in inst.log()
        assert not re.search(rf"{qid}: .*status=deferred", inst.log())
    finally:
        mx.stop()


def tls_mx(instance, name, cert_for, starttls=True):
    """An MX with STARTTLS (aiosmtpd) whose certificate, from a CA the test
    makes, names cert_for. Returns (controller, port, received, ca)."""
    aiosmtpd_controller = pytest.importorskip("aiosmtpd.controller")
    import ssl
    from tlsfix import CA

    got = []

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            got.append(envelope.content)
            return "250 2.0.0 Ok: got it"

    ca = CA(instance.base / f"tls-{name}")
    cert, key = ca.issue(cert_for)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(cert), str(key))
    port = instance.new_port()
    ctl = aiosmtpd_controller.Controller(Handler(), hostname="127.0.0.1", port=port,
                                         tls_context=ctx if starttls else None)
    ctl.start()
    return ctl, port, got, ca


@pytest.mark.parametrize("policy,cert_for,starttls,outcome", [
    ("verify", "mx.remote.test", True, "sent"),          # the right name, a CA we trust
    ("verify", "someone.else.test", True, "deferred"),   # the wrong name: no delivery
    ("encrypt", "mx.remote.test", False, "deferred"),    # no STARTTLS offered: no delivery
    ("may", "someone.else.test", False, "sent"),         # opportunistic: plaintext is fine
])
def test_tls_policy(out_mail, instance, policy, cert_for, starttls, outcome):
    ctl, port, got, ca = tls_mx(instance, policy, cert_for, starttls)
    try:
        policies = instance.base / "tls-policy"
        policies.write_text(f"# destination policy\nremote.test {policy}\n")
        inst, _ = out_mail(ZONES, mx_port=port, smtp_tls_policy_map=str(policies), smtp_tls_ca_file=str(ca.cert))
        qid = send_message(inst, "fwd@example.test", BODY, sender="alice@example.test")
        line = inst.wait_for_log(rf"{qid}: to=<someone@remote\.test>, relay=mx\.remote\.test\[127\.0\.0\.1\]:{port}, "
                                 rf".*status=(sent|deferred) \((.*)\)", 20)
        assert line.group(1) == outcome, line.group(0)
        assert bool(got) == (outcome == "sent")
        if policy == "verify" and outcome == "sent":
            inst.wait_for_log(rf"{qid}: Trusted TLS connection established to mx\.remote\.test", 5)
        if outcome == "deferred":
            assert re.search(r"4\.7\.[45]", line.group(2)) or "4.7." in line.group(0), line.group(0)
    finally:
        ctl.stop()


def test_bad_requests_are_refused(out_mail):
    """smtp-deliver requests qmgr should never send: a clear error reply,
    a log line, and the connection stays good."""
    import os
    import tempfile
    import ipc

    inst, sink = out_mail(ZONES)
    c = ipc.Client(inst.queue_dir / "private" / "smtp", "smtp-deliver")
    try:
        r = c.request([("cmd", "frobnicate")])
        assert (r.get("status"), r.get("reason")) == ("error", "unknown command")
        r = c.request([("cmd", "deliver"), ("id", "0660E6511320EB0054000000"), ("sender", ""),
                       ("nexthop", "remote.test"), ("rcpt", "a@remote.test"), ("orcpt", ""), ("notify", 0)])
        assert (r.get("status"), r.get("reason")) == ("error", "no message descriptor passed")
        with tempfile.TemporaryFile() as f:
            f.write(b"Subject: x\r\n\r\nx\r\n")
            f.flush()
            fd = os.dup(f.fileno())
            try:
                # recipients without their aligned orcpt/notify, and no nexthop
                r = c.request([("cmd", "deliver"), ("id", "0660E6511320EB0054000000"), ("sender", ""),
                               ("rcpt", "a@remote.test")], fd=fd)
            finally:
                os.close(fd)
        assert (r.get("status"), r.get("reason")) == ("error", "missing or misaligned fields")
    finally:
        c.close()
    inst.wait_for_log(r"smtp\[\d+\]: warning: bad request: missing or misaligned fields", 5)
    assert sink.messages() == []
