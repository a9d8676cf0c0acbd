"""test_durability.py - what a sender was told is what the mailboxes get,
whatever dies and whatever fills up.

- kill -9 under load: several client threads send messages (each with a
  unique marker in its Message-ID, X-Marker header and last body line) to
  one or two users while a killer thread SIGKILLs a random worker of
  smtpd, qmgr or local every 0.2-1 s; master restarts them (the fixture
  raises service_crash_limit so it never throttles). Once the queue has
  drained: every message that got 250 is in each recipient's Maildir
  exactly once and complete; a message whose 250 never arrived (the
  connection died after the final dot, or 451 after the dot) may be there
  at most once per recipient and complete, and for all its recipients or
  none (an envelope is committed whole); a message refused or cut off
  before its final dot is nowhere.
- a full queue file system (root only: a small tmpfs mounted over the
  instance's queue directory): queue_minfree above the free space gives
  452 4.3.1 at DATA; with queue_minfree = 0 a message that does not fit
  gives 452 4.3.1 after the final dot (ENOSPC while writing the content
  file). Nothing partial is delivered, what was acknowledged before is
  delivered, and once the file system grows (remount) mail flows again.

YUBIN_DURABILITY_MESSAGES sets the message count of the load (default
2000), YUBIN_DURABILITY_SEED replays the recipients and kill times.
"""
import os
import random
import re
import signal
import subprocess
import threading
import time

import pytest

import harness
from harness import proc_cmdline, wait_until
from mailfix import Smtp, make_mail, maildir, split_delivered, start_mail  # noqa: F401

MESSAGES = int(os.environ.get("YUBIN_DURABILITY_MESSAGES") or 2000)
CLIENTS = 8
SEED = int(os.environ.get("YUBIN_DURABILITY_SEED") or time.time_ns() % 1_000_000)
USERS = ("alice", "bob", "carol", "dave")
KILLABLE = ("smtpd", "qmgr", "local")

# Kills must never throttle a service, and a deferred delivery (local
# killed mid-delivery, qmgr gone) must be retried within seconds.
CHAOS_PARAMS = {
    "service_crash_limit": 1000,
    "service_crash_window": "1s",
    "service_throttle_time": "1s",
    "minimal_backoff_time": "1s",
    "maximal_backoff_time": "2s",
}

# Outcomes of one message, as the client saw them.
ACKED = "acked"          # 250 after the final dot: must be delivered exactly once
UNSURE = "unsure"        # final dot (partly) sent, no 250: at most once, complete
REFUSED = "refused"      # never got to the final dot: must not be delivered


def marker_of(n):
    return f"dur-{SEED}-{n:05d}"


def wire_message(marker, lines):
    """(the DATA payload as sent, without the final dot; the content as
    it must come out of the Maildir after the added headers)."""
    head = ["From: Load <load@example.test>", "To: someone@example.test",
            f"Subject: durability {marker}", f"Message-ID: <{marker}@dur.example.test>",
            f"X-Marker: {marker}", ""]
    body = [f"{marker} line {i:04d} " + "x" * (i * 7 % 60) for i in range(lines)]
    body.append(f"END-OF-{marker}")
    text = head + body
    return ("".join(t + "\r\n" for t in text)).encode(), ("".join(t + "\n" for t in text)).encode()


class Record:
    def __init__(self, n, rcpts, wire):
        self.n = n
        self.marker = marker_of(n)
        self.rcpts = rcpts
        self.wire = wire      # (as sent, as it must be stored)
        self.outcome = None
        self.qid = None
        self.detail = ""


