"""bench/benchlib.py - what the benchmarks in bench/ share.

Machine set-up (Postfix or Dovecot installed without side effects, the
accounts, the Yubin build), loopback ports, measurements from /proc (CPU,
RSS, PSS of a server's whole process tree), the servers as private
instances (Yubin, a private Postfix, a private Dovecot, each configurable
by the benchmark), server log counts, and the side-by-side report (Yubin,
the anchor, ratio).

The benchmarks import it from their own directory; see bench/README.md.
"""
import contextlib
import datetime
import grp
import os
import platform
import pwd
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOMAIN = "example.test"
HOSTNAME = "mx.example.test"
SENDER = "sender@client.test"
ACCOUNTS = ("yubin", "yubin-auth", "vmail")
PASSWORD = "Bench-pass-1"  # every benchmark user's
YUBIN_PROGRAMS = ("master", "smtpd", "qmgr", "local", "auth", "smtp", "pop3d")
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def say(*a):
    print(*a, flush=True)


def run(cmd, check=True, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL, **kw)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))}: exit {r.returncode}\n{r.stdout}{r.stderr}")
    return r


def tool_name():
    """The running benchmark's name, as in bench/NAME."""
    return Path(sys.argv[0]).name


# ---- setup of the machine ----------------------------------------------

def require_root():
    if os.geteuid() != 0:
        sys.exit(f"bench/{tool_name()}: run as root (Yubin runs its services as real accounts)")


def apt_install(packages, preseed=""):
    """apt-get install packages without starting any service: debconf
    answers preseeded, and a temporary /usr/sbin/policy-rc.d (exit 101,
    "not allowed") only if there is none."""
    if preseed:
        subprocess.run(["debconf-set-selections"], check=True, text=True, input=preseed)
    policy = Path("/usr/sbin/policy-rc.d")
    created = False
    if not policy.exists():
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
        created = True
    try:
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        r = subprocess.run(["apt-get", "install", "-y", "-q", *packages], env=env,
                           capture_output=True, text=True)
        if r.returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True)
            subprocess.run(["apt-get", "install", "-y", "-q", *packages], env=env,
                           capture_output=True, text=True, check=True)
    finally:
        if created:
            policy.unlink()


def ensure_packages():
    if shutil.which("postfix") and shutil.which("smtp-source") and shutil.which("smtp-sink"):
        return
    say("# installing postfix (preseeded: no configuration, no service start)")
    apt_install(["postfix"], "postfix postfix/main_mailer_type select No configuration\n")


DOVECOT_LIBEXEC = Path("/usr/lib/dovecot")


