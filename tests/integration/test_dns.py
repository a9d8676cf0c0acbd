"""MX routing (libmail/dns.c) against a real DNS server: unbound on
loopback (dnsfix.py) serving the zones below, asked through the
tests/helpers/dnsroute command, which prints each result as

    STATUS DSN
    PREF NAME ADDR...      (or "temp NAME")
    reason: ...
"""
import os
import subprocess

import pytest

import harness
from dnsfix import DnsServer, dns_server, have_unbound  # noqa: F401 (dns_server: a fixture)

DNSROUTE = harness.BUILD_DIR / "tests" / "helpers" / "dnsroute"

ZONES = {
    # preferences out of order in the zone
    "multi.test": ["@ MX 30 mx3", "@ MX 10 mx1", "@ MX 20 mx2",
                   "mx1 A 127.0.0.11", "mx2 A 127.0.0.12", "mx3 A 127.0.0.13"],
    "equal.test": ["@ MX 10 a", "@ MX 10 b", "@ MX 20 c",
                   "a A 127.0.0.21", "b A 127.0.0.22", "c A 127.0.0.23"],
    # no MX: the domain's own addresses (implicit MX)
    "aonly.test": ["@ A 127.0.0.31"],
    "implicit6.test": ["@ AAAA 2001:db8::5", "@ A 192.0.2.5"],
    "dual.test": ["@ MX 10 mx", "mx AAAA ::1", "mx A 127.0.0.41"],
    "nullmx.test": ["@ MX 0 ."],
    "mixednull.test": ["@ MX 0 .", "@ MX 10 mx", "mx A 127.0.0.51"],
    # MX hosts without addresses: no data, no such name
    "noaddr.test": ["@ MX 10 mx", 'mx TXT "no address here"'],
    "gone.test": ["@ MX 10 mx.nowhere.test."],
    # the domain exists, but has neither MX nor addresses
    "exists.test": ['@ TXT "v=spf1 -all"'],
    # exchanges in a zone that fails
    "tempaddr.test": ["@ MX 10 mx.broken.test."],
    "half.test": ["@ MX 10 mx.broken.test.", "@ MX 20 mx2.multi.test."],
    # loops
    "self.test": ["@ MX 10 me.self.test.", "@ MX 20 backup.multi.test.", "me A 127.0.0.71"],
    "backup.test": ["@ MX 10 primary", "@ MX 20 me.self.test.", "@ MX 20 tied", "@ MX 30 other",
                    "primary A 127.0.0.81", "tied A 127.0.0.82", "other A 127.0.0.83"],
    # an exchange that is an alias
    "cname.test": ["@ MX 10 alias", "alias CNAME real", "real A 127.0.0.61", "real AAAA ::61"],
    # an exchange that is an IP address, which MX records must not hold
    "ipmx.test": ["@ MX 10 192.0.2.1."],
    # caps: 12 hosts of 3 addresses each; 12 hosts of one
    "many.test": [f"@ MX {10 + i} h{i:02}" for i in range(12)] +
                 [f"h{i:02} A 127.0.1.{i * 3 + k + 1}" for i in range(12) for k in range(3)],
    "wide.test": [f"@ MX {10 + i} h{i:02}" for i in range(12)] +
                 [f"h{i:02} A 127.0.2.{i + 1}" for i in range(12)],
}


@pytest.fixture(scope="module")
def dns(tmp_path_factory):
    if not have_unbound():
        pytest.skip("unbound not installed (Debian package unbound)")
    if not os.access(DNSROUTE, os.X_OK):
        pytest.skip(f"{DNSROUTE} not built (make check, or make tests/helpers/dnsroute)")
    srv = DnsServer(tmp_path_factory.mktemp("dns"), ZONES, servfail=["broken.test"])
    yield srv
    srv.stop()


def parse(text):
    """dnsroute's output as a list of dicts: status, dsn, hosts, reason."""
    results = []
    for block in text.strip("\n").split("\n\n"):
        lines = block.split("\n")
        status, dsn = lines[0].split()
        assert lines[-1].startswith("reason: "), block
        hosts = []
        for line in lines[1:-1]:
            words = line.split()
            if words[0] == "temp":
                hosts.append(("temp", words[1], []))
            else:
                hosts.append((int(words[0]), words[1], words[2:]))
        results.append({"status": status, "dsn": dsn, "hosts": hosts, "reason": lines[-1][8:]})
    return results


def route(dns, *names, host=False, me=None, count=None, servers=None, check=True):
    args = [str(DNSROUTE), "-s", dns.servers if servers is None else servers, "-t", "10"]
    if me is not None:
        args += ["-m", me]
    if host:
        args.append("-H")
    if count is not None:
        args += ["-n", str(count)]
    r = subprocess.run(args + ["--"] + list(names), capture_output=True, text=True, timeout=60)
    if check:
        assert r.returncode == 0, r.stderr
    results = parse(r.stdout)
    if len(results) == 1 and count is None:
        return results[0], r.stderr
    return results, r.stderr


