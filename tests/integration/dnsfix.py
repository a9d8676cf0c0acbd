"""dnsfix.py - a real DNS server on loopback for the tests: unbound
(/usr/sbin/unbound, Debian package unbound) serving zones given as Python
data, on 127.0.0.1 and a free port, never asking the Internet
(local-zone "." static: every name outside the zones is NXDOMAIN).

    srv = DnsServer(base_dir, {
        "example.test": ["@ MX 10 mx1", "mx1 A 127.0.0.1", "mx1 AAAA ::1"],
        "nullmx.test": ["@ MX 0 ."],
    }, servfail=["broken.test"])
    srv.servers        "127.0.0.1@PORT", the value for dns_resolvers
    srv.query(name, qtype)   (rcode, answer count) straight from unbound
    srv.stop()

Records are "NAME TYPE RDATA" (TTL 300, class IN added): NAME "@" is the
zone itself and a NAME without a trailing dot is relative to the zone; in
the RDATA of MX, CNAME and NS, a target without a trailing dot is
relative to the zone too ("." stays the root, as in a null MX). A zone
with no record of a type answers NODATA for it; a name in no zone is
NXDOMAIN.

Zones listed in servfail make resolvers see a server failure: unbound
answers them with REFUSED (local-zone always_refuse), and a resolver that
forwards to it (libunbound, as Yubin does) turns a REFUSED forwarder into
SERVFAIL (rcode 2) for its caller at once, with no timeouts to wait out.

The pytest fixture dns_server (import it into a test module) is a
factory: dns_server(zones, servfail=()) starts one, every one is stopped
at teardown.
"""
import os
import random
import signal
import socket
import struct
import subprocess
import time
from pathlib import Path

import pytest

UNBOUND = "/usr/sbin/unbound"
TTL = 300
TARGET_TYPES = {"MX", "CNAME", "NS", "PTR"}


def have_unbound():
    return os.access(UNBOUND, os.X_OK)


def _absolute(name, zone):
    """name made absolute (with the trailing dot) relative to zone."""
    if name == "@":
        return zone + "."
    if name.endswith("."):
        return name
    return f"{name}.{zone}."


def _record(zone, spec):
    """One local-data line for "NAME TYPE RDATA" in zone."""
    parts = spec.split(None, 2)
    if len(parts) != 3:
        raise ValueError(f"record {spec!r}: want NAME TYPE RDATA")
    name, rtype, rdata = parts
    rtype = rtype.upper()
    if rtype in TARGET_TYPES:
        words = rdata.split()
        target = words[-1]
        if target != ".":
            words[-1] = _absolute(target, zone)
        rdata = " ".join(words)
    return f"{_absolute(name, zone)} {TTL} IN {rtype} {rdata}"


def _quote(text):
    """A string for unbound.conf (local-data with TXT quotes goes in '')."""
    if '"' in text:
        if "'" in text:
            raise ValueError(f"cannot quote {text!r} for unbound.conf")
        return f"'{text}'"
    return f'"{text}"'


def _free_udp_tcp_port():
    """A port free for both UDP and TCP on 127.0.0.1 (unbound binds both)."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind(("127.0.0.1", 0))
            port = u.getsockname()[1]
            if port < 10000:
                continue
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                    t.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port found")


def _wire_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        if label:
            out += bytes([len(label)]) + label.encode()
    return out + b"\0"


QTYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "MX": 15, "TXT": 16, "AAAA": 28}


def raw_query(port, name, qtype="A", timeout=1.0):
    """Ask 127.0.0.1@port once over UDP: (rcode, answer count), or None
    when nothing (matching) came back in time."""
    qid = random.randrange(65536)
    packet = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + _wire_name(name) + \
        struct.pack("!HH", QTYPES[qtype], 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(packet, ("127.0.0.1", port))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                data, _ = s.recvfrom(4096)
            except socket.timeout:
                return None
            if len(data) >= 12:
                rid, flags, _, ancount, _, _ = struct.unpack("!HHHHHH", data[:12])
                if rid == qid and flags & 0x8000:
                    return flags & 0x000F, ancount
    return None


class DnsServer:
    def __init__(self, base_dir, zones, servfail=()):
        if not have_unbound():
            pytest.skip(f"{UNBOUND} not installed (Debian package unbound)")
        self.dir = Path(base_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.zones = {z.rstrip(".").lower(): list(recs) for z, recs in zones.items()}
        self.servfail = [z.rstrip(".").lower() for z in servfail]
        self.proc = None
        self.log_path = self.dir / "unbound.log"
        last_error = None
        for _ in range(3):  # another process may take the port in between
            self.port = _free_udp_tcp_port()
            self.servers = f"127.0.0.1@{self.port}"
            self.conf = self.dir / "unbound.conf"
            self.conf.write_text(self._config())
            try:
                self._start()
                return
            except RuntimeError as e:
                last_error = e
        raise last_error

    def _config(self):
        lines = [
            "# written by tests/integration/dnsfix.py",
            "server:",
            "    interface: 127.0.0.1",
            f"    port: {self.port}",
            "    do-ip6: no",
            "    num-threads: 1",
            "    outgoing-range: 16",
            '    username: ""',
            '    chroot: ""',
            f'    directory: "{self.dir}"',
            '    pidfile: ""',
            "    do-daemonize: no",
            "    use-syslog: no",
            '    logfile: ""',
            "    verbosity: 1",
            '    module-config: "iterator"',
            "    access-control: 127.0.0.0/8 allow",
            "    rrset-roundrobin: no",
            '    local-zone: "." static          # never recurse to the Internet',
        ]
        for zone in self.servfail:
            lines.append(f'    local-zone: "{zone}." always_refuse')
        for zone, records in self.zones.items():
            lines.append(f'    local-zone: "{zone}." static')
            for spec in records:
                lines.append(f"    local-data: {_quote(_record(zone, spec))}")
        lines += ["remote-control:", "    control-enable: no", ""]
        return "\n".join(lines)

    def _start(self):
        check = subprocess.run([UNBOUND + "-checkconf", str(self.conf)], capture_output=True, text=True)
        if check.returncode != 0:
            raise ValueError(f"unbound-checkconf: {check.stdout}{check.stderr}")
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([UNBOUND, "-d", "-c", str(self.conf)], stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.proc = None
                self.log.close()
                raise RuntimeError(f"unbound exited: {self.log_path.read_text(errors='replace')}")
            # any answer will do: "." is ours (static), so this never leaves the machine
            if raw_query(self.port, ".", "SOA", timeout=0.2) is not None:
                return
        self.stop()
        raise RuntimeError(f"unbound did not answer on port {self.port}")

    def query(self, name, qtype="A"):
        """(rcode, answer count) straight from unbound, or None."""
        return raw_query(self.port, name, qtype)

    def stop(self):
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            self.proc = None
            self.log.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


@pytest.fixture
def dns_server(tmp_path):
    """Factory: dns_server(zones, servfail=()) -> a running DnsServer."""
    started = []

    def start(zones, servfail=()):
        srv = DnsServer(tmp_path / f"dns{len(started)}", zones, servfail=servfail)
        started.append(srv)
        return srv

    yield start
    for srv in started:
        srv.stop()