def client_thread(inst, records, errors):
    """Send records over as few connections as the kills allow."""
    s = None
    try:
        for rec in records:
            phase = "connect"
            try:
                if s is None:
                    s = Smtp(inst.smtp_port, timeout=20.0)
                    if s.greeting.code != 220:
                        raise EOFError(f"greeting {s.greeting!r}")
                    phase = "ehlo"
                    s.ehlo("load.example.net")
                phase = "mail"
                r = s.cmd("MAIL FROM:<load@example.test>")
                if r.code != 250:
                    raise RuntimeError(f"MAIL: {r!r}")
                for u in rec.rcpts:
                    phase = "rcpt"
                    r = s.cmd(f"RCPT TO:<{u}@example.test>")
                    if r.code != 250:
                        raise RuntimeError(f"RCPT {u}: {r!r}")
                phase = "data"
                r = s.cmd("DATA")
                if r.code != 354:
                    raise RuntimeError(f"DATA: {r!r}")
                wire, _ = rec.wire
                phase = "content"
                s.send(wire)
                phase = "dot"   # from here on the server may have the whole message
                s.send(b".\r\n")
                r = s.reply()
                m = re.fullmatch(r"2\.0\.0 Ok: queued as (\S+)", r.text)
                if r.code == 250 and m:
                    rec.outcome, rec.qid = ACKED, m.group(1)
                    rec.detail = r.raw.decode(errors="replace").strip()
                else:
                    rec.outcome = UNSURE
                    rec.detail = f"after dot: {r!r}"
                    raise RuntimeError(rec.detail)
            except (OSError, EOFError, RuntimeError, AssertionError) as e:
                if rec.outcome is None:
                    rec.outcome = UNSURE if phase == "dot" else REFUSED
                    rec.detail = f"{phase}: {type(e).__name__}: {e}"
                if s is not None:
                    s.close()
                s = None
                time.sleep(0.05)
    except Exception as e:  # noqa: BLE001 - report any bug of the test itself
        errors.append(repr(e))
    finally:
        if s is not None:
            try:
                s.cmd("QUIT")
            except (OSError, EOFError, AssertionError):
                pass
            s.close()


def killer_thread(inst, rng, stop, kills):
    while not stop.wait(rng.uniform(0.2, 1.0)):
        service = rng.choice(KILLABLE)
        try:
            pids = inst.worker_pids(service)
        except (AssertionError, ValueError, subprocess.TimeoutExpired):
            continue
        if not pids:
            continue
        pid = rng.choice(pids)
        if str(inst.config_dir) not in proc_cmdline(pid):
            continue  # not ours any more
        try:
            os.kill(pid, signal.SIGKILL)
            kills.append((time.monotonic(), service, pid))
        except ProcessLookupError:
            pass


def delivered_files(inst, user):
    """{path: bytes} of every visible message of user (new/ and cur/)."""
    out = {}
    for sub in ("new", "cur"):
        d = maildir(inst, user) / sub
        if d.is_dir():
            for p in d.iterdir():
                out[p] = p.read_bytes()
    return out


MARKER_RE = re.compile(rb"dur-\d+-\d{5}")


def index_deliveries(inst):
    """{(marker, user): [(path, data)]} for every delivered file, plus the
    files that carry no marker at all."""
    found, strays = {}, []
    for u in USERS:
        for path, data in delivered_files(inst, u).items():
            m = MARKER_RE.search(data)
            if not m:
                strays.append((path, data[:300]))
                continue
            found.setdefault((m.group(0).decode(), u), []).append((path, data))
    return found, strays


def log_ids(inst, pattern):
    rx = re.compile(pattern, re.M)
    return set(rx.findall(inst.log()))


def wait_drained(inst, acked_ids, timeout):
    """Every acknowledged ID removed by qmgr, and then nothing left that
    qmgr still retries: each ID it deferred is removed, and the Maildirs
    stay the same for 3 s."""
    def acked_removed():
        removed = log_ids(inst, r"qmgr\[\d+\]: (\S+): removed$")
        missing = acked_ids - removed
        return not missing or (False, sorted(missing)[:20], len(missing))
    wait_until(lambda: acked_removed() is True, timeout, interval=0.5,
               what="every acknowledged message to be removed from the queue")

    state = {"last": None, "since": time.monotonic()}

    def settled():
        removed = log_ids(inst, r"qmgr\[\d+\]: (\S+): removed$")
        deferred = log_ids(inst, r"qmgr\[\d+\]: (\S+): to=<[^>]*>, status=deferred")
        pending = deferred - removed
        snap = (sum(len(delivered_files(inst, u)) for u in USERS), len(removed))
        if snap != state["last"]:
            state["last"], state["since"] = snap, time.monotonic()
        return not pending and time.monotonic() - state["since"] >= 3.0
    wait_until(settled, timeout, interval=0.5, what="the queue to settle (deferred messages retried)")