def system_dovecot():
    """PIDs of a system-wide Dovecot (master.pid in Debian's base_dir)."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        pid = int(Path("/run/dovecot/master.pid").read_text().split()[0])
        if comm(pid) == "dovecot":
            return tree(pid)
    return []


def ensure_dovecot():
    """dovecot-core and dovecot-pop3d, installed without a system Dovecot:
    no service start during the install (policy-rc.d), and if one runs
    afterwards that did not before, it is stopped (and disabled, under
    systemd)."""
    if shutil.which("dovecot") and (DOVECOT_LIBEXEC / "pop3").exists():
        return
    say("# installing dovecot-core and dovecot-pop3d (no service start)")
    before = system_dovecot()
    apt_install(["dovecot-core", "dovecot-pop3d"])
    if Path("/run/systemd/system").is_dir():
        # the unit is enabled by the package: no system Dovecot at boot either
        run(["systemctl", "disable", "--now", "dovecot.service", "dovecot.socket"], check=False)
    if not before and system_dovecot():
        say("# the install started a system Dovecot: stopping it")
        run(["doveadm", "stop"], check=False)
        time.sleep(1)
        kill_tree(system_dovecot())
    if system_dovecot() and not before:
        raise RuntimeError("a system Dovecot is still running after the install")


def ensure_accounts():
    for name in ACCOUNTS:
        try:
            pwd.getpwnam(name)
        except KeyError:
            run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name])


def build_yubin():
    env_dir = os.environ.get("YUBIN_BUILD_DIR")
    if env_dir:
        build = Path(env_dir).resolve()
    else:
        build = REPO / "_build" / "bench"
        say(f"# building Yubin in {build} (set YUBIN_BUILD_DIR to use another build)")
        if not (REPO / "configure").exists():
            run(["autoreconf", "-fi"], cwd=REPO)
        build.mkdir(parents=True, exist_ok=True)
        if not (build / "Makefile").exists():
            run([str(REPO / "configure")], cwd=build)
        run(["make", f"-j{os.cpu_count() or 1}", "all"], cwd=build)
    missing = [p for p in YUBIN_PROGRAMS + ("mailctl",)
               if not os.access(build / p / p, os.X_OK)]
    if missing:
        raise RuntimeError(f"not built in {build}: {', '.join(missing)}")
    return build


def prepare_machine(anchor="Postfix"):
    """The anchor (Postfix or Dovecot), the accounts, the Yubin build
    (returned), enough descriptors."""
    if anchor == "Dovecot":
        ensure_dovecot()
    else:
        ensure_packages()
    ensure_accounts()
    build = build_yubin()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4096)), hard))
    return build


def print_header(build, anchor="Postfix"):
    """The first lines of a report: benchmark, time, machine, versions."""
    head = run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], check=False).stdout.strip()
    if anchor == "Dovecot":
        version = run(["dovecot", "--version"], check=False).stdout.strip()
    else:
        version = run(["postconf", "-d", "-h", "mail_version"], check=False).stdout.strip()
    cpu_model = ""
    with contextlib.suppress(OSError):
        m = re.search(r"model name\s*:\s*(.*)", Path("/proc/cpuinfo").read_text())
        cpu_model = m.group(1) if m else ""
    say(f"# bench/{tool_name()}  {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}")
    say(f"# machine: {platform.node()}, {os.cpu_count()} CPU ({cpu_model}), "
        f"{os.sysconf('SC_PHYS_PAGES') * os.sysconf('SC_PAGE_SIZE') // 2**20} MiB, kernel {platform.release()}")
    built = ""
    with contextlib.suppress(OSError):
        built = datetime.datetime.fromtimestamp((build / "master" / "master").stat().st_mtime,
                                                datetime.timezone.utc).strftime(", binaries of %Y-%m-%d %H:%M UTC")
    say(f"# Yubin: build {build} (repo HEAD {head}{built}); {anchor} {version}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=30, greeting=b"220"):
    """Until the server on port greets (SMTP: 220, POP3: +OK); then QUIT."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                s.settimeout(5)
                data = s.recv(512)
                if data.startswith(greeting):
                    s.sendall(b"QUIT\r\n")
                    return
        time.sleep(0.1)
    raise RuntimeError(f"nothing greets on 127.0.0.1:{port}")


# ---- /proc -------------------------------------------------------------

def read_stat(pid):
    with open(f"/proc/{pid}/stat") as f:
        data = f.read()
    rest = data[data.rindex(")") + 2:].split()
    # rest[0] state, [1] ppid, [11] utime, [12] stime, [13] cutime, [14] cstime
    return int(rest[1]), rest[0], sum(int(x) for x in rest[11:15])


def read_stat_state(pid):
    with contextlib.suppress(OSError, ValueError, IndexError):
        return read_stat(pid)[1]
    return None


def tree(root):
    """root and all its descendants (live, not zombies)."""
    if not root:
        return []
    children = {}
    for e in os.listdir("/proc"):
        if not e.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            ppid, state, _ = read_stat(int(e))
            if state not in ("Z", "X"):
                children.setdefault(ppid, []).append(int(e))
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        if os.path.exists(f"/proc/{p}"):
            out.append(p)
            todo.extend(children.get(p, ()))
    return out


def comm(pid):
    """The process's program name, or None when it is gone."""
    with contextlib.suppress(OSError):
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    return None


def cpu_seconds(pids):
    """utime+stime of each process plus what it reaped (cutime+cstime)."""
    total = 0
    for p in pids:
        with contextlib.suppress(OSError, ValueError):
            total += read_stat(p)[2]
    return total / CLK_TCK


def cpu_by_program(pids):
    """{program: seconds}: each live process's own utime+stime by its
    name; what the processes reaped (exited children) under "(exited)"."""
    out = {}
    for p in pids:
        with contextlib.suppress(OSError, ValueError, IndexError):
            with open(f"/proc/{p}/stat") as f:
                data = f.read()
            comm = data[data.index("(") + 1:data.rindex(")")]
            rest = data[data.rindex(")") + 2:].split()
            out[comm] = out.get(comm, 0) + (int(rest[11]) + int(rest[12])) / CLK_TCK
            out["(exited)"] = out.get("(exited)", 0) + (int(rest[13]) + int(rest[14])) / CLK_TCK
    return out


