"""Start, status, stop, second start, master crash, foreground mode."""
import os
import re
import signal
import subprocess
import threading
import time

from harness import (MAILCTL, MASTER, client, connect, has_ipv6_loopback, pid_alive, port_refuses,
                     service_line, wait_until)


def test_start_status_stop(instance):
    r = instance.start()
    pid = int(re.search(r"master pid (\d+)", r.stdout).group(1))
    assert f"config {instance.config_dir}" in r.stdout
    assert r.stderr == ""
    assert pid_alive(pid)
    assert instance.master_pid() == pid, "pid file names the master mailctl reported"
    assert instance.ctl_path.exists()

    # status --json: master, the service and its two ready workers
    st = instance.status_json()
    assert st["running"] is True
    assert st["master"]["pid"] == pid
    assert st["master"]["uid"] == os.geteuid()
    assert st["master"]["config_dir"] == str(instance.config_dir)
    assert abs(st["master"]["started"] - time.time()) < 120
    assert len(st["services"]) == 1
    svc = st["services"][0]
    assert svc["name"] == "echo"
    assert svc["type"] == "inet"
    assert svc["listen"] == [f"127.0.0.1:{instance.port}"]
    assert svc["user"] == instance.user
    assert svc["uid"] == instance.uid
    assert svc["chroot"] == str(instance.queue_dir)
    assert svc["procs"] == 2
    assert svc["state"] == "running"
    assert svc["restarts"] == 0
    assert len(svc["workers"]) == 2
    worker_pids = {w["pid"] for w in svc["workers"]}
    for w in svc["workers"]:
        assert w["state"] in ("ready", "idle")
        assert w["age"] >= 0
        assert pid_alive(w["pid"])
    assert st["retiring_workers"] == []

    # the human table
    r = instance.mailctl("status")
    assert r.returncode == 0, r.stderr
    assert f"yubin is running: master pid {pid}" in r.stdout
    assert re.search(r"^SERVICE\s+TYPE\s+LISTEN\s+USER\s+STATE\s+WORKERS\s+RESTARTS\s+PIDS", r.stdout, re.M)
    row = re.search(r"^echo\s+inet\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\d+)\s+(\S+)$", r.stdout, re.M)
    assert row, r.stdout
    assert row.group(1) == f"127.0.0.1:{instance.port}"
    assert row.group(2) == instance.user
    assert row.group(3) == "running"
    assert row.group(4) == "2/2"
    assert row.group(5) == "0"
    assert {int(p) for p in row.group(6).split(",")} == worker_pids

    # a client is served by one of those workers
    g = instance.connect()
    assert g["service"] == "echo"
    assert g["pid"] in worker_pids
    assert g["listener"] == 0

    assert "starting: config" in instance.log()
    assert re.search(r"yubin/master\[%d\]: ready: 1 services running" % pid, instance.log())

    # stop
    r = instance.stop()
    assert r.returncode == 0, r.stderr
    assert "yubin stopped" in r.stdout
    assert not pid_alive(pid)
    wait_until(lambda: not any(pid_alive(p) for p in worker_pids), 5, what="workers to exit")
    assert not instance.pid_path.exists(), "pid file removed"
    assert not instance.ctl_path.exists(), "control socket removed"
    assert port_refuses(instance.port)
    assert instance.processes() == []
    assert re.search(r"yubin/master\[%d\]: stopped" % pid, instance.log())

    r = instance.mailctl("status")
    assert r.returncode == 3
    assert "not running" in r.stderr
    r = instance.mailctl("status", "--json")
    assert r.returncode == 3
    assert r.stdout.strip() == '{"running": false}'


def test_stop_and_reload_when_not_running(instance):
    r = instance.mailctl("stop")
    assert r.returncode == 1
    assert "mailctl: yubin is not running" in r.stderr
    r = instance.mailctl("reload")
    assert r.returncode == 1
    assert "yubin is not running" in r.stderr
    r = instance.mailctl("status")
    assert r.returncode == 3


def test_restart_after_stop(running):
    first = running.master_pid()
    assert running.stop().returncode == 0
    running.start()
    assert running.master_pid() != first
    assert running.connect()["service"] == "echo"


def test_second_start_is_refused(running):
    pid = running.master_pid()
    workers = running.worker_pids()
    r = running.mailctl("start")
    assert r.returncode == 1
    assert f"mailctl: yubin is already running (master pid {pid})" in r.stderr
    # and nothing about the running one changed
    assert running.master_pid() == pid
    assert running.worker_pids() == workers
    assert running.connect()["pid"] in workers


def test_second_master_binary_is_refused(running):
    """Running the master program directly next to a running one fails on
    the lock, and leaves the running master's pid file and socket alone."""
    pid = running.master_pid()
    r = subprocess.run([str(MASTER), "-c", str(running.config_dir), "-f"], capture_output=True,
                       text=True, timeout=15, stdin=subprocess.DEVNULL)
    assert r.returncode == 1
    assert f"already running (master pid {pid})" in r.stderr
    # without -f it logs to log_file
    r = subprocess.run([str(MASTER), "-c", str(running.config_dir)], capture_output=True, text=True,
                       timeout=15, stdin=subprocess.DEVNULL)
    assert r.returncode == 1
    assert re.search(r"start-up failed: yubin is already running \(master pid %d\)" % pid, running.log())
    assert running.master_pid() == pid
    assert running.ctl_path.exists()
    assert running.status_json()["master"]["pid"] == pid
    assert running.connect()["service"] == "echo"


