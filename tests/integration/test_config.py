"""Configuration errors, config check, config show, and mailctl usage."""
import re

import pytest

from harness import port_refuses, service_line

# Keys the suite's lifecycle depends on; config show must list them all.
CORE_KEYS = ["mail_owner", "queue_directory", "data_directory", "run_directory", "daemon_directory",
             "log_file", "debug_logging", "service_crash_window", "service_crash_limit",
             "service_throttle_time", "service_ready_timeout", "stop_timeout"]


def _yubin_conf_error(inst, line_text, message, replace=True):
    """Append line_text to yubin.conf (dropping the harness's own setting of
    that key unless replace is false); return the expected error regex."""
    key = line_text.split("=")[0].strip()
    if replace:
        inst.params.pop(key, None)
    inst.extra_conf_lines = [line_text]
    inst.write_config()
    conf = inst.config_dir / "yubin.conf"
    line = len(conf.read_text().splitlines())
    return r"%s:%d: %s" % (re.escape(str(conf)), line, message)


def _master_conf_error(inst, line_text, message, line=3):
    inst.set_services(echo=inst.services["echo"], bad=line_text)
    conf = inst.config_dir / "master.conf"
    return r"%s:%d: %s" % (re.escape(str(conf)), line, message)


YUBIN_CONF_CASES = {
    "unknown key": ("no_such_key = 1", r'unknown key "no_such_key"$'),
    "not key = value": ("just words", r'expected "key = value"$'),
    "duplicate key": ("stop_timeout = 4s", r"stop_timeout is already set at line \d+$"),
    "int out of range": ("service_crash_limit = 0", r"service_crash_limit = 0: out of range \(1 to 1000\)$"),
    "bad duration": ("service_crash_window = soon", r"service_crash_window = soon: .+"),
    "bad boolean": ("debug_logging = maybe", r"debug_logging = maybe: .+"),
    "bad choice": ("syslog_facility = kernel", r"syslog_facility = kernel: not one of the allowed values "
                                               r"\(one of: mail\|.*\)$"),
    "relative path": ("data_directory = relative/dir", r"data_directory = relative/dir: must be an absolute path$"),
}

MASTER_CONF_CASES = {
    "too few columns": ("bad inet 127.0.0.1:1 ${mail_owner} - 1",
                        r"expected at least 7 columns \(name type listen user chroot procs program\), found 6$"),
    "bad type": ("bad tcp 127.0.0.1:1 ${mail_owner} - 1 echod", r'service bad: bad type "tcp" \(inet or unix\)$'),
    "bad port": ("bad inet 127.0.0.1:99999 ${mail_owner} - 1 echod",
                 r'service bad: listen address "127.0.0.1:99999": bad port \(1 to 65535\)$'),
    "bad procs": ("bad inet 127.0.0.1:1 ${mail_owner} - 0 echod", r'service bad: process count "0": .*\(1 to 1000\)$'),
    "unknown variable": ("bad inet 127.0.0.1:1 ${no_such_key} - 1 echod", r'unknown variable "\$\{no_such_key\}"$'),
    "relative chroot": ("bad inet 127.0.0.1:1 ${mail_owner} jail 1 echod",
                        r'service bad: chroot "jail" must be an absolute path or -$'),
    "duplicate service": ("echo inet 127.0.0.1:1 ${mail_owner} - 1 echod", r"service echo is already defined at line 2$"),
    "missing program": ("bad inet 127.0.0.1:1 ${mail_owner} - 1 nosuchd",
                        r"service bad: program .*/libexec/nosuchd: No such file or directory$"),
    "missing chroot": ("bad inet 127.0.0.1:1 ${mail_owner} /nonexistent/jail 1 echod",
                       r"service bad: chroot directory /nonexistent/jail does not exist$"),
}

ROOT_MASTER_CONF_CASES = {
    "unknown user": ("bad inet 127.0.0.1:1 no-such-user-x - 1 echod", r"service bad: user no-such-user-x does not exist$"),
    "root user": ("bad inet 127.0.0.1:1 root - 1 echod", r"service bad: workers must not run as root \(user root\)$"),
}


def _assert_refused(inst, where):
    """start and config check both fail with where on stderr; nothing runs."""
    r = inst.mailctl("config", "check")
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert re.match(r"mailctl: " + where, r.stderr.strip()), r.stderr
    assert r.stdout == ""
    r = inst.mailctl("start")
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert re.match(r"mailctl: " + where, r.stderr.strip()), r.stderr
    assert r.stdout == ""
    assert inst.processes() == []
    assert not inst.pid_path.exists()
    assert not inst.ctl_path.exists()
    assert port_refuses(inst.port)


@pytest.mark.parametrize("case", list(YUBIN_CONF_CASES))
def test_bad_yubin_conf(instance, case):
    text, message = YUBIN_CONF_CASES[case]
    where = _yubin_conf_error(instance, text, message, replace=case != "duplicate key")
    _assert_refused(instance, where)


@pytest.mark.parametrize("case", list(MASTER_CONF_CASES))
def test_bad_master_conf(instance, case):
    text, message = MASTER_CONF_CASES[case]
    _assert_refused(instance, _master_conf_error(instance, text, message))


@pytest.mark.parametrize("case", list(ROOT_MASTER_CONF_CASES))
def test_bad_master_conf_accounts(root_only, instance, case):
    text, message = ROOT_MASTER_CONF_CASES[case]
    _assert_refused(instance, _master_conf_error(instance, text, message))


