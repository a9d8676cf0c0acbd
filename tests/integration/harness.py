"""harness.py - throwaway Yubin instances for the integration tests.

An Instance is a private configuration directory, queue (chroot), run and
daemon directory under one temporary directory, with its own log_file and
free loopback ports. master and the test service echod are reached through
symlinks in the instance's daemon_directory, so the tests run the binaries
of the build tree (YUBIN_BUILD_DIR, default: the repository root) without
installing anything.

Everything an operator would do goes through mailctl; the harness only
reads /proc, the log file and the sockets to observe the result, and kills
leftovers (by exact config-dir argument in /proc/PID/cmdline) at teardown.
"""
import contextlib
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

BUILD_DIR = Path(os.environ.get("YUBIN_BUILD_DIR") or Path(__file__).resolve().parents[2])
MAILCTL = BUILD_DIR / "mailctl" / "mailctl"
MASTER = BUILD_DIR / "master" / "master"
ECHOD = BUILD_DIR / "tests" / "helpers" / "echod"
AUTH = BUILD_DIR / "auth" / "auth"

IS_ROOT = os.geteuid() == 0
TEST_USER = "yubin-test"  # the unprivileged account the workers run as under root

# Short timings so that crash, throttle and stop paths run in seconds.
DEFAULT_PARAMS = {
    "service_crash_window": "2s",
    "service_crash_limit": "3",
    "service_throttle_time": "3s",
    "service_ready_timeout": "5s",
    "stop_timeout": "3s",
}

CRASH_SCRIPT = "#!/bin/sh\nexit 1\n"
HANG_SCRIPT = "#!/bin/sh\nexec sleep 60\n"


def ensure_test_user():
    """As root: the non-root account the instance's workers run as."""
    try:
        return pwd.getpwnam(TEST_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                        TEST_USER], check=True, capture_output=True)
        return pwd.getpwnam(TEST_USER)


def free_port(exclude=()):
    """A currently free TCP port on 127.0.0.1 (and, in practice, on ::)."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port >= 10000 and port not in exclude:
            return port
    raise RuntimeError("no free port found")


def wait_until(predicate, timeout=10.0, interval=0.05, what=None):
    """Poll predicate until it returns something truthy; return that value.
    Raises AssertionError naming what was awaited (and the last value)."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for "
                                 f"{what or getattr(predicate, '__name__', 'condition')} (last: {last!r})")
        time.sleep(interval)


def proc_state(pid):
    """The one-letter state of pid, or None if there is no such process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return data[data.rindex(")") + 2]


def pid_alive(pid):
    """True for a live process; a zombie (dead, not yet reaped by init) is gone."""
    return proc_state(pid) not in (None, "Z", "X")


def proc_status(pid):
    """/proc/PID/status as a dict of field -> raw value string."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            out[key] = value.strip()
    return out


def proc_cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return []


def pids_with_arg(arg):
    """Live processes one of whose arguments is exactly arg (not ourselves)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        pid = int(entry)
        if arg in proc_cmdline(pid) and pid_alive(pid):
            pids.append(pid)
    return sorted(pids)


def has_ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def port_refuses(port, host="127.0.0.1"):
    """True if nothing listens on host:port (the connection is refused)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(2)
        try:
            s.connect((host, port))
        except ConnectionRefusedError:
            return True
        return False


class Client:
    """A line-oriented client of echod."""

    def __init__(self, sock):
        self.sock = sock
        self.file = sock.makefile("rb")

    def readline(self):
        return self.file.readline().decode(errors="replace").rstrip("\r\n")

    def send(self, line):
        self.sock.sendall(line.encode() + b"\r\n")

    def read_rest(self):
        """Everything up to EOF (the server closed), as text."""
        return self.file.read().decode(errors="replace")

    def close(self):
        self.file.close()
        self.sock.close()