def cpu_by_delta(by0, by1):
    """cpu_by_program after - before, largest first, without the crumbs."""
    by = {k: v - by0.get(k, 0) for k, v in by1.items()}
    return {k: v for k, v in sorted(by.items(), key=lambda kv: -kv[1]) if v >= 0.01}


def status_kb(pid, key):
    with contextlib.suppress(OSError):
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    return 0


def rss_kb(pids):
    return sum(status_kb(p, "VmRSS") for p in pids)


def pss_kb(pids):
    total = 0
    for p in pids:
        with contextlib.suppress(OSError):
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
                        break
    return total


def kill_tree(pids):
    for p in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGKILL)


class MemorySampler:
    """Peak RSS (sum over the server's processes, every 0.2 s) and peak
    PSS (every 1 s); call poll() often, it samples when due. only: a
    predicate on a PID, to count some of the processes only."""

    def __init__(self, server, only=None):
        self.server = server
        self.only = only
        self.peak_rss = self.peak_pss = 0
        self.next_rss = self.next_pss = 0.0

    def poll(self, now):
        if now >= self.next_rss:
            pids = self.server.pids()
            if self.only:
                pids = [p for p in pids if self.only(p)]
            self.peak_rss = max(self.peak_rss, rss_kb(pids))
            self.next_rss = now + 0.2
            if now >= self.next_pss:
                self.peak_pss = max(self.peak_pss, pss_kb(pids))
                self.next_pss = now + 1.0


# ---- the two servers -----------------------------------------------------