def test_mx_by_preference(dns):
    res, _ = route(dns, "multi.test")
    assert (res["status"], res["dsn"], res["reason"]) == ("ok", "2.0.0", "ok")
    assert res["hosts"] == [(10, "mx1.multi.test", ["127.0.0.11"]),
                            (20, "mx2.multi.test", ["127.0.0.12"]),
                            (30, "mx3.multi.test", ["127.0.0.13"])]


def test_names_are_case_insensitive_and_may_end_in_a_dot(dns):
    plain, _ = route(dns, "multi.test")
    for name in ("MULTI.Test", "multi.test.", "Multi.TEST."):
        res, _ = route(dns, name)
        assert res == plain, name


def test_equal_preferences_in_random_order(dns):
    results, _ = route(dns, "equal.test", count=40)
    assert len(results) == 40
    firsts = set()
    for res in results:
        assert res["status"] == "ok"
        names = [h[1] for h in res["hosts"]]
        assert sorted(names[:2]) == ["a.equal.test", "b.equal.test"]
        assert names[2] == "c.equal.test"  # a worse preference stays behind
        firsts.add(names[0])
    assert firsts == {"a.equal.test", "b.equal.test"}


def test_implicit_mx(dns):
    res, _ = route(dns, "aonly.test")
    assert res["status"] == "ok"
    assert res["hosts"] == [(0, "aonly.test", ["127.0.0.31"])]
    res, _ = route(dns, "implicit6.test")
    assert res["hosts"] == [(0, "implicit6.test", ["2001:db8::5", "192.0.2.5"])]


def test_ipv6_first_then_ipv4(dns):
    res, _ = route(dns, "dual.test")
    assert res["hosts"] == [(10, "mx.dual.test", ["::1", "127.0.0.41"])]


def test_null_mx(dns):
    res, _ = route(dns, "nullmx.test")
    assert (res["status"], res["dsn"]) == ("nullmx", "5.1.10")
    assert res["hosts"] == []
    assert res["reason"] == "Domain nullmx.test does not accept mail (nullMX)"


def test_null_mx_among_real_ones_is_dropped(dns):
    res, err = route(dns, "mixednull.test")
    assert res["status"] == "ok"
    assert res["hosts"] == [(10, "mx.mixednull.test", ["127.0.0.51"])]
    assert "mixednull.test has a null MX" in err


def test_nxdomain(dns):
    res, _ = route(dns, "nosuch.test")
    assert (res["status"], res["dsn"]) == ("nxdomain", "5.1.2")
    assert res["reason"] == ("Host or domain name not found. Name service error for name=nosuch.test "
                             "type=MX: Host not found")


def test_servfail_is_temporary(dns):
    res, _ = route(dns, "broken.test")
    assert (res["status"], res["dsn"]) == ("temp", "4.4.3")
    assert res["reason"] == ("Host or domain name not found. Name service error for name=broken.test "
                             "type=MX: Host not found, try again (SERVFAIL)")
    # never the domain's own address after an error
    assert res["hosts"] == []


def test_mx_host_without_address(dns):
    # the domain's MX hosts have no address: its owner's mistake, retried
    res, _ = route(dns, "noaddr.test")
    assert (res["status"], res["dsn"]) == ("nohosts", "4.4.4")
    assert res["hosts"] == [(10, "mx.noaddr.test", [])]
    assert res["reason"] == ("Host or domain name not found. Name service error for name=mx.noaddr.test "
                             "type=A: Host found but no data record of requested type")
    res, _ = route(dns, "gone.test")
    assert (res["status"], res["dsn"]) == ("nohosts", "4.4.4")
    assert "name=mx.nowhere.test type=A: Host not found" in res["reason"]


def test_domain_without_mx_or_address(dns):
    res, _ = route(dns, "exists.test")
    assert (res["status"], res["dsn"]) == ("nohosts", "5.1.2")
    assert "name=exists.test type=A: Host found but no data record" in res["reason"]


def test_mx_host_lookup_failing(dns):
    res, _ = route(dns, "tempaddr.test")
    assert (res["status"], res["dsn"]) == ("temp", "4.4.3")
    assert res["hosts"] == [("temp", "mx.broken.test", [])]
    assert "name=mx.broken.test" in res["reason"] and "try again (SERVFAIL)" in res["reason"]
    # another host still works: it is used, the failed one is marked
    res, _ = route(dns, "half.test")
    assert res["status"] == "ok"
    assert res["hosts"] == [("temp", "mx.broken.test", []), (20, "mx2.multi.test", ["127.0.0.12"])]


def test_loop_when_we_are_the_best_mx(dns):
    res, _ = route(dns, "self.test", me="me.self.test")
    assert (res["status"], res["dsn"]) == ("loop", "5.4.6")
    assert res["reason"] == "mail for self.test loops back to myself"
    # someone else's: both hosts
    res, _ = route(dns, "self.test", me="elsewhere.test")
    assert [h[1] for h in res["hosts"]] == ["me.self.test", "backup.multi.test"]


