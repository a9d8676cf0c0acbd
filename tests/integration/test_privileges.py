"""Privilege separation (root only) and the non-root mode."""
import os
import pwd
import re
import signal
import stat

import pytest

from harness import IS_ROOT, TEST_USER, pid_alive, proc_status, wait_until

def _ids(field):
    return [int(x) for x in field.split()]


def test_workers_run_as_the_service_account_in_the_jail(root_only, running):
    master = running.master_pid()
    workers = running.worker_pids()
    assert len(workers) == 2
    for pid in workers:
        st = proc_status(pid)
        assert _ids(st["Uid"]) == [running.uid] * 4, (pid, st["Uid"])
        assert _ids(st["Gid"]) == [running.gid] * 4, (pid, st["Gid"])
        assert _ids(st["Groups"]) == [running.gid], (pid, st["Groups"])
        assert st["NoNewPrivs"] == "1"
        for cap in ("CapInh", "CapPrm", "CapEff", "CapAmb"):
            assert int(st[cap], 16) == 0, (pid, cap, st[cap])
        assert os.readlink(f"/proc/{pid}/root") == str(running.queue_dir)
        assert os.readlink(f"/proc/{pid}/cwd") == str(running.queue_dir)
        assert int(st["PPid"]) == master
    # master is the only root process of the instance
    st = proc_status(master)
    assert _ids(st["Uid"])[1] == 0
    root_pids = [p for p in running.processes() if _ids(proc_status(p)["Uid"])[1] == 0]
    assert root_pids == [master]
    # status shows the account
    svc = running.service_status()
    assert svc["user"] == TEST_USER and svc["uid"] == running.uid
    # the jail is root's; its private subdirectory belongs to the mail owner
    q = os.stat(running.queue_dir)
    assert (q.st_uid, q.st_gid, stat.S_IMODE(q.st_mode)) == (0, 0, 0o755)
    p = os.stat(running.queue_dir / "private")
    assert (p.st_uid, stat.S_IMODE(p.st_mode)) == (running.uid, 0o700)
    # the control socket is root's only
    c = os.stat(running.ctl_path)
    assert c.st_uid == 0 and stat.S_IMODE(c.st_mode) & 0o077 == 0


def test_replacement_worker_drops_privileges_too(root_only, running):
    victim = running.worker_pids()[0]
    os.kill(victim, signal.SIGKILL)
    wait_until(lambda: running.service_status()["restarts"] == 1, 10, what="a replacement")
    running.wait_service()
    for pid in running.worker_pids():
        st = proc_status(pid)
        assert _ids(st["Uid"]) == [running.uid] * 4
        assert int(st["CapEff"], 16) == 0
        assert os.readlink(f"/proc/{pid}/root") == str(running.queue_dir)


def test_other_users_cannot_control_master(root_only, running):
    master = running.master_pid()
    workers = running.worker_pids()
    for args in (["status"], ["status", "--json"], ["stop"], ["reload"]):
        r = running.mailctl(*args, as_user="nobody")
        assert r.returncode == 77, (args, r.returncode, r.stdout, r.stderr)
        assert "permission denied" in r.stderr, (args, r.stderr)
    r = running.mailctl("start", as_user="nobody")
    assert r.returncode == 1
    assert "already running" in r.stderr
    assert pid_alive(master)
    assert running.worker_pids() == workers
    assert running.connect()["service"] == "echo"


def test_master_checks_the_peer_uid(root_only, running):
    """Even with the socket file opened up (mode 0666), master refuses other
    uids by their peer credentials, and mailctl says so: exit 77, permission
    denied, every time."""
    master = running.master_pid()
    workers = running.worker_pids()
    os.chmod(running.ctl_path, 0o666)
    results = [running.mailctl(*args, as_user="nobody")
               for args in [["stop"], ["status"], ["reload"]] * 10]
    # master refused them all and is untouched
    running.wait_for_log(r"warning: control: refused a connection from uid %d" % pwd.getpwnam("nobody").pw_uid)
    assert pid_alive(master)
    assert running.worker_pids() == workers
    assert running.connect()["service"] == "echo"
    wrong = [(r.args[-1], r.returncode, r.stderr.strip()) for r in results
             if r.returncode != 77 or "permission denied" not in r.stderr]
    assert not wrong, f"{len(wrong)} of {len(results)} refused requests were misreported: {wrong[:3]}"


def test_not_root_mode(running):
    """Without root everything runs as the invoking user, no chroot, with one
    warning in the log (run the suite as a normal user to exercise this)."""
    if IS_ROOT:
        pytest.skip("run as a non-root user to check the non-root mode")
    me = os.geteuid()
    for pid in running.processes():
        assert _ids(proc_status(pid)["Uid"]) == [me] * 4
    for pid in running.worker_pids():
        assert os.readlink(f"/proc/{pid}/root") == "/"
        assert proc_status(pid)["NoNewPrivs"] == "1"
    log = running.log()
    assert len(re.findall(r"yubin/master\[\d+\]: warning: not started as root: every service runs as "
                          r"uid %d, without chroot" % me, log)) == 1, log
    # one warning, not one more per worker (and per restart)
    assert len(re.findall(r"not started as root", log)) == 1, log
    assert running.service_status()["uid"] == me
