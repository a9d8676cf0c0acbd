"""mailctl domain / user / alias, end to end: the commands an operator
types, their output, exit codes and messages, and the table files they
leave behind (read back with Python's dbm.ndbm, which is Berkeley DB on
Debian, and the ipc encoding of the records). Password hashes are checked
with crypt(3) and never printed."""
import concurrent.futures
import json
import os
import pty
import pwd
import select
import stat
import subprocess
import sys
import time
import warnings

import pytest

import ipc
from harness import IS_ROOT, MAILCTL, TEST_USER

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    try:
        import crypt
    except ImportError:  # Python 3.13 and later
        crypt = None

try:
    import dbm.ndbm as ndbm
    if ndbm.library != "Berkeley DB":
        ndbm = None
except ImportError:
    ndbm = None

AUTH_USER = "yubin-test-auth"


def ensure_auth_user():
    """As root: the account auth runs as (the tables' group)."""
    try:
        return pwd.getpwnam(AUTH_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                        AUTH_USER], check=True, capture_output=True)
        return pwd.getpwnam(AUTH_USER)


@pytest.fixture
def tables(instance):
    """An instance whose auth_owner exists (root: a second account)."""
    if IS_ROOT:
        ensure_auth_user()
        instance.params["auth_owner"] = AUTH_USER
    else:
        instance.params["auth_owner"] = instance.user
    instance.params["mail_root"] = str(instance.base / "mail")
    instance.write_config()
    return instance


def run(inst, *args, password=None, as_user=None):
    """mailctl ARGS with password (a line) on stdin for --password-stdin."""
    cmd = [str(MAILCTL), "-c", str(inst.config_dir), *args]
    if as_user is not None:
        cmd = ["runuser", "-u", as_user, "--"] + cmd
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60,
                          input=None if password is None else password + "\n",
                          stdin=subprocess.DEVNULL if password is None else None)


def ok(inst, *args, password=None):
    r = run(inst, *args, password=password)
    assert r.returncode == 0, (args, r.returncode, r.stdout, r.stderr)
    return r.stdout


def fails(inst, code, message, *args, password=None):
    r = run(inst, *args, password=password)
    assert r.returncode == code, (args, r.returncode, r.stdout, r.stderr)
    assert message in r.stderr, (args, r.stderr)
    assert r.stderr.startswith("mailctl: "), r.stderr
    return r


def read_table(inst, name):
    """{key: [(field, value), ...]} of data_dir/NAME.db."""
    if ndbm is None:
        pytest.skip("needs Python's dbm.ndbm built on Berkeley DB (Debian's /usr/bin/python3)")
    path = inst.data_dir / name
    if not (inst.data_dir / (name + ".db")).exists():
        return {}
    db = ndbm.open(str(path), "r")
    try:
        return {k.decode(): ipc.decode(db[k]) for k in db.keys()}
    finally:
        db.close()


def stored_hash(inst, address):
    return dict(read_table(inst, "users")[address])["password"]


def hash_verifies(password, hashed):
    """True if password matches; never shows the hash."""
    if crypt is None:
        pytest.skip("Python's crypt module is gone")
    return crypt.crypt(password, hashed) == hashed


# -- domains -------------------------------------------------------------

def test_domains(tables):
    assert ok(tables, "domain", "list") == ""
    assert json.loads(ok(tables, "domain", "list", "--json")) == []
    ok(tables, "domain", "add", "Example.COM")
    ok(tables, "domain", "add", "example.org")
    fails(tables, 1, "mailctl: domain example.com already exists", "domain", "add", "EXAMPLE.com")
    assert ok(tables, "domain", "list") == "example.com\nexample.org\n"
    assert json.loads(ok(tables, "domain", "list", "--json")) == [
        {"domain": "example.com", "users": 0, "aliases": 0},
        {"domain": "example.org", "users": 0, "aliases": 0}]
    assert set(read_table(tables, "domains")) == {"example.com", "example.org"}
    assert dict(read_table(tables, "domains")["example.com"])["version"] == 1
    ok(tables, "domain", "del", "example.org")
    fails(tables, 1, "domain example.org does not exist", "domain", "del", "example.org")
    assert ok(tables, "domain", "list") == "example.com\n"