def test_backup_mx_keeps_only_better_ones(dns):
    for me in ("me.self.test", "ME.Self.Test."):
        res, _ = route(dns, "backup.test", me=me)
        assert res["status"] == "ok"
        # preference 20 (ours, and the tie) and 30 are gone
        assert res["hosts"] == [(10, "primary.backup.test", ["127.0.0.81"])]


def test_implicit_mx_to_ourselves_is_a_loop(dns):
    res, _ = route(dns, "aonly.test", me="aonly.test")
    assert (res["status"], res["dsn"]) == ("loop", "5.4.6")


def test_cname_exchange_tolerated(dns):
    res, _ = route(dns, "cname.test")
    assert res["status"] == "ok"
    assert res["hosts"] == [(10, "alias.cname.test", ["::61", "127.0.0.61"])]


def test_ip_address_as_exchange_is_ignored(dns):
    res, err = route(dns, "ipmx.test")
    assert (res["status"], res["dsn"]) == ("nohosts", "5.4.4")
    assert "no usable MX host name" in res["reason"]
    assert "numeric top-level label" in err


def test_caps(dns):
    res, _ = route(dns, "many.test")
    assert res["status"] == "ok"
    counts = [len(h[2]) for h in res["hosts"]]
    assert sum(counts) == 20
    assert counts == [3, 3, 3, 3, 3, 3, 2]
    assert [h[0] for h in res["hosts"]] == list(range(10, 17))
    res, _ = route(dns, "wide.test")
    assert len(res["hosts"]) == 10
    assert [h[1] for h in res["hosts"]] == [f"h{i:02}.wide.test" for i in range(10)]


def test_relayhost_lookup(dns):
    res, _ = route(dns, "mx1.multi.test", host=True)
    assert (res["status"], res["dsn"]) == ("ok", "2.0.0")
    assert res["hosts"] == [(0, "mx1.multi.test", ["127.0.0.11"])]
    # no MX lookup for a relay host: a domain with only MX has no address
    # (a relay host that cannot be found is our configuration: mail waits)
    res, _ = route(dns, "multi.test", host=True)
    assert (res["status"], res["dsn"]) == ("nohosts", "4.4.4")
    assert "name=multi.test type=A: Host found but no data record" in res["reason"]
    res, _ = route(dns, "nosuch.test", host=True)
    assert (res["status"], res["dsn"]) == ("nxdomain", "4.4.4")
    res, _ = route(dns, "relay.broken.test", host=True)
    assert (res["status"], res["dsn"]) == ("temp", "4.4.3")
    assert res["hosts"] == [("temp", "relay.broken.test", [])]


def test_ip_literals_need_no_dns(dns):
    # the resolver points at a port where nothing answers: no query is made
    dead = "127.0.0.1@9"
    for name, want in (("192.0.2.1", "192.0.2.1"), ("[192.0.2.1]", "192.0.2.1"),
                       ("2001:db8::1", "2001:db8::1"), ("[IPv6:2001:DB8::1]", "2001:db8::1")):
        res, _ = route(dns, name, host=True, servers=dead)
        assert res["status"] == "ok", name
        assert res["hosts"] == [(0, want, [want])]
    res, _ = route(dns, "[192.0.2.9]", servers=dead)
    assert res["hosts"] == [(0, "192.0.2.9", ["192.0.2.9"])]


@pytest.mark.parametrize("name, why", [
    ("bad..name.test", "empty label"),
    ("-dash.test", "label starts with a hyphen"),
    ("sp ace.test", "bad character in name"),
    ("x" * 64 + ".test", "label too long"),
    (".".join(["abcdefghi"] * 26), "name too long"),
    ("192.0.2.1", "numeric top-level label"),
    ("[192.0.2.300]", "bad address literal"),
])
def test_invalid_names(dns, name, why):
    res, _ = route(dns, name, servers="127.0.0.1@9")
    assert (res["status"], res["dsn"]) == ("nxdomain", "5.1.2")
    assert res["reason"].endswith(f"type=MX: malformed name ({why})"), res["reason"]


def test_bad_resolver_setting(dns):
    r = subprocess.run([str(DNSROUTE), "-s", "dns.example.test", "multi.test"], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 2
    assert 'dns_resolvers: "dns.example.test" is not ADDR[@PORT]' in r.stderr


def test_fixture_serves_what_it_was_given(dns_server):
    srv = dns_server({"one.test": ["@ MX 10 mx", "mx A 127.0.0.1"]}, servfail=["down.test"])
    assert srv.query("one.test", "MX") == (0, 1)
    assert srv.query("mx.one.test", "AAAA") == (0, 0)        # NODATA
    assert srv.query("two.test", "A") == (3, 0)              # NXDOMAIN, nothing recursed
    assert srv.query("example.com", "A") == (3, 0)
    assert srv.query("x.down.test", "A") == (5, 0)           # REFUSED
    srv.stop()
    assert srv.query("one.test", "MX") is None