def test_kill9_under_load_delivers_every_acknowledged_message_once(make_mail):
    rng = random.Random(SEED)
    t0 = time.monotonic()
    inst = make_mail(**CHAOS_PARAMS)

    records = []
    for n in range(MESSAGES):
        rcpts = sorted(rng.sample(USERS, rng.choice((1, 1, 2))))
        records.append(Record(n, rcpts, wire_message(marker_of(n), rng.randint(3, 40))))
    per_client = [records[i::CLIENTS] for i in range(CLIENTS)]

    errors, kills = [], []
    stop = threading.Event()
    killer = threading.Thread(target=killer_thread, args=(inst, random.Random(SEED + 1), stop, kills),
                              daemon=True)
    clients = [threading.Thread(target=client_thread, args=(inst, part, errors), daemon=True)
               for part in per_client]
    killer.start()
    for c in clients:
        c.start()
    for c in clients:
        c.join(timeout=600)
    stop.set()
    killer.join(timeout=30)
    load_time = time.monotonic() - t0
    assert not any(c.is_alive() for c in clients), "a client thread hung"
    assert not errors, f"client threads failed: {errors}"

    counts = {k: sum(1 for r in records if r.outcome == k) for k in (ACKED, UNSURE, REFUSED)}
    acked = [r for r in records if r.outcome == ACKED]
    summary = (f"seed {SEED}: {MESSAGES} messages, {len(kills)} kills "
               f"({', '.join(f'{s} {sum(1 for k in kills if k[1] == s)}' for s in KILLABLE)}), "
               f"outcomes {counts}, load {load_time:.1f}s")
    print("\n" + summary)
    # one kill per 0.2-1 s: fewer than one per 3 s means the killer was stuck
    assert len(kills) >= max(1, int(load_time / 3)), f"the killer hardly killed anything: {summary}"
    assert len(acked) >= MESSAGES // 2, f"most messages were refused; the test proves little: {summary}"

    # Everything back up, then the queue drained.
    for p in ("smtpd", "qmgr", "local"):
        inst.wait_service(p, timeout=30)
    wait_drained(inst, {r.qid for r in acked}, timeout=max(120, MESSAGES / 10))
    print(f"drained after {time.monotonic() - t0:.1f}s")

    found, strays = index_deliveries(inst)
    by_marker = {r.marker: r for r in records}
    problems = []
    assert not strays, f"delivered files without a marker: {strays[:5]}"
    for (marker, user), files in found.items():
        rec = by_marker.get(marker)
        if rec is None or user not in rec.rcpts:
            problems.append(f"{marker} delivered to {user}, who is not a recipient: {[str(p) for p, _ in files]}")
    for rec in records:
        _, stored = rec.wire
        got_users = set()
        for user in rec.rcpts:
            files = found.get((rec.marker, user), [])
            for path, data in files:
                try:
                    _, rest = split_delivered(data)
                except AssertionError as e:
                    problems.append(f"{rec.marker} ({rec.outcome}, qid {rec.qid}) to {user}: bad headers "
                                    f"in {path}: {e}")
                    continue
                if rest != stored:
                    problems.append(f"{rec.marker} ({rec.outcome}, qid {rec.qid}) to {user}: INCOMPLETE "
                                    f"{path}: {len(rest)} bytes, want {len(stored)}; ends "
                                    f"{rest[-80:]!r}")
            if len(files) > 1:
                problems.append(f"{rec.marker} ({rec.outcome}, qid {rec.qid}) to {user}: DUPLICATED "
                                f"{len(files)} times: {[p.name for p, _ in files]}")
            if files:
                got_users.add(user)
        if rec.outcome == ACKED and got_users != set(rec.rcpts):
            problems.append(f"{rec.marker} LOST: acknowledged ({rec.detail}) for {rec.rcpts}, "
                            f"delivered to {sorted(got_users)}")
        elif rec.outcome == UNSURE and got_users and got_users != set(rec.rcpts):
            problems.append(f"{rec.marker} unacknowledged ({rec.detail}) delivered to only "
                            f"{sorted(got_users)} of {rec.rcpts}")
        elif rec.outcome == REFUSED and got_users:
            problems.append(f"{rec.marker} DELIVERED although cut off before the final dot "
                            f"({rec.detail}) to {sorted(got_users)}")
    if problems:
        ids = {r.qid for r in records if r.qid}
        related = [line for line in inst.log().splitlines()
                   if any(p.split()[0] in line for p in problems[:10])
                   or any(i in line for i in ids if any(i in p for p in problems[:10]))]
        pytest.fail(f"{summary}\n{len(problems)} problem(s):\n" + "\n".join(problems[:50])
                    + "\n--- related log lines:\n" + "\n".join(related[:200]))
    unsure_delivered = sum(1 for r in records if r.outcome == UNSURE and
                           any((r.marker, u) in found for u in r.rcpts))
    print(f"{summary}; {counts[UNSURE]} unacknowledged after the dot, of which {unsure_delivered} delivered "
          f"(once); total {time.monotonic() - t0:.1f}s")


# ---- the queue on a tiny file system ------------------------------------

def mount_tmpfs(path, size):
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    os.chown(path, 0, 0)
    os.chmod(path, 0o755)