@contextlib.contextmanager
def client(port=None, host="127.0.0.1", unix_path=None, timeout=5.0):
    """A connected echod client; the greeting is not read yet."""
    if unix_path is not None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        sock.connect(str(unix_path))
    else:
        sock = socket.create_connection((host, port), timeout=timeout)
        sock.settimeout(timeout)
    c = Client(sock)
    try:
        yield c
    finally:
        c.close()


GREETING_RE = re.compile(r"^hello from (?P<service>\S+) pid (?P<pid>\d+) listener (?P<listener>\d+)$")


def connect(port=None, host="127.0.0.1", unix_path=None, timeout=5.0):
    """Connect, read the greeting, say QUIT; return the parsed greeting
    (dict with service, pid, listener, line) or raise."""
    with client(port, host, unix_path, timeout) as c:
        line = c.readline()
        m = GREETING_RE.match(line)
        assert m, f"unexpected greeting {line!r} from {host}:{port or unix_path}"
        with contextlib.suppress(OSError):
            c.send("QUIT")
        g = m.groupdict()
        g["pid"] = int(g["pid"])
        g["listener"] = int(g["listener"])
        g["line"] = line
        return g


def service_line(name, listen, procs=2, program="echod", type_="inet", user="${mail_owner}",
                 chroot="${queue_directory}", args=()):
    return " ".join([name, type_, listen, user, chroot, str(procs), program, *args])


