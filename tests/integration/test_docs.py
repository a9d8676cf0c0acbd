"""The README's yubin.conf table must list exactly the keys that mailctl
knows (the one key table in libmail/params.c), each with a meaning."""
import os
import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("YUBIN_BUILD_DIR", REPO))


def mailctl_keys(tmp_path):
    (tmp_path / "yubin.conf").write_text("")
    out = subprocess.run([str(BUILD / "mailctl" / "mailctl"), "-c", str(tmp_path), "config", "show", "-d"],
                         capture_output=True, text=True, check=True).stdout
    keys = re.findall(r"^([a-z0-9_]+) = ", out, re.M)
    docs = re.findall(r"^# (.+) \(\w+, default ", out, re.M)
    assert len(keys) == len(docs), out
    return keys, docs


def readme_keys():
    text = (REPO / "README.md").read_text()
    section = text.split("## Configuration", 1)[1].split("`master.conf` is", 1)[0]
    return re.findall(r"^\| `([a-z0-9_]+)` \|", section, re.M)


def test_readme_lists_every_config_key(tmp_path):
    keys, docs = mailctl_keys(tmp_path)
    assert all(d.strip() for d in docs)
    assert readme_keys() == keys