def umount(path):
    if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


@pytest.fixture
def tiny_queue(make_mail):
    """make(size, **params): an instance whose queue directory is a tmpfs
    of that size, mounted before start; unmounted at the end (after the
    instance is stopped)."""
    if not harness.IS_ROOT:
        pytest.skip("needs root to mount a tmpfs over the queue directory")
    mounted = []

    def make(size, **params):
        inst = make_mail(start=False, **params)
        mount_tmpfs(inst.queue_dir, size)
        mounted.append(inst)
        start_mail(inst)
        return inst
    try:
        yield make
    finally:
        for inst in mounted:
            inst.cleanup()
            umount(inst.queue_dir)


def transaction(inst, rcpt, payload):
    """One transaction; returns (reply to DATA, reply after the dot or
    None). Never raises on an SMTP error."""
    with Smtp(inst.smtp_port, timeout=30.0) as s:
        s.ehlo()
        assert s.cmd("MAIL FROM:<alice@example.test>").code == 250
        assert s.cmd(f"RCPT TO:<{rcpt}>").code == 250
        r = s.cmd("DATA")
        if r.code != 354:
            s.cmd("QUIT")
            return r, None
        s.send(payload)
        s.send(b".\r\n")
        end = s.reply()
        s.cmd("QUIT")
        return r, end


def queued(reply):
    m = re.fullmatch(r"2\.0\.0 Ok: queued as (\S+)", reply.text) if reply else None
    return m.group(1) if reply is not None and reply.code == 250 and m else None