def test_missing_master_conf(instance):
    conf = instance.config_dir / "master.conf"
    conf.unlink()
    _assert_refused(instance, r"%s: cannot open: No such file or directory$" % re.escape(str(conf)))


def test_missing_yubin_conf(instance):
    conf = instance.config_dir / "yubin.conf"
    conf.unlink()
    r = instance.mailctl("start")
    assert r.returncode == 1
    assert re.match(r"mailctl: %s: cannot open: No such file or directory$" % re.escape(str(conf)),
                    r.stderr.strip()), r.stderr
    r = instance.mailctl("config", "check")
    assert r.returncode == 1
    assert instance.processes() == []


def test_config_check_valid(instance):
    port = instance.new_port()
    instance.set_services(echo=instance.services["echo"], other=service_line("other", f"*:{port}", procs=3))
    r = instance.mailctl("config", "check")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"configuration in {instance.config_dir} is valid: 2 services")
    assert r.stderr == ""
    assert instance.processes() == [], "config check starts nothing"
    assert port_refuses(instance.port)


def _show(inst, *args):
    r = inst.mailctl("config", "show", *args)
    assert r.returncode == 0, r.stderr
    pairs = []
    for line in r.stdout.splitlines():
        m = re.match(r"^([a-z0-9_]+) = (.*)$", line)
        assert m, f"not key = value: {line!r}"
        pairs.append((m.group(1), m.group(2)))
    return pairs


def test_config_show_all(instance):
    pairs = _show(instance)
    keys = [k for k, _ in pairs]
    assert len(keys) == len(set(keys))
    for k in CORE_KEYS:
        assert k in keys
    values = dict(pairs)
    assert values["stop_timeout"] == "3s"
    assert values["service_crash_limit"] == "3"
    assert values["queue_directory"] == str(instance.queue_dir)
    assert values["mail_owner"] == instance.user
    assert values["debug_logging"] == "no"  # a default: shown all the same
    assert "auth_owner" in values and "syslog_facility" in values
    # values are normalised: 120s is shown as 2m
    instance.params["service_throttle_time"] = "120s"
    instance.write_config()
    assert dict(_show(instance))["service_throttle_time"] == "2m"


def test_config_show_only_set(instance):
    pairs = _show(instance, "-n")
    assert {k for k, _ in pairs} == set(instance.params)
    for k, v in pairs:
        assert v == instance.params[k], k


def test_config_show_keys(instance):
    assert _show(instance, "stop_timeout") == [("stop_timeout", "3s")]
    # in the table's order, whatever the order asked
    assert _show(instance, "stop_timeout", "mail_owner") == [("mail_owner", instance.user), ("stop_timeout", "3s")]
    # -n with a key left at its default prints nothing
    assert _show(instance, "-n", "auth_owner") == []


def test_config_show_docs(instance):
    r = instance.mailctl("config", "show", "-d", "stop_timeout")
    assert r.returncode == 0
    assert re.search(r'^# .+ \(duration, default "10s"\)\nstop_timeout = 3s\n', r.stdout, re.M), r.stdout


def test_config_show_unknown_key(instance):
    r = instance.mailctl("config", "show", "no_such_key")
    assert r.returncode == 1
    assert 'mailctl: unknown key "no_such_key"' in r.stderr
    assert r.stdout == ""
    r = instance.mailctl("config", "show", "stop_timeout", "no_such_key")
    assert r.returncode == 1


def test_config_show_bad_file(instance):
    where = _yubin_conf_error(instance, "no_such_key = 1", r'unknown key "no_such_key"')
    r = instance.mailctl("config", "show")
    assert r.returncode == 1
    assert re.match("mailctl: " + where, r.stderr), r.stderr


@pytest.mark.parametrize("args", [
    ["bogus"],
    ["--bogus", "status"],
    ["-x"],
    [],
    ["config"],
    ["config", "bogus"],
    ["start", "-x"],
    ["start", "now"],
    ["stop", "now"],
    ["reload", "now"],
    ["status", "--xml"],
    ["config", "check", "now"],
    ["config", "show", "-x"],
], ids=lambda a: " ".join(a) or "(none)")
def test_usage_errors(instance, args):
    r = instance.mailctl(*args, config=False) if args[:1] == ["--bogus"] or not args else \
        instance.mailctl(*args)
    assert r.returncode == 64, (r.returncode, r.stdout, r.stderr)
    assert "usage" in r.stderr or "unknown" in r.stderr, r.stderr
    assert r.stdout == ""
    assert instance.processes() == []


def test_help(instance):
    for args in (["help"], ["-h"], ["--help"]):
        r = instance.mailctl(*args, config=False)
        assert r.returncode == 0
        assert r.stdout.startswith("usage: mailctl [-c CONFIG_DIR] COMMAND")
        for cmd in ("start", "stop", "reload", "status", "config show", "config check"):
            assert re.search(r"^  %s\s" % cmd, r.stdout, re.M), cmd


def test_status_json_reports_unreadable_config(instance):
    """status --json must say why it failed: with a broken yubin.conf it
    cannot find master, and an operator (or a tool) needs the reason."""
    where = _yubin_conf_error(instance, "no_such_key = 1", r'unknown key "no_such_key"')
    r = instance.mailctl("status")
    assert r.returncode == 1
    assert re.match("mailctl: " + where, r.stderr), r.stderr
    r = instance.mailctl("status", "--json")
    assert r.returncode == 1
    assert re.match("mailctl: " + where, r.stderr), (r.stdout, r.stderr)