class Server:
    name = "?"
    port = 0

    def master_pid(self):
        try:
            return int(self.pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def pids(self):
        return tree(self.master_pid())

    def maildir(self, user):
        return self.mail_root / DOMAIN / user / "Maildir"

    def restart(self):
        self.stop()
        self.start()

    def log_tail(self, n=15):
        with contextlib.suppress(OSError):
            return self.log.read_text(errors="replace").splitlines()[-n:]
        return []


class Yubin(Server):
    """A Yubin instance under base/yubin: yubin.conf with the paths, the
    host name, the accounts and a self-signed certificate, plus `conf`
    (extra yubin.conf keys); the shipped master.conf with the inet ports
    (SMTP, POP3) on loopback; domain example.test with `users` (password
    PASSWORD);
    then setup(self), e.g. for aliases through self.mailctl()."""
    name = "Yubin"

    def __init__(self, base, build, users=(), conf=None, setup=None):
        self.build = build
        self.base = base / "yubin"
        self.etc, self.queue, self.run_dir = self.base / "etc", self.base / "queue", self.base / "run"
        self.data, self.libexec = self.base / "data", self.base / "libexec"
        self.mail_root, self.log = self.base / "mail", self.base / "yubin.log"
        self.pid_file = self.run_dir / "master.pid"
        self.base.mkdir()
        self.base.chmod(0o755)
        for d in (self.etc, self.queue, self.run_dir, self.data, self.libexec):
            d.mkdir()
            d.chmod(0o755)
        for p in YUBIN_PROGRAMS:
            (self.libexec / p).symlink_to(build / p / p)
        self.port = free_port()
        keys = {
            "myhostname": HOSTNAME,
            "mail_owner": "yubin", "auth_owner": "yubin-auth", "mailbox_owner": "vmail",
            "queue_directory": self.queue, "data_directory": self.data,
            "run_directory": self.run_dir, "daemon_directory": self.libexec,
            "mail_root": self.mail_root, "log_file": self.log,
            "tls_cert_file": self.etc / "tls" / "cert.pem", "tls_key_file": self.etc / "tls" / "key.pem",
        }
        keys.update(conf or {})
        (self.etc / "yubin.conf").write_text(
            f"# written by bench/{tool_name()}; everything else keeps its default\n"
            + "".join(f"{k} = {v}\n" for k, v in keys.items()))
        # The shipped conf/master.conf, with the inet ports on loopback.
        self.submission_port, self.smtps_port = free_port(), free_port()
        self.pop3_port, self.pop3s_port = free_port(), free_port()
        shipped = (REPO / "conf" / "master.conf").read_text()
        ports = {"*:25": self.port, "*:587": self.submission_port, "*:465": self.smtps_port,
                 "*:110": self.pop3_port, "*:995": self.pop3s_port}
        for listen, port in ports.items():
            shipped = shipped.replace(listen, f"127.0.0.1:{port}")
        (self.etc / "master.conf").write_text(shipped)
        self.mailctl("tls", "selfsigned", HOSTNAME)
        if self.mailctl("config", "check", check=False).returncode != 0:
            # an older build: qmgr has no control socket yet
            text = (self.etc / "master.conf").read_text().replace("qmgr,qmgr-control", "qmgr")
            (self.etc / "master.conf").write_text(text)
        self.mailctl("domain", "add", DOMAIN)
        for u in users:
            self.mailctl("user", "add", f"{u}@{DOMAIN}", "--password-stdin", input_text=PASSWORD + "\n")
        if setup:
            setup(self)

    def mailctl(self, *args, input_text="", check=True, timeout=60):
        cmd = [str(self.build / "mailctl" / "mailctl"), "-c", str(self.etc), *args]
        r = subprocess.run(cmd, capture_output=True, text=True, input=input_text, timeout=timeout)
        if check and r.returncode != 0:
            raise RuntimeError(f"mailctl {' '.join(args)}: exit {r.returncode}\n{r.stdout}{r.stderr}")
        return r

    def start(self):
        self.mailctl("start")
        wait_port(self.port)
        wait_port(self.pop3_port, greeting=b"+OK")

    def stop(self):
        pids = self.pids()
        if (self.run_dir / "master.ctl").exists():
            with contextlib.suppress(Exception):
                self.mailctl("stop", check=False, timeout=30)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(os.path.exists(f"/proc/{p}") and
                                                  read_stat_state(p) not in ("Z", "X") for p in pids):
            time.sleep(0.1)
        kill_tree([p for p in pids if os.path.exists(f"/proc/{p}")])

    def queue_stats(self):
        """qmgr's counters (mailctl queue stats --json), or None."""
        r = self.mailctl("queue", "stats", "--json", check=False, timeout=30)
        if r.returncode != 0:
            return None
        import json
        with contextlib.suppress(ValueError):
            return json.loads(r.stdout)
        return None

    def queue_count(self):
        """Messages still in the queue (mailctl queue list), or None when
        this build has no such command."""
        r = self.mailctl("queue", "list", "--json", check=False, timeout=30)
        if r.returncode != 0:
            return None
        import json
        with contextlib.suppress(ValueError):
            data = json.loads(r.stdout)
            if isinstance(data, dict):
                data = next((v for v in data.values() if isinstance(v, list)), [])
            return len(data)
        return None

    def log_problems(self):
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return [l for l in text.splitlines()
                if re.search(r"\b(fatal|panic|error|warning|crash|killed|signal)\b", l, re.I)]


def per_log_sync(qs0, qs1):
    """Messages queued per Berkeley DB log flush between two queue_stats()."""
    if qs0 and qs1 and qs1["log_syncs"] > qs0["log_syncs"]:
        return (qs1["enqueued"] - qs0["enqueued"]) / (qs1["log_syncs"] - qs0["log_syncs"])
    return None


POSTFIX_MASTER_CF = """\
127.0.0.1:{port} inet n - n - {maxproc} smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


class Postfix(Server):
    """A private Postfix (postfix -c DIR) under base/postfix: own queue
    and data directories, loopback only, mynetworks 127.0.0.0/8, an empty
    mydestination, its log via postlogd, STARTTLS offered with its own
    ECDSA certificate; virtual(8) Maildir delivery for example.test when
    there are `users`. setup(self), called before main.cf is written, may
    write files into self.etc and return main.cf keys; `conf` adds more.
    master.cf: Debian's services without chroot, smtpd's maxproc given."""
    name = "Postfix"

    def queue_stats(self):
        return None  # Postfix keeps no such counters

    def queue_count(self):
        r = run(["postqueue", "-c", str(self.etc), "-j"], check=False)
        return len(r.stdout.splitlines()) if r.returncode == 0 else None

    def __init__(self, base, users=(), maxproc=100, conf=None, setup=None):
        self.base = base / "postfix"
        self.etc, self.spool, self.data = self.base / "etc", self.base / "spool", self.base / "data"
        self.mail_root, self.log = self.base / "mail", self.base / "postfix.log"
        self.pid_file = self.spool / "pid" / "master.pid"
        vmail = pwd.getpwnam("vmail")
        for d in (self.base, self.etc, self.spool, self.data, self.mail_root):
            d.mkdir()
            d.chmod(0o755)
        os.chown(self.data, pwd.getpwnam("postfix").pw_uid, -1)
        os.chown(self.mail_root, vmail.pw_uid, vmail.pw_gid)
        self.port = free_port()
        main = {
            "compatibility_level": "3.6",
            "queue_directory": self.spool,
            "data_directory": self.data,
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "myhostname": HOSTNAME,
            "mydestination": "",
            "mynetworks": "127.0.0.0/8",
            "relay_domains": "",
            "alias_maps": "",
            "alias_database": "",
            "local_recipient_maps": "",
            "biff": "no",
        }
        if users:
            (self.etc / "vmailbox").write_text(
                "".join(f"{u}@{DOMAIN} {DOMAIN}/{u}/Maildir/\n" for u in users))
            main.update({
                "virtual_mailbox_domains": DOMAIN,
                "virtual_mailbox_base": self.mail_root,
                "virtual_mailbox_maps": f"texthash:{self.etc / 'vmailbox'}",
                "virtual_uid_maps": f"static:{vmail.pw_uid}",
                "virtual_gid_maps": f"static:{vmail.pw_gid}",
            })
        main.update({
            "maillog_file": self.log,
            "maillog_file_prefixes": self.base,
            "smtpd_tls_cert_file": self.etc / "cert.pem",
            "smtpd_tls_key_file": self.etc / "key.pem",
            "smtpd_tls_security_level": "may",
        })
        if setup:
            main.update(setup(self) or {})
        main.update(conf or {})
        run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", str(self.etc / "key.pem"), "-out", str(self.etc / "cert.pem"), "-days", "30",
             "-subj", f"/CN={HOSTNAME}", "-addext", f"subjectAltName=DNS:{HOSTNAME}"])
        (self.etc / "main.cf").write_text(
            f"# written by bench/{tool_name()}; everything else keeps Postfix's default\n"
            + "".join(f"{k} = {v}\n" for k, v in main.items()))
        (self.etc / "master.cf").write_text(POSTFIX_MASTER_CF.format(port=self.port, maxproc=maxproc))
        run(["postfix", "-c", str(self.etc), "check"])

    def start(self):
        run(["postfix", "-c", str(self.etc), "start"])
        wait_port(self.port)

    def stop(self):
        pids = self.pids()
        if self.master_pid():
            run(["postfix", "-c", str(self.etc), "stop"], check=False)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(read_stat_state(p) not in (None, "Z", "X") for p in pids):
            time.sleep(0.1)
        kill_tree([p for p in pids if read_stat_state(p) not in (None, "Z", "X")])
        with contextlib.suppress(OSError):
            self.pid_file.unlink()

    def log_problems(self):
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return [l for l in text.splitlines()
                if re.search(r"(fatal|panic|error|warning|status=(deferred|bounced))", l, re.I)]


DOVECOT_CONF = """\
# written by bench/{tool}; everything else keeps Dovecot's default
protocols = pop3
listen = 127.0.0.1
base_dir = {run}
state_dir = {state}
log_path = {log}
ssl = no
disable_plaintext_auth = no
mail_location = maildir:~/Maildir
first_valid_uid = {uid}
first_valid_gid = {gid}
passdb {{
  driver = passwd-file
  args = scheme=CRYPT {passwd}
}}
userdb {{
  driver = passwd-file
  args = {passwd}
}}
service pop3-login {{
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
"""


class Dovecot(Server):
    """A private Dovecot (dovecot -c FILE) under base/dovecot: its own
    base_dir, state_dir and log_path; POP3 only, plain, on a loopback port
    (ssl = no, disable_plaintext_auth = no); a passwd-file passdb and
    userdb with `users`, a {name: crypt(3) hash} dict (the {CRYPT} scheme,
    i.e. libxcrypt: yescrypt hashes work), every user as the vmail account
    with home mail_root/DOMAIN/NAME and mail_location maildir:~/Maildir.
    Everything else at Dovecot's defaults; `conf` is appended to
    dovecot.conf."""
    name = "Dovecot"

    def __init__(self, base, users=None, conf=""):
        self.base = base / "dovecot"
        self.run_dir, self.state = self.base / "run", self.base / "state"
        self.mail_root, self.log = self.base / "mail", self.base / "dovecot.log"
        self.conf_file, self.passwd = self.base / "dovecot.conf", self.base / "passwd"
        self.pid_file = self.run_dir / "master.pid"
        vmail = pwd.getpwnam("vmail")
        for d in (self.base, self.run_dir, self.state, self.mail_root):
            d.mkdir()
            d.chmod(0o755)
        self.port = self.pop3_port = free_port()
        self.passwd.write_text("".join(
            f"{u}@{DOMAIN}:{{CRYPT}}{h}:{vmail.pw_uid}:{vmail.pw_gid}::{self.mail_root / DOMAIN / u}::\n"
            for u, h in (users or {}).items()))
        os.chown(self.passwd, 0, grp.getgrnam("dovecot").gr_gid)  # auth runs as default_internal_user
        self.passwd.chmod(0o640)
        self.conf_file.write_text(DOVECOT_CONF.format(
            tool=tool_name(), run=self.run_dir, state=self.state, log=self.log, uid=vmail.pw_uid,
            gid=vmail.pw_gid, passwd=self.passwd, port=self.port) + conf)
        run(["doveconf", "-c", str(self.conf_file), "-n"])  # validates

    def start(self):
        # The master daemonizes and keeps what it inherited: no pipes to wait on.
        out = self.base / "dovecot.start"
        with open(out, "w") as f:
            r = subprocess.run(["dovecot", "-c", str(self.conf_file)], stdin=subprocess.DEVNULL,
                               stdout=f, stderr=subprocess.STDOUT)
        if r.returncode != 0:
            raise RuntimeError(f"dovecot -c {self.conf_file}: exit {r.returncode}\n{out.read_text()}")
        wait_port(self.port, greeting=b"+OK")

    def stop(self):
        pids = self.pids()
        if self.master_pid():
            subprocess.run(["dovecot", "-c", str(self.conf_file), "stop"], stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(read_stat_state(p) not in (None, "Z", "X") for p in pids):
            time.sleep(0.1)
        kill_tree([p for p in pids if read_stat_state(p) not in (None, "Z", "X")])

    def log_problems(self):
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        # "master: Warning: Killed with signal 15 (by pid=... code=kill)" is our stop()
        return [l for l in text.splitlines() if re.search(r"\b(Error|Warning|Fatal|Panic):", l)
                and not re.search(r"master: Warning: Killed with signal 15 ", l)]


# ---- the instances of one benchmark run --------------------------------------

class Instances:
    """The benchmark's temporary directory and the servers living in it.

    Every run gets a fresh instance in a directory of its own; instances
    are stopped after their run but their files stay until close():
    deleting tens of thousands of files makes file creation slow for
    minutes after on ext4 without a journal (it passes over recently
    freed inodes), which would tax whichever server runs next. close()
    stops what still runs, calls the cleanups registered with
    on_close(), and removes the directory unless keep."""

    def __init__(self, keep=False):
        self.keep = keep
        parent = os.environ.get("TMPDIR", "/tmp")
        self.base = Path(tempfile.mkdtemp(prefix=f"{tool_name()}-", dir=parent))
        self.base.chmod(0o755)
        # ext4 spreads the subdirectories of a "top of hierarchy" directory
        # over distant block groups: each instance gets inodes of its own, so
        # the files one run frees do not slow the next one's file creation.
        run(["chattr", "+T", str(self.base)], check=False)
        self.servers = []
        self.cleanups = []
        self.problems = {}  # server name: its log's problem lines, all runs

    def fresh(self, make, tag):
        """A new instance, make(directory), started, for one run."""
        d = self.base / tag
        d.mkdir()
        d.chmod(0o755)
        srv = make(d)
        self.servers.append(srv)
        srv.start()
        time.sleep(1)
        return srv

    def done(self, srv):
        """Stop an instance after its run; its log problems are kept."""
        srv.stop()
        self.problems.setdefault(srv.name, []).extend(srv.log_problems())
        self.servers.remove(srv)

    def on_close(self, fn):
        self.cleanups.append(fn)

    def close(self):
        for s in self.servers:
            with contextlib.suppress(Exception):
                s.stop()
        for fn in reversed(self.cleanups):
            with contextlib.suppress(Exception):
                fn()
        if self.keep:
            say(f"# kept {self.base}")
        else:
            shutil.rmtree(self.base, ignore_errors=True)

    def report_problems(self):
        say("\n== server log lines with errors/warnings, all runs (first 10 each) ==")
        for name, probs in self.problems.items():
            say(f"{name}: {len(probs)} line(s)")
            for l in probs[:10]:
                say(f"    {l}")


def exit_on_signals():
    """SIGTERM and SIGHUP end the benchmark as Ctrl-C does (cleanups run)."""
    def on_signal(signum, frame):
        raise SystemExit(f"interrupted by signal {signum}")
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)


# ---- server logs ---------------------------------------------------------------

LOG_COUNTS = (
    ("accepted by smtpd", {"Yubin": r"smtpd\[\d+\]: \w+: from=<", "Postfix": r"cleanup\[\d+\]: \w+: message-id="}),
    ("status=sent", {"*": r"status=sent"}),
    ("status=deferred", {"*": r"status=deferred"}),
    ("status=bounced", {"*": r"status=bounced"}),
    ("removed from queue", {"*": r"qmgr\[\d+\]: \w+: removed"}),
    ("warning/error/fatal/panic lines", {"*": r"(?i)\b(warning|error|fatal|panic)\b"}),
)
NO_ATTEMPT = "accepted, no attempt logged"


def log_size(server):
    try:
        return server.log.stat().st_size
    except OSError:
        return 0


def log_text(server, offset=0):
    """The server's log from offset (a log_size() taken before the run)."""
    try:
        with open(server.log, "rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def log_counts(server, offset, counts=LOG_COUNTS):
    """{label: lines matching its pattern since offset}, and NO_ATTEMPT:
    queue IDs accepted but with no delivery attempt logged (neither sent
    nor deferred nor bounced), i.e. stuck in the queue."""
    text = log_text(server, offset)
    out = {}
    for label, pats in counts:
        rx = re.compile(pats.get(server.name) or pats["*"], re.M)
        out[label] = len(rx.findall(text))
    acc_rx = (r"smtpd\[\d+\]: (\w+): from=<" if server.name == "Yubin"
              else r"cleanup\[\d+\]: (\w+): message-id=")
    accepted = set(re.findall(acc_rx, text))
    tried = set(re.findall(r"\]: (\w+): to=<[^>]*>.*status=(?:sent|deferred|bounced)", text))
    out[NO_ATTEMPT] = len(accepted - tried)
    return out


# ---- report -------------------------------------------------------------------

def ratio(y, p):
    return f"{y / p:.2f}" if p else "n/a"


def table(rows, ry, rp, anchor="Postfix"):
    """Yubin, the anchor and their ratio side by side: rows of (label,
    format(result), key of the number to divide or None)."""
    say(f"{'':34} {'Yubin':>12} {anchor:>12} {'Y/' + anchor[0]:>7}")
    for label, fmt, key in rows:
        rt = ratio(ry[key], rp[key]) if key else ""
        say(f"{label:34} {fmt(ry):>12} {fmt(rp):>12} {rt:>7}")


def median_table(reps, rows, complete="delivered everything", anchor="Postfix", per_run=("messages/s", "rate")):
    """Medians over the runs whose result has "complete" set: reps is a
    list of (Yubin result, anchor result), rows of (label, key, scale,
    format); a row whose key is None in the first result is left out.
    per_run: (label, key) of the figure listed run by run."""
    say(f"runs that {complete}: Yubin {sum(r[0]['complete'] for r in reps)}/{len(reps)}, "
        f"{anchor} {sum(r[1]['complete'] for r in reps)}/{len(reps)} (medians over those only)")
    say(f"{'':34} {'Yubin':>12} {anchor:>12} {'Y/' + anchor[0]:>7}")
    for label, key, scale, fmt in rows:
        if reps[0][0].get(key) is None:
            continue
        vy = [r[0][key] for r in reps if r[0]["complete"]]
        vp = [r[1][key] for r in reps if r[1]["complete"]]
        my = statistics.median(vy) * scale if vy else 0
        mp = statistics.median(vp) * scale if vp else 0
        say(f"{label:34} {fmt.format(my) if vy else 'none':>12} {fmt.format(mp) if vp else 'none':>12} "
            f"{ratio(my, mp) if vy and vp else 'n/a':>7}")
    label, key = per_run
    mark = lambda r: f"{r[key]:.0f}" + ("" if r["complete"] else "(incomplete)")  # noqa: E731
    say(f"  {label} per run (Yubin/{anchor}): " + ", ".join(f"{mark(ry)}/{mark(rp)}" for ry, rp in reps))