class Instance:
    """One private Yubin installation; see the module docstring."""

    def __init__(self, base):
        self.base = Path(base)
        self.config_dir = self.base / "etc"
        self.queue_dir = self.base / "queue"
        self.run_dir = self.base / "run"
        self.data_dir = self.base / "data"
        self.daemon_dir = self.base / "libexec"
        self.log_path = self.base / "yubin.log"
        self.pid_path = self.run_dir / "master.pid"
        self.ctl_path = self.run_dir / "master.ctl"
        self.user = TEST_USER if IS_ROOT else pwd.getpwuid(os.geteuid()).pw_name
        pw = pwd.getpwnam(self.user)
        self.uid, self.gid = pw.pw_uid, pw.pw_gid
        self.ports = set()
        self.master_pids = set()  # every master pid this instance had
        # The queue directory is the workers' jail: owned by us (root), 0755,
        # not writable by the workers' account. chmod: whatever the umask.
        for d in (self.config_dir, self.run_dir, self.data_dir, self.daemon_dir, self.queue_dir):
            d.mkdir()
            d.chmod(0o755)
        (self.daemon_dir / "master").symlink_to(MASTER)
        (self.daemon_dir / "echod").symlink_to(ECHOD)
        (self.daemon_dir / "auth").symlink_to(AUTH)  # dangling until auth is built
        self.write_program("crash", CRASH_SCRIPT)
        self.write_program("hang", HANG_SCRIPT)
        self.params = {
            "mail_owner": self.user,
            "queue_directory": str(self.queue_dir),
            "run_directory": str(self.run_dir),
            "data_directory": str(self.data_dir),
            "daemon_directory": str(self.daemon_dir),
            "log_file": str(self.log_path),
            **DEFAULT_PARAMS,
        }
        self.extra_conf_lines = []
        self.port = self.new_port()
        self.services = {"echo": service_line("echo", f"127.0.0.1:{self.port}", procs=2)}
        self.write_config()

    # -- configuration -------------------------------------------------

    def new_port(self):
        port = free_port(exclude=self.ports)
        self.ports.add(port)
        return port

    def write_program(self, name, text):
        path = self.daemon_dir / name
        path.write_text(text)
        path.chmod(0o755)
        return path

    def write_config(self):
        lines = ["# written by tests/integration/harness.py"]
        lines += [f"{k} = {v}" for k, v in self.params.items()]
        lines += self.extra_conf_lines
        (self.config_dir / "yubin.conf").write_text("\n".join(lines) + "\n")
        (self.config_dir / "master.conf").write_text(
            "# name type listen user chroot procs program [args]\n"
            + "".join(line + "\n" for line in self.services.values()))

    def set_services(self, **services):
        self.services = dict(services)
        self.write_config()

    # -- commands ------------------------------------------------------

    def mailctl(self, *args, config=True, as_user=None, timeout=60):
        """Run mailctl [-c CONFIG_DIR] ARGS; as_user runs it through runuser."""
        cmd = [str(MAILCTL)]
        if config:
            cmd += ["-c", str(self.config_dir)]
        cmd += list(args)
        if as_user is not None:
            cmd = ["runuser", "-u", as_user, "--"] + cmd
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)

    def mailctl_start(self, timeout=60):
        return self.mailctl("start", timeout=timeout)

    def start(self):
        r = self.mailctl_start()
        assert r.returncode == 0, (f"mailctl start exited {r.returncode}\nstdout: {r.stdout}\n"
                                   f"stderr: {r.stderr}\nlog:\n{self.log()}")
        m = re.search(r"yubin started \(master pid (\d+), config (.*)\)", r.stdout)
        assert m, f"unexpected start output {r.stdout!r}"
        self.master_pids.add(int(m.group(1)))
        return r

    def stop(self):
        return self.mailctl("stop")

    def reload(self):
        return self.mailctl("reload")

    def status_json(self):
        r = self.mailctl("status", "--json")
        assert r.returncode in (0, 3), f"status --json exited {r.returncode}: {r.stderr}"
        return json.loads(r.stdout)

    def service_status(self, name="echo"):
        st = self.status_json()
        assert st["running"], "master is not running"
        for s in st["services"]:
            if s["name"] == name:
                return s
        raise AssertionError(f"no service {name} in status: {st}")

    def worker_pids(self, service="echo"):
        """The pids master reports for service (not retiring ones)."""
        return sorted(w["pid"] for w in self.service_status(service)["workers"])

    def master_pid(self):
        try:
            return int(self.pid_path.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def processes(self):
        """Live processes of this instance: master, its workers (all run with
        -c CONFIG_DIR), and any mailctl working on it."""
        return pids_with_arg(str(self.config_dir))

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_for_log(self, pattern, timeout=10.0):
        rx = re.compile(pattern)
        return wait_until(lambda: rx.search(self.log()), timeout, what=f"log line /{pattern}/")

    def wait_status(self, predicate, name="echo", timeout=10.0, what=None):
        """Wait until predicate(status entry of service name) holds; return the entry."""
        def check():
            svc = self.service_status(name)
            return svc if predicate(svc) else None
        return wait_until(check, timeout, what=what or f"service {name} status")

    def wait_service(self, name="echo", state="running", workers=None, timeout=10.0):
        """Wait until service name is in state with `workers` (default procs)
        workers, none still starting; return its status entry."""
        def ok():
            s = self.service_status(name)
            want = s["procs"] if workers is None else workers
            if s["state"] == state and len(s["workers"]) == want:
                return s
            return None
        return wait_until(ok, timeout, what=f"service {name} {state} with {workers or 'procs'} workers")

    def connect(self, port=None, **kw):
        return connect(self.port if port is None else port, **kw)

    # -- teardown ------------------------------------------------------

    def cleanup(self):
        """Stop whatever is left of the instance, whatever state it is in."""
        if self.ctl_path.exists():
            with contextlib.suppress(Exception):
                self.mailctl("stop", timeout=20)
        victims = set(self.processes())
        for pid in self.master_pids | {self.master_pid() or 0}:
            if pid and str(self.config_dir) in proc_cmdline(pid):
                victims.add(pid)
        for pid in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(AssertionError):
            wait_until(lambda: not self.processes(), 5, what="instance processes to die")


def make_base_dir():
    """A fresh 0755 directory under /tmp (or $YUBIN_TEST_TMPDIR): short
    paths keep the control socket under the 108-byte sun_path limit, and
    the chroot's ancestors must be traversable."""
    parent = os.environ.get("YUBIN_TEST_TMPDIR", "/tmp")
    base = tempfile.mkdtemp(prefix="yubin-it-", dir=parent)
    os.chmod(base, 0o755)
    return Path(base)


def remove_base_dir(base):
    shutil.rmtree(base, ignore_errors=True)