def free_bytes(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def user_markers(inst, user):
    found, _ = index_deliveries(inst)
    return {m: files for (m, u), files in found.items() if u == user}


def wait_delivered(inst, user, marker, stored, timeout=20):
    def ok():
        files = user_markers(inst, user).get(marker, [])
        return files or None
    files = wait_until(ok, timeout, what=f"{marker} in {user}'s Maildir")
    assert len(files) == 1, f"{marker} delivered {len(files)} times"
    _, rest = split_delivered(files[0][1])
    assert rest == stored, f"{marker}: delivered content differs ({len(rest)} bytes, want {len(stored)})"


def big_payload(marker, size):
    """A message of about size bytes: its head, then 1000-byte lines."""
    wire, _ = wire_message(marker, 2)
    line = b"y" * 998 + b"\r\n"
    return wire + line * (size // 1000)


def test_queue_minfree_above_free_space_gives_452_at_data_then_flows(tiny_queue):
    inst = tiny_queue("8m", queue_minfree="16M")
    wire, stored = wire_message(marker_of(90001), 5)
    r, end = transaction(inst, "bob@example.test", wire)
    assert r.is_(452, "4.3.1"), f"DATA with {free_bytes(inst.queue_dir)} bytes free, queue_minfree 16M: {r!r}"
    assert end is None
    inst.wait_for_log(r"smtpd\[\d+\]: .*queue file system below queue_minfree: refusing mail")

    subprocess.run(["mount", "-o", "remount,size=64m", str(inst.queue_dir)], check=True)
    wire2, stored2 = wire_message(marker_of(90002), 5)
    r, end = transaction(inst, "bob@example.test", wire2)
    assert r.code == 354 and queued(end), f"after the remount: DATA {r!r}, end {end!r}"
    wait_delivered(inst, "bob", marker_of(90002), stored2)
    assert marker_of(90001) not in user_markers(inst, "bob"), "the refused message was delivered"


def test_disk_full_gives_452_loses_nothing_and_flows_again(tiny_queue):
    inst = tiny_queue("8m", queue_minfree="0")
    # Acknowledged before the disk fills: must stay deliverable.
    before = []
    for n in range(90101, 90106):
        wire, stored = wire_message(marker_of(n), 10)
        r, end = transaction(inst, "carol@example.test", wire)
        assert queued(end), f"small message before the disk filled: {r!r} {end!r}"
        before.append((n, stored))

    # A message bigger than the whole file system: ENOSPC while writing.
    big = marker_of(90200)
    r, end = transaction(inst, "carol@example.test", big_payload(big, 12 * 1024 * 1024))
    assert r.code == 354, r
    assert end is not None and end.code in (452, 451), f"the message that does not fit: {end!r}"
    print(f"\nmessage bigger than the queue file system: {end.raw!r}")
    assert end.is_(452, "4.3.1"), f"want 452 4.3.1 for ENOSPC while writing the content, got {end!r}"

    for n, stored in before:
        wait_delivered(inst, "carol", marker_of(n), stored)
    time.sleep(1.5)  # a delivery of the refused one would show up by now
    assert big not in user_markers(inst, "carol"), "the refused big message was delivered"
    leftover = [p.name for p in (inst.queue_dir / "content").iterdir()] if (inst.queue_dir / "content").is_dir() else []
    print(f"content files left after the refused message: {leftover}; free {free_bytes(inst.queue_dir)}")

    # Mail flows again once the file system grows.
    subprocess.run(["mount", "-o", "remount,size=64m", str(inst.queue_dir)], check=True)
    after = marker_of(90300)
    wire, stored = wire_message(after, 10)
    r, end = transaction(inst, "carol@example.test", wire)
    assert queued(end), f"after the remount: {r!r} {end!r}"
    wait_delivered(inst, "carol", after, stored)
    big2 = marker_of(90301)
    payload = big_payload(big2, 12 * 1024 * 1024)
    r, end = transaction(inst, "carol@example.test", payload)
    assert queued(end), f"the big message after the remount: {r!r} {end!r}"
    files = wait_until(lambda: user_markers(inst, "carol").get(big2), 30, what="the big message delivered")
    assert len(files) == 1
    assert files[0][1].endswith(b"y" * 998 + b"\n")
    assert not log_ids(inst, r"(\S+): (?:content file missing|cannot store|cannot remove the envelope)")


def fill(path):
    """Fill the file system of directory path to the last block with a
    file of root's; return its size."""
    chunk = b"\0" * 65536
    total = 0
    with open(path / "filler", "wb", buffering=0) as f:
        for size in (65536, 4096, 512, 1):
            while True:
                try:
                    total += f.write(chunk[:size])
                except OSError:
                    break
    return total


def test_full_disk_with_messages_queued_keeps_them_and_flows_again(tiny_queue):
    """The disk fills while acknowledged messages wait in the queue (local
    is stopped): new mail gets 452 4.3.1 (or 451 4.3.0), the queued ones
    are delivered once local continues, exactly once, and after the
    remount mail flows again."""
    inst = tiny_queue("8m", queue_minfree="0", **CHAOS_PARAMS)
    stopped = inst.worker_pids("local")
    for pid in stopped:
        os.kill(pid, signal.SIGSTOP)
    try:
        queued_before = []
        for n in range(90401, 90406):
            wire, stored = wire_message(marker_of(n), 10)
            r, end = transaction(inst, "dave@example.test", wire)
            assert queued(end), f"before the disk filled: {r!r} {end!r}"
            queued_before.append((n, stored, queued(end)))
        filled = fill(inst.queue_dir)
        assert free_bytes(inst.queue_dir) < 4096, free_bytes(inst.queue_dir)

        refused = []
        for n in range(90501, 90504):
            wire, _ = wire_message(marker_of(n), 10)
            r, end = transaction(inst, "dave@example.test", wire)
            print(f"\nfull disk ({filled} bytes of filler): DATA {r.raw!r}, after the dot "
                  f"{end.raw if end else None!r}")
            got = end if r.code == 354 else r
            assert got.is_(452, "4.3.1") or got.is_(451, "4.3.0"), \
                f"a message on a full queue file system: DATA {r!r}, end {end!r}"
            assert not queued(end)
            refused.append(n)
    finally:
        for pid in stopped:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass

    # The disk is still full: what was acknowledged is delivered all the same.
    for n, stored, _ in queued_before:
        wait_delivered(inst, "dave", marker_of(n), stored, timeout=30)

    subprocess.run(["mount", "-o", "remount,size=64m", str(inst.queue_dir)], check=True)
    after = marker_of(90600)
    wire, stored = wire_message(after, 10)
    r, end = wait_until(lambda: (t := transaction(inst, "dave@example.test", wire)) and queued(t[1]) and t,
                        20, interval=1.0, what="a message accepted after the remount")
    wait_delivered(inst, "dave", after, stored)
    wait_drained(inst, {q for _, _, q in queued_before} | {queued(end)}, timeout=60)

    markers = user_markers(inst, "dave")
    for n, stored, qid in queued_before:
        files = markers.get(marker_of(n), [])
        assert len(files) == 1, f"{marker_of(n)} (qid {qid}) delivered {len(files)} times after the full disk"
        assert split_delivered(files[0][1])[1] == stored
    for n in refused:
        assert marker_of(n) not in markers, f"{marker_of(n)} was refused but delivered"
    print("log lines about the full disk:\n" + "\n".join(
        line for line in inst.log().splitlines()
        if re.search(r"No space|ENOSPC|space|commit failed|recovery|store failed|cannot", line))[:3000])