def test_master_usage(instance):
    r = subprocess.run([str(MASTER)], capture_output=True, text=True, timeout=10)
    assert r.returncode == 64
    assert "usage: master -c CONFIG_DIR" in r.stderr
    r = subprocess.run([str(MASTER), "-c", str(instance.config_dir), "extra"], capture_output=True,
                       text=True, timeout=10)
    assert r.returncode == 64


def test_kill_9_master_leaves_no_workers(running):
    master = running.master_pid()
    workers = running.worker_pids()
    assert len(workers) == 2
    os.kill(master, signal.SIGKILL)
    wait_until(lambda: not pid_alive(master), 5, what="master to die")
    wait_until(lambda: not any(pid_alive(p) for p in workers), 5, what="orphaned workers to exit")
    assert port_refuses(running.port)
    assert running.processes() == []
    # stale pid file and socket: mailctl says "not running" and a new start works
    r = running.mailctl("status")
    assert r.returncode == 3, (r.returncode, r.stderr)
    running.start()
    assert running.master_pid() != master
    assert running.connect()["service"] == "echo"


def test_unix_and_wildcard_listeners(instance):
    """A unix service gets its socket in the private directory; *:port is
    served on IPv4 and IPv6, one listener each; stop removes the socket."""
    port = instance.new_port()
    instance.set_services(
        echo=instance.services["echo"],
        both=service_line("both", f"*:{port}", procs=1),
        local=service_line("local", "echosock", procs=1, type_="unix"),
    )
    instance.start()
    sock_path = instance.queue_dir / "private" / "echosock"
    assert sock_path.exists()
    assert connect(unix_path=sock_path)["service"] == "local"
    g4 = connect(port, host="127.0.0.1")
    assert g4["service"] == "both"
    if has_ipv6_loopback():
        g6 = connect(port, host="::1")
        assert g6["service"] == "both"
        assert {g4["listener"], g6["listener"]} == {0, 1}, "one listener per address family"
    st = instance.status_json()
    assert [s["name"] for s in st["services"]] == ["echo", "both", "local"]
    assert all(s["state"] == "running" for s in st["services"])
    assert instance.stop().returncode == 0
    assert not sock_path.exists()
    assert port_refuses(port)
    if has_ipv6_loopback():
        assert port_refuses(port, host="::1")


def test_foreground_mode(instance):
    proc = subprocess.Popen([str(MAILCTL), "-c", str(instance.config_dir), "start", "-f"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)
    reader.start()
    try:
        wait_until(lambda: any("ready: 1 services running" in l for l in lines), 10,
                   what="the ready line on stderr")
        # mailctl exec'd master itself: same pid, and it is the running master
        assert instance.master_pid() == proc.pid
        assert instance.status_json()["master"]["pid"] == proc.pid
        assert instance.connect()["service"] == "echo"
        assert re.search(r"yubin/master\[%d\]: starting: config" % proc.pid, "".join(lines))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        reader.join(5)
        assert any(re.search(r"yubin/master\[%d\]: stopped" % proc.pid, l) for l in lines), lines
        assert not instance.pid_path.exists()
        assert not instance.ctl_path.exists()
        assert port_refuses(instance.port)
        assert instance.log() == "", "foreground mode logs to stderr, not log_file"
        assert instance.mailctl("status").returncode == 3
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_worker_log_lines_are_tagged(instance):
    """Worker log lines reach log_file through master, tagged with the
    program and the worker's pid."""
    instance.params["debug_logging"] = "yes"
    instance.write_config()
    instance.start()
    for pid in instance.worker_pids():
        instance.wait_for_log(r"Z yubin/echod\[%d\]: debug: service echo ready" % pid)


def test_stop_lets_clients_finish_then_kills_after_stop_timeout(running):
    """On stop, listeners close at once, a worker holding a client keeps
    serving it, and one still busy after stop_timeout (3s) is killed."""
    with client(running.port) as c:
        greeting = c.readline()
        busy = int(re.search(r"pid (\d+)", greeting).group(1))
        t0 = time.monotonic()
        stop = subprocess.Popen([str(MAILCTL), "-c", str(running.config_dir), "stop"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            running.wait_for_log(r"yubin/master\[\d+\]: stopping")
            wait_until(lambda: port_refuses(running.port), 5, what="listeners to close")
            c.send("still there?")
            assert c.readline() == "echo: still there?"
            out, err = stop.communicate(timeout=30)
        finally:
            if stop.poll() is None:
                stop.kill()
        elapsed = time.monotonic() - t0
        assert stop.returncode == 0, err
        assert "yubin stopped" in out
        assert elapsed >= 2.5, f"stop returned after {elapsed:.1f}s, before stop_timeout"
        assert c.read_rest() == "", "the killed worker's connection is closed"
    assert re.search(r"warning: worker %d \(echod\) did not stop within 3s; killing it" % busy, running.log())
    assert not pid_alive(busy)
    assert running.processes() == []
    assert not running.pid_path.exists()


def test_stop_is_prompt_when_clients_leave(running):
    with client(running.port) as c:
        c.readline()
        stop = subprocess.Popen([str(MAILCTL), "-c", str(running.config_dir), "stop"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            running.wait_for_log(r"yubin/master\[\d+\]: stopping")
            c.send("QUIT")
            c.read_rest()
            out, err = stop.communicate(timeout=30)
        finally:
            if stop.poll() is None:
                stop.kill()
    assert stop.returncode == 0, err
    log = running.log()
    assert "did not stop" not in log
    assert re.search(r"yubin/master\[\d+\]: stopped", log)