@pytest.mark.parametrize("bad", ["[192.0.2.1]", "exa mple.com", "x-.example", "example..com", "a/b", ""])
def test_bad_domain_names(tables, bad):
    fails(tables, 1, "domain", "domain", "add", bad)
    assert not (tables.data_dir / "domains.db").exists()


def test_domain_del_refuses_while_in_use_unless_forced(tables):
    ok(tables, "domain", "add", "example.com")
    ok(tables, "domain", "add", "example.org")
    ok(tables, "user", "add", "bob@example.com", "--password-stdin", password="pw1")
    ok(tables, "user", "add", "carol@example.org", "--password-stdin", password="pw2")
    ok(tables, "alias", "add", "info@example.com", "bob@example.com")
    ok(tables, "alias", "add", "@example.com", "bob@example.com")
    ok(tables, "alias", "add", "sales@example.org", "bob@example.com")
    fails(tables, 1, "domain example.com still has 1 user and 2 aliases", "domain", "del", "example.com")
    assert "example.com" in ok(tables, "domain", "list")
    assert json.loads(ok(tables, "domain", "list", "--json"))[0] == {
        "domain": "example.com", "users": 1, "aliases": 2}
    ok(tables, "domain", "del", "example.com", "--force")
    assert ok(tables, "domain", "list") == "example.org\n"
    assert ok(tables, "user", "list") == "carol@example.org\n"
    # the other domain's alias to a (now remote) address stays
    assert ok(tables, "alias", "list") == "sales@example.org -> bob@example.com\n"


# -- users -----------------------------------------------------------------

def test_user_add_show_list_del(tables):
    ok(tables, "domain", "add", "example.com")
    ok(tables, "domain", "add", "example.org")
    out = run(tables, "user", "add", "Bob@Example.com", "--quota", "1G", "--password-stdin",
              password="correct horse")
    assert out.returncode == 0 and out.stdout == "" and out.stderr == "", out
    ok(tables, "user", "add", "alice@example.com", "--disable", "--password-stdin", password="pw")
    ok(tables, "user", "add", "carol@example.org", "--quota=500M", "--password-stdin", password="pw")
    assert ok(tables, "user", "list") == "alice@example.com\nbob@example.com\ncarol@example.org\n"
    assert ok(tables, "user", "list", "example.org") == "carol@example.org\n"
    mail_root = tables.base / "mail"
    listed = json.loads(ok(tables, "user", "list", "example.com", "--json"))
    assert listed == [
        {"address": "alice@example.com", "mailbox": f"{mail_root}/example.com/alice/Maildir",
         "quota": 0, "enabled": False},
        {"address": "bob@example.com", "mailbox": f"{mail_root}/example.com/bob/Maildir",
         "quota": 1 << 30, "enabled": True}]
    show = ok(tables, "user", "show", "BOB@example.com")
    assert show == (f"address: bob@example.com\nmailbox: {mail_root}/example.com/bob/Maildir\n"
                    f"quota: 1G ({1 << 30} bytes)\nenabled: yes\n")
    assert json.loads(ok(tables, "user", "show", "alice@example.com", "--json")) == listed[0]
    assert "enabled: no" in ok(tables, "user", "show", "alice@example.com")
    # the record: a $y$ hash that crypt(3) verifies, the quota, the flag,
    # and the SCRAM-SHA-256 secret (checked in test_auth_sasl.py)
    users = read_table(tables, "users")
    assert set(users) == {"alice@example.com", "bob@example.com", "carol@example.org"}
    bob = dict(users["bob@example.com"])
    assert [k for k, _ in users["bob@example.com"]] == ["version", "password", "quota", "enabled", "scram"]
    assert bob["scram"].startswith("SCRAM-SHA-256$4096:")
    assert bob["version"] == 1 and bob["quota"] == 1 << 30 and bob["enabled"] == 1
    assert bob["password"].startswith("$y$")
    assert hash_verifies("correct horse", bob["password"])
    assert not hash_verifies("correct horse ", bob["password"])
    assert dict(users["alice@example.com"])["enabled"] == 0
    # salts differ
    assert dict(users["alice@example.com"])["password"] != dict(users["carol@example.org"])["password"]
    # nothing mailctl prints holds the hash
    for args in (("user", "list", "--json"), ("user", "show", "bob@example.com", "--json"),
                 ("user", "show", "bob@example.com")):
        assert "$y$" not in ok(tables, *args) and "SCRAM" not in ok(tables, *args)
    ok(tables, "user", "del", "bob@example.com")
    fails(tables, 1, "mailctl: user bob@example.com does not exist", "user", "del", "bob@example.com")
    fails(tables, 1, "mailctl: user bob@example.com does not exist", "user", "show", "bob@example.com")
    assert ok(tables, "user", "list", "example.com") == "alice@example.com\n"


