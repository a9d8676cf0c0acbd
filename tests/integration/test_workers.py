"""Worker supervision: replacement, throttling, start-up failures, and the
echo service's own protocol."""
import os
import re
import signal
import socket
import time

from harness import client, pid_alive, port_refuses, service_line, wait_until


def test_killed_worker_is_replaced(running):
    old = running.worker_pids()
    assert len(old) == 2
    victim = old[0]
    os.kill(victim, signal.SIGKILL)
    svc = running.wait_status(lambda s: s["restarts"] == 1 and len(s["workers"]) == 2
                              and victim not in [w["pid"] for w in s["workers"]], what="a replacement worker")
    new = sorted(w["pid"] for w in svc["workers"])
    assert old[1] in new, "the other worker was left alone"
    replacement = (set(new) - {old[1]}).pop()
    assert replacement != victim and pid_alive(replacement)
    assert not pid_alive(victim)
    running.wait_service()
    assert running.service_status()["state"] == "running"
    assert svc["last_exit"] == "killed by signal 9 (Killed)"
    running.wait_for_log(r"yubin/master\[\d+\]: warning: service echo: worker %d killed by signal 9 "
                         r"\(Killed\)" % victim)
    # clients are served, by the surviving and the new worker only
    served = {running.connect()["pid"] for _ in range(20)}
    assert served <= set(new)
    assert victim not in served
    r = running.mailctl("status")
    assert re.search(r"^echo\s+.*\s2/2\s+1\s+", r.stdout, re.M), r.stdout


def test_worker_exiting_cleanly_is_replaced(running):
    """SIGTERM to one worker: it ends with exit status 0, which is no crash,
    and master starts another."""
    victim = running.worker_pids()[0]
    os.kill(victim, signal.SIGTERM)
    running.wait_status(lambda s: s["restarts"] == 1 and len(s["workers"]) == 2
                        and victim not in [w["pid"] for w in s["workers"]], what="a replacement worker")
    assert running.service_status()["last_exit"] == "exit status 0"
    assert not re.search(r"warning: service echo: worker %d" % victim, running.log())
    running.connect()


def test_crashing_service_is_throttled(running):
    """A service whose program exits at once is throttled after
    service_crash_limit (3) quick crashes, does not fork-storm, and is tried
    again after service_throttle_time (3s)."""
    port = running.new_port()
    running.set_services(echo=running.services["echo"],
                         crashy=service_line("crashy", f"127.0.0.1:{port}", procs=2, program="crash"))
    r = running.reload()
    assert r.returncode == 0, r.stderr
    t0 = time.monotonic()
    # (the last worker started before the throttle may still be on its way out)
    svc = running.wait_status(lambda s: s["state"] == "throttled" and not s["workers"], "crashy",
                              what="crashy to be throttled with no worker left")
    running.wait_for_log(r"warning: service crashy: throttled: \d+ workers in a row .*within 2s "
                         r"of starting \(last: exit status 1\); next attempt in 3s")
    assert svc["last_exit"] == "exit status 1"
    assert svc["workers"] == []
    # 2 first workers + 1 replacement per crash until the 3rd: 4 spawns, 4 exits
    assert svc["restarts"] <= 4, svc
    table = running.mailctl("status").stdout
    assert re.search(r"^crashy\s+inet\s+\S+\s+\S+\s+throttled\s+0/2\s", table, re.M), table
    assert "last worker: exit status 1" in table

    # While throttled: no new workers (sampled until the throttle time is
    # nearly over, measured from the reload).
    restarts = svc["restarts"]
    while time.monotonic() - t0 < 2.5:
        s = running.service_status("crashy")
        assert s["restarts"] == restarts and s["state"] == "throttled", s
        time.sleep(0.2)
    # the good service is untouched by its neighbour's trouble
    assert running.service_status("echo")["state"] == "running"
    assert running.connect()["service"] == "echo"

    # After the throttle time: one more try, which throttles again at once.
    running.wait_for_log(r"service crashy: throttle time over, starting workers again", timeout=10)
    wait_until(lambda: running.service_status("crashy")["restarts"] > restarts, 5,
               what="a new attempt after the throttle time")
    s = running.wait_status(lambda s: s["state"] == "throttled" and not s["workers"], "crashy", 5,
                            what="crashy throttled again")
    assert s["restarts"] <= restarts + 2, s  # at most procs new workers, not a storm
    crashes = len(re.findall(r"warning: service crashy: worker \d+ exit status 1", running.log()))
    assert crashes == s["restarts"], (crashes, s)


