"""Configuration reload: SIGHUP and mailctl reload, good and bad."""
import os
import re
import signal
import socket

from harness import client, pid_alive, port_refuses, service_line, wait_until


def test_sighup_changes_procs(running):
    running.set_services(echo=service_line("echo", f"127.0.0.1:{running.port}", procs=1))
    running.reload()
    running.wait_service(workers=1)
    old = running.worker_pids()
    master = running.master_pid()

    running.set_services(echo=service_line("echo", f"127.0.0.1:{running.port}", procs=3))
    os.kill(master, signal.SIGHUP)
    svc = running.wait_status(lambda s: s["procs"] == 3 and len(s["workers"]) == 3 and s["state"] == "running",
                              what="3 running workers")
    new = {w["pid"] for w in svc["workers"]}
    assert not new & set(old), "a reload replaces every worker"
    wait_until(lambda: not any(pid_alive(p) for p in old), 5, what="the old worker to retire")
    wait_until(lambda: running.status_json()["retiring_workers"] == [], 5, what="no retiring workers")
    assert running.master_pid() == master, "SIGHUP does not restart master"
    running.wait_for_log(r"SIGHUP: reloading configuration")
    running.wait_for_log(r"reloaded configuration: 1 services")
    assert running.connect()["pid"] in new
    assert re.search(r"^echo\s+.*\s3/3\s", running.mailctl("status").stdout, re.M)


def test_reload_adds_and_removes_services(running):
    old_port = running.port
    new_port = running.new_port()
    assert port_refuses(new_port)
    running.set_services(echo2=service_line("echo2", f"127.0.0.1:{new_port}", procs=1))
    r = running.reload()
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "yubin reloaded"
    running.wait_service("echo2", workers=1)
    assert [s["name"] for s in running.status_json()["services"]] == ["echo2"]
    assert running.connect(new_port)["service"] == "echo2"
    # the removed service's port stops accepting once its workers are gone
    wait_until(lambda: port_refuses(old_port), 5, what=f"port {old_port} to be closed")
    running.wait_for_log(r"reload requested by mailctl")


def test_reload_moves_a_service_to_another_port(running):
    old_port = running.port
    new_port = running.new_port()
    running.set_services(echo=service_line("echo", f"127.0.0.1:{new_port}", procs=2))
    assert running.reload().returncode == 0
    running.wait_service()
    assert running.service_status()["listen"] == [f"127.0.0.1:{new_port}"]
    assert running.connect(new_port)["service"] == "echo"
    wait_until(lambda: port_refuses(old_port), 5, what=f"old port {old_port} to be closed")


def test_reload_keeps_listener_and_restart_count(running):
    """Same listen address: the socket is carried over (never closed, so no
    client is refused) and the restart count survives the reload."""
    os.kill(running.worker_pids()[0], signal.SIGKILL)
    wait_until(lambda: running.service_status()["restarts"] == 1, 10, what="a restart")
    running.wait_service()
    assert running.reload().returncode == 0
    running.wait_service()
    assert running.service_status()["restarts"] == 1
    assert running.connect()["service"] == "echo"


def _assert_unchanged(instance, workers, master):
    assert instance.master_pid() == master
    assert instance.worker_pids() == workers
    assert all(pid_alive(p) for p in workers)
    assert instance.status_json()["retiring_workers"] == []
    assert instance.service_status()["state"] == "running"
    assert instance.connect()["pid"] in workers


def test_reload_with_broken_master_conf_is_refused(running):
    workers = running.worker_pids()
    master = running.master_pid()
    good = dict(running.services)
    running.set_services(echo=good["echo"], bad="bad inet 127.0.0.1:1 ${mail_owner} - 1")
    r = running.reload()
    assert r.returncode == 1
    conf = running.config_dir / "master.conf"
    assert re.match(r"mailctl: reload failed: %s:3: expected at least 7 columns" % re.escape(str(conf)),
                    r.stderr.strip()), r.stderr
    assert r.stdout == ""
    running.wait_for_log(r"warning: reload failed, keeping the running configuration: %s:3: " % re.escape(str(conf)))
    _assert_unchanged(running, workers, master)

    # the same through SIGHUP: logged, nothing changes
    running.set_services(echo=good["echo"], bad="bad inet nowhere ${mail_owner} - 1 echod")
    os.kill(master, signal.SIGHUP)
    running.wait_for_log(r"SIGHUP: reloading configuration")
    running.wait_for_log(r"reload failed, keeping the running configuration: %s:3: service bad: "
                         r"listen address \"nowhere\"" % re.escape(str(conf)))
    _assert_unchanged(running, workers, master)

    # fixed: the next reload works
    running.set_services(**good)
    assert running.reload().returncode == 0
    running.wait_service()


def test_reload_with_broken_yubin_conf_is_refused(running):
    workers = running.worker_pids()
    master = running.master_pid()
    conf = running.config_dir / "yubin.conf"

    def break_conf():
        running.extra_conf_lines = ["debug_logging = maybe"]
        running.write_config()
        return r"%s:%d: debug_logging = maybe: " % (re.escape(str(conf)), len(conf.read_text().splitlines()))

    def fix_conf():
        running.extra_conf_lines = []
        running.write_config()

    # mailctl reads yubin.conf itself (to find the control socket), so the
    # error may come from mailctl or from master: file:line either way.
    where = break_conf()
    r = running.reload()
    assert r.returncode == 1
    assert re.match(r"mailctl: (reload failed: )?" + where, r.stderr.strip()), r.stderr
    assert all(pid_alive(p) for p in workers)
    assert running.connect()["pid"] in workers
    fix_conf()
    _assert_unchanged(running, workers, master)

    where = break_conf()
    os.kill(master, signal.SIGHUP)
    running.wait_for_log(r"warning: reload failed, keeping the running configuration: " + where)
    assert running.connect()["pid"] in workers
    fix_conf()
    _assert_unchanged(running, workers, master)


def test_reload_that_cannot_bind_is_refused(running):
    workers = running.worker_pids()
    master = running.master_pid()
    busy = running.new_port()
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", busy))
        s.listen(1)
        running.set_services(echo=running.services["echo"],
                             taken=service_line("taken", f"127.0.0.1:{busy}", procs=1))
        r = running.reload()
        assert r.returncode == 1
        assert re.match(r"mailctl: reload failed: service taken: ", r.stderr.strip()), r.stderr
        _assert_unchanged(running, workers, master)
        assert [s["name"] for s in running.status_json()["services"]] == ["echo"]


def test_reload_lets_busy_workers_finish(running):
    """A worker holding a client when the configuration is reloaded retires:
    it keeps serving that client, new clients go to the new workers, and it
    exits when its client leaves."""
    with client(running.port) as c:
        busy = int(re.search(r"pid (\d+)", c.readline()).group(1))
        assert running.reload().returncode == 0
        def retiring_and_replaced():
            st = running.status_json()
            svc = st["services"][0]
            return st if (st["retiring_workers"] == [busy] and len(svc["workers"]) == 2
                          and svc["state"] == "running") else None
        st = wait_until(retiring_and_replaced, 10, what="the busy worker to be retiring and two new workers")
        new = {w["pid"] for w in st["services"][0]["workers"]}
        assert busy not in new
        for _ in range(5):
            assert running.connect()["pid"] in new
        c.send("after reload")
        assert c.readline() == "echo: after reload"
        assert pid_alive(busy)
        c.send("QUIT")
        c.read_rest()
    wait_until(lambda: not pid_alive(busy), 5, what="the retired worker to exit")
    wait_until(lambda: running.status_json()["retiring_workers"] == [], 5, what="no retiring worker")