def test_user_errors(tables):
    ok(tables, "domain", "add", "example.com")
    fails(tables, 1, "domain example.org is not hosted", "user", "add", "bob@example.org",
          "--password-stdin", password="pw")
    ok(tables, "user", "add", "bob@example.com", "--password-stdin", password="pw")
    fails(tables, 1, "mailctl: user bob@example.com already exists", "user", "add", "BOB@example.com",
          "--password-stdin", password="other")
    assert hash_verifies("pw", stored_hash(tables, "bob@example.com"))
    fails(tables, 1, "no terminal", "user", "add", "carol@example.com")  # stdin and no tty
    fails(tables, 1, "empty password", "user", "add", "carol@example.com", "--password-stdin", password="")
    r = run(tables, "user", "add", "carol@example.com", "--password-stdin")  # nothing on stdin
    assert r.returncode == 1 and "no password on stdin" in r.stderr
    for bad in ("bob+tag@example.com", "a/b@example.com", ".x@example.com", "bob", "@example.com"):
        fails(tables, 1, "user", "user", "add", bad, "--password-stdin", password="pw")
    fails(tables, 1, "user nobody@example.com does not exist", "user", "passwd", "nobody@example.com",
          "--password-stdin", password="pw")
    fails(tables, 1, "domain example.org is not hosted", "user", "list", "example.org")
    assert ok(tables, "user", "list") == "bob@example.com\n"


def test_user_passwd_and_set(tables):
    ok(tables, "domain", "add", "example.com")
    ok(tables, "user", "add", "bob@example.com", "--quota", "10M", "--password-stdin", password="old")
    before = stored_hash(tables, "bob@example.com")
    ok(tables, "user", "passwd", "bob@example.com", "--password-stdin", password="new")
    after = stored_hash(tables, "bob@example.com")
    assert after != before and hash_verifies("new", after) and not hash_verifies("old", after)
    assert dict(read_table(tables, "users")["bob@example.com"])["quota"] == 10 << 20  # kept
    ok(tables, "user", "set", "bob@example.com", "--quota", "0", "--disable")
    rec = dict(read_table(tables, "users")["bob@example.com"])
    assert rec["quota"] == 0 and rec["enabled"] == 0
    assert hash_verifies("new", rec["password"])  # kept
    assert "quota: unlimited" in ok(tables, "user", "show", "bob@example.com")
    ok(tables, "user", "set", "bob@example.com", "--enable", "--quota", "2G")
    rec = dict(read_table(tables, "users")["bob@example.com"])
    assert rec["quota"] == 2 << 30 and rec["enabled"] == 1


def _pty_mailctl(inst, args, answers):
    """Run mailctl with a terminal: answer each prompt in turn; return
    (exit code, everything it wrote to the terminal)."""
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(str(MAILCTL), [str(MAILCTL), "-c", str(inst.config_dir), *args])
    seen = b""
    pending = list(answers)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        r, _, _ = select.select([fd], [], [], 0.5)
        if r:
            try:
                data = os.read(fd, 1024)
            except OSError:
                break
            if not data:
                break
            seen += data
            prompts = seen.count(b"New password for ") + seen.count(b"Again: ")
            while pending and len(answers) - len(pending) < prompts:
                os.write(fd, pending.pop(0).encode() + b"\n")
    os.close(fd)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), seen.decode(errors="replace")