def test_worker_crash_loop_throttles_after_kill(running):
    """Point echod's program at a crashing one (as after a broken upgrade),
    kill a worker: its replacements crash and the service is throttled."""
    crash = running.daemon_dir / "crash"
    echod = running.daemon_dir / "echod"
    target = os.readlink(echod)
    echod.unlink()
    echod.symlink_to(crash)
    try:
        victim = running.worker_pids()[0]
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: running.service_status()["state"] == "throttled", 10,
                   what="echo to be throttled")
        running.wait_for_log(r"warning: service echo: throttled: 3 workers in a row ")
        # the surviving old worker still serves
        assert running.connect()["service"] == "echo"
    finally:
        echod.unlink()
        echod.symlink_to(target)
    # once the throttle time is over, the real program is back
    running.wait_service(timeout=10)
    assert running.connect()["service"] == "echo"


def _assert_nothing_left(instance, port):
    wait_until(lambda: not instance.processes(), 5, what="no process of the instance")
    assert not instance.pid_path.exists(), "no pid file"
    assert not instance.ctl_path.exists(), "no control socket"
    assert port_refuses(port)
    assert instance.mailctl("status").returncode == 3


def test_start_fails_when_a_worker_exits_at_once(instance):
    instance.set_services(
        echo=instance.services["echo"],
        crashy=service_line("crashy", f"127.0.0.1:{instance.new_port()}", procs=1, program="crash"))
    r = instance.mailctl_start()
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert r.stdout == ""
    assert re.match(r"mailctl: start failed: service crashy: worker exited during start-up "
                    r"\(exit status 1\); see the log$", r.stderr.strip()), r.stderr
    assert "start-up" in instance.log()
    _assert_nothing_left(instance, instance.port)


def test_start_fails_when_workers_never_report_ready(instance):
    instance.params["service_ready_timeout"] = "1s"
    instance.set_services(hung=service_line("hung", f"127.0.0.1:{instance.port}", procs=1, program="hang"))
    t0 = time.monotonic()
    r = instance.mailctl_start(timeout=30)
    assert r.returncode == 1
    assert time.monotonic() - t0 < 10
    assert re.match(r"mailctl: start failed: service hung: workers did not report ready within 1s",
                    r.stderr.strip()), r.stderr
    _assert_nothing_left(instance, instance.port)


def test_start_fails_when_port_is_taken(instance):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", instance.port))
        s.listen(1)
        r = instance.mailctl_start()
        assert r.returncode == 1
        assert re.match(r"mailctl: start failed: service echo: .*127\.0\.0\.1.*%d" % instance.port,
                        r.stderr.strip()), r.stderr
        wait_until(lambda: not instance.processes(), 5, what="no process of the instance")
        assert not instance.pid_path.exists()
        assert not instance.ctl_path.exists()


def test_echo_protocol(running):
    """echod greets, echoes each line, and answers QUIT with "bye" before
    closing (tests/helpers/echod.c)."""
    with client(running.port) as c:
        g = c.readline()
        assert re.match(r"hello from echo pid \d+ listener 0$", g), g
        c.send("hello world")
        assert c.readline() == "echo: hello world"
        c.send("second")
        assert c.readline() == "echo: second"
        c.send("QUIT")
        assert c.read_rest() == "bye\r\n"
    # pipelined: both answers arrive before the close
    with client(running.port) as c:
        c.readline()
        c.sock.sendall(b"one\r\nQUIT\r\n")
        assert c.read_rest() == "echo: one\r\nbye\r\n"