def test_password_prompt_on_the_terminal(tables):
    ok(tables, "domain", "add", "example.com")
    code, out = _pty_mailctl(tables, ["user", "add", "bob@example.com"], ["s3cret pass", "s3cret pass"])
    assert code == 0, out
    assert "New password for bob@example.com:" in out and "Again:" in out
    assert "s3cret" not in out  # echo was off
    assert hash_verifies("s3cret pass", stored_hash(tables, "bob@example.com"))
    code, out = _pty_mailctl(tables, ["user", "passwd", "bob@example.com"], ["one", "two"])
    assert code == 1 and "do not match" in out, out
    assert hash_verifies("s3cret pass", stored_hash(tables, "bob@example.com"))


# -- aliases ---------------------------------------------------------------

def test_aliases(tables):
    ok(tables, "domain", "add", "example.com")
    ok(tables, "domain", "add", "example.org")
    ok(tables, "alias", "add", "Info@Example.com", "bob@example.com", "Someone@Remote.NET")
    ok(tables, "alias", "add", "info@example.com", "BOB@example.com", "carol@example.org")  # adds one
    ok(tables, "alias", "add", "@example.org", "bob@example.com")
    ok(tables, "alias", "add", "list+tag@example.com", "x@remote.net")
    assert ok(tables, "alias", "list") == (
        "@example.org -> bob@example.com\n"
        "info@example.com -> bob@example.com, Someone@remote.net, carol@example.org\n"
        "list+tag@example.com -> x@remote.net\n")
    assert ok(tables, "alias", "list", "example.org") == "@example.org -> bob@example.com\n"
    assert json.loads(ok(tables, "alias", "list", "--json"))[0] == {
        "address": "@example.org", "catch_all": True, "targets": ["bob@example.com"]}
    rec = read_table(tables, "aliases")["info@example.com"]
    assert rec == [("version", 1), ("target", "bob@example.com"), ("target", "Someone@remote.net"),
                   ("target", "carol@example.org")]
    ok(tables, "alias", "del", "info@example.com", "someone@remote.net")
    assert "info@example.com -> bob@example.com, carol@example.org\n" in ok(tables, "alias", "list")
    fails(tables, 1, "alias info@example.com has no target x@y.net", "alias", "del", "info@example.com",
          "x@y.net")
    ok(tables, "alias", "del", "info@example.com", "bob@example.com")
    ok(tables, "alias", "del", "info@example.com", "carol@example.org")  # the last: alias gone
    fails(tables, 1, "alias info@example.com does not exist", "alias", "del", "info@example.com")
    ok(tables, "alias", "del", "@example.org")
    assert ok(tables, "alias", "list") == "list+tag@example.com -> x@remote.net\n"


def test_alias_warnings(tables):
    ok(tables, "domain", "add", "example.com")
    ok(tables, "alias", "add", "a@example.com", "b@example.com")
    r = run(tables, "alias", "add", "b@example.com", "a@example.com")
    assert r.returncode == 0
    assert "warning: alias loop: b@example.com -> a@example.com -> b@example.com" in r.stderr
    r = run(tables, "alias", "add", "c@example.com", "nobody@example.com", "x@remote.net")
    assert r.returncode == 0
    assert "warning: alias c@example.com leads to nobody@example.com, which is nobody" in r.stderr
    assert "b@example.com -> a@example.com" in ok(tables, "alias", "list")


def test_alias_errors(tables):
    ok(tables, "domain", "add", "example.com")
    fails(tables, 1, "domain remote.net is not hosted", "alias", "add", "x@remote.net", "bob@example.com")
    fails(tables, 1, "target", "alias", "add", "x@example.com", "@example.com")
    fails(tables, 1, "target", "alias", "add", "x@example.com", "not-an-address")
    fails(tables, 1, "alias", "alias", "add", "a b@example.com", "bob@example.com")
    fails(tables, 1, "domain example.org is not hosted", "alias", "list", "example.org")
    assert not (tables.data_dir / "aliases.db").exists()


@pytest.mark.parametrize("args", [
    ("domain", "add"), ("domain", "add", "a.example", "b.example"), ("domain", "list", "x"),
    ("domain", "del", "example.com", "--forse"), ("user", "add"), ("user", "show"),
    ("user", "set", "bob@example.com"), ("user", "add", "bob@example.com", "--quota"),
    ("user", "add", "bob@example.com", "--quota", "lots"),
    ("user", "set", "bob@example.com", "--enable", "--disable"),
    ("user", "list", "--json", "a", "b"), ("alias", "add", "info@example.com"),
    ("alias", "del"), ("alias", "list", "--nope"),
])
def test_usage_errors(tables, args):
    r = run(tables, *args)
    assert r.returncode == 64, (args, r.returncode, r.stderr)
    assert "usage: mailctl" in r.stderr or "mailctl:" in r.stderr


# -- files, permissions, concurrency ---------------------------------------

def test_concurrent_runs_are_serialised(tables):
    ok(tables, "domain", "add", "example.com")
    names = [f"user{i}@example.com" for i in range(12)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=12) as pool:
        results = list(pool.map(lambda a: run(tables, "user", "add", a, "--password-stdin", password="pw"),
                                names))
        results += list(pool.map(lambda i: run(tables, "alias", "add", "all@example.com", names[i]),
                                 range(12)))
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results if r.returncode]
    assert ok(tables, "user", "list").split() == sorted(names)
    targets = dict(read_table(tables, "aliases"))["all@example.com"]
    assert sorted(v for k, v in targets if k == "target") == sorted(names)
    leftovers = [p.name for p in tables.data_dir.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def test_table_files_are_root_and_auth_only(root_only, tables):
    ok(tables, "domain", "add", "example.com")
    ok(tables, "user", "add", "bob@example.com", "--password-stdin", password="pw")
    ok(tables, "alias", "add", "info@example.com", "bob@example.com")
    auth_gid = pwd.getpwnam(AUTH_USER).pw_gid
    d = os.stat(tables.data_dir)
    assert (d.st_uid, d.st_gid, stat.S_IMODE(d.st_mode)) == (0, 0, 0o755)
    for name in ("domains.db", "users.db", "aliases.db"):
        st = os.stat(tables.data_dir / name)
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, auth_gid, 0o640), name
    # the mail system's account cannot read the password hashes
    r = subprocess.run(["runuser", "-u", TEST_USER, "--", "cat", str(tables.data_dir / "users.db")],
                       capture_output=True)
    assert r.returncode != 0 and b"Permission denied" in r.stderr


def test_not_root_where_root_is_needed(root_only, tables):
    ok(tables, "domain", "add", "example.com")
    ok(tables, "user", "add", "bob@example.com", "--password-stdin", password="pw")
    for args in (("domain", "add", "example.org"), ("domain", "del", "example.com"),
                 ("alias", "add", "info@example.com", "bob@example.com"),
                 ("user", "del", "bob@example.com"), ("user", "show", "bob@example.com"),
                 ("user", "list")):
        r = run(tables, *args, as_user="nobody")
        assert r.returncode == 77, (args, r.returncode, r.stderr)
        assert "permission denied" in r.stderr and "run mailctl as root" in r.stderr, r.stderr
    r = run(tables, "user", "passwd", "bob@example.com", "--password-stdin", password="x", as_user="nobody")
    assert r.returncode == 77, r.stderr
    assert hash_verifies("pw", stored_hash(tables, "bob@example.com"))
    assert ok(tables, "domain", "list") == "example.com\n"


def test_data_directory_is_created(tables):
    tables.data_dir.rmdir()
    ok(tables, "domain", "add", "example.com")
    assert stat.S_IMODE(os.stat(tables.data_dir).st_mode) == 0o755
    assert ok(tables, "domain", "list") == "example.com\n"


def test_corrupt_table_is_reported(tables):
    (tables.data_dir / "users.db").write_bytes(b"not a berkeley db file\n")
    ok(tables, "domain", "add", "example.com")  # another table: fine
    r = run(tables, "user", "list")
    assert r.returncode == 1 and "users.db" in r.stderr, r.stderr
    r = run(tables, "user", "add", "bob@example.com", "--password-stdin", password="pw")
    assert r.returncode == 1 and "users.db" in r.stderr, r.stderr
    assert (tables.data_dir / "users.db").read_bytes() == b"not a berkeley db file\n"
