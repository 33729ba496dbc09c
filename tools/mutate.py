"""Mutation check: does the suite catch what it names? (issue 15)

Each mutation below is one small, named change to the product (a check switched off, an order
reversed, a durability setting weakened). For each, this script copies the working tree to a
scratch folder, applies the change there (never to the tree itself), runs the tests that should
catch it, and expects them to FAIL. It prints a table; the exit status is 1 when a mutation
survived (its tests passed), did not apply (the code moved: update the mutation), or errored.

    .venv/bin/python tools/mutate.py                 # every mutation, its own tests
    .venv/bin/python tools/mutate.py drain_order     # some by name
    .venv/bin/python tools/mutate.py --list          # names, files, tests
    .venv/bin/python tools/mutate.py --whole-suite   # each mutation against the whole suite
    .venv/bin/python tools/mutate.py --baseline      # also run each test set unmutated first

The tests run in the scratch copy with PYTHONPATH pointing at it, so processes they start
(`python -m hub`, `python -m agent`) import the mutated code too. Not part of CI (docs/testing.md
"Mutation check" lists the mutations and the last table).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutation:
    name: str
    what: str
    file: str
    old: str  # must occur exactly once in `file`
    new: str
    tests: tuple[str, ...]


MUTATIONS: list[Mutation] = [
    Mutation(
        "sync_off",
        "synchronous=FULL → OFF for every SQLite store (agent and hub)",
        "iobase/sqlite.py",
        'conn.execute(f"PRAGMA synchronous={synchronous}")',
        'conn.execute("PRAGMA synchronous=OFF")',
        ("tests/iobase/test_power_cut.py", "tests/e2e/test_power_cut.py"),
    ),
    Mutation(
        "sync_off_agent",
        "the agent's case store opened with synchronous=OFF",
        "agent/store.py",
        "self.conn = connect(self.path, cache_kb=1024)",
        'self.conn = connect(self.path, cache_kb=1024, synchronous="OFF")',
        ("tests/e2e/test_power_cut.py::test_every_case_the_agent_acknowledged_survives_a_power_cut",),
    ),
    Mutation(
        "sync_off_hub",
        "the hub's SQLite store opened with synchronous=OFF",
        "hub/db.py",
        'synchronous: str = "FULL", pool: int = 0',
        'synchronous: str = "OFF", pool: int = 0',
        ("tests/e2e/test_power_cut.py::test_every_record_the_hub_acknowledged_survives_a_power_cut_of_the_hub",),
    ),
    Mutation(
        "chain_in_batch",
        "the hash-chain check inside one batch switched off",
        "hub/ingest.py",
        "if records[i][0].prev != _h(records[i - 1][1]):",
        "if False:",
        ("tests/hub/test_ingest.py",),
    ),
    Mutation(
        "immediate_days",
        "the check that a 即办件 item has promised_days 0 removed",
        "protocol/models.py",
        'if self.case_type == "immediate" and self.promised_days != 0:',
        "if False:",
        ("tests/protocol/test_caseclock.py", "tests/hub/test_catalog.py"),
    ),
    Mutation(
        "lookup_limit_off",
        "the public lookup's rate limiter not consulted",
        "hub/api.py",
        "if not limiter.allow(limiter.key(request.remote), time.monotonic()):",
        "if False:",
        ("tests/hub/test_http_hardening.py",),
    ),
    Mutation(
        "lookup_limit_default",
        "the hub's default lookup limiter made unlimited (tests that pass their own still see 429)",
        "hub/api.py",
        "def __init__(self, n: int = 30, window_s: float = 60.0, *, global_n: int = 1200",
        "def __init__(self, n: int = 10**9, window_s: float = 60.0, *, global_n: int = 10**9",
        ("tests/hub/test_http_hardening.py",),
    ),
    Mutation(
        "drain_order",
        "the outbox drain sends the old backlog before live records",
        "agent/drain.py",
        "        if self.live_next <= head:\n",
        "        if self.live_next <= head and self.backlog_next > self.backlog_end:\n",
        ("tests/e2e/test_walking_skeleton.py::test_live_records_overtake_backlog", "tests/agent/test_drain.py"),
    ),
    Mutation(
        "outbox_dedupe",
        "the notification outbox's dedupe key made unique per insert (ON CONFLICT never fires)",
        "hub/notify/outbox.py",
        "            dedupe_key,\n            channel,\n",
        "            f\"{dedupe_key}|{__import__('time').time_ns()}\",\n            channel,\n",
        ("tests/hub/notify/test_notifier.py", "tests/e2e/test_notifications.py"),
    ),
    Mutation(
        "revoke_broker",
        "revoke-site leaves the broker's ACL as it was (the CRL still refuses new connections)",
        "provisioning/setup.py",
        "        write_acl(root, registry)  # first: the ACL is what cuts off a live connection\n",
        "",
        ("tests/e2e/test_wire_faults.py::test_revoked_site_records_no_longer_arrive",),
    ),
    Mutation(
        "revoke_hub",
        "the hub keeps taking a revoked site's batches (its key stays loaded)",
        "hub/keys.py",
        "                revoked.add(s.code)\n                continue\n",
        "                revoked.add(s.code)\n",
        ("tests/e2e/test_wire_faults.py::test_revocation_at_the_hub_alone_refuses_what_the_broker_lets_through",),
    ),
    Mutation(
        "eviction_floor",
        "retention no longer evicts recordings to meet the free-space floor (age only)",
        "agent/devices/camera/record/retention.py",
        "    if free_bytes + freed < floor_bytes:\n        taken",
        "    if False:\n        taken",
        ("tests/agent/test_health.py",),
    ),
    Mutation(
        "clip_acks_lost",
        "the box does not record the hub's clip-chunk acks (a restarted box resends everything)",
        "agent/devices/camera/record/clips.py",
        '"INSERT OR IGNORE INTO clip_acks(clip_id, idx) VALUES (?, ?)"',
        '"SELECT ?, ?"',
        ("tests/e2e/test_clips.py::test_clip_upload_resumes_and_is_verified",),
    ),
    Mutation(
        "store_full_as_poison",
        "a batch the hub cannot store for lack of space is quarantined as internal_error",
        "hub/ingest.py",
        "if is_store_full(exc):  # not the message's fault",
        "if False:",
        ("tests/e2e/test_hub_disk_full.py",),
    ),
    Mutation(
        "clip_unsynced",
        "a built clip and its meta file are not fsync'd before the upload starts",
        "agent/clipsend.py",
        "            fsync_path(path)\n            write_private(self.clips_dir / f\"{meta['clip_id']}.json\", json.dumps(meta).encode())\n",
        "            (self.clips_dir / f\"{meta['clip_id']}.json\").write_text(json.dumps(meta))\n",
        ("tests/e2e/test_clips.py::test_clip_upload_resumes_and_is_verified",),
    ),
    # -- mutations the suite caught before issue 15 (kept so that it keeps catching them) --------
    Mutation(
        "cross_batch_chain",
        "the hub's fast path no longer checks that a batch links to the record before it",
        "hub/ingest.py",
        "            for seq, rh, prev in fresh:\n                if prev != h:\n                    broke_at = seq\n                    break\n",
        "            for seq, rh, prev in fresh:\n",
        ("tests/hub/test_ingest.py", "tests/hub/test_ingest_fast_path.py"),
    ),
    Mutation(
        "config_unsigned",
        "the agent applies config not signed by its hub",
        "protocol/wire.py",
        "        verify_key.verify(env[2], CONFIG_SIG_PREFIX + env[1])\n",
        "        pass\n",
        ("tests/e2e/test_wire_faults.py::test_agent_refuses_config_not_signed_by_its_hub", "tests/agent/test_sync.py"),
    ),
    Mutation(
        "holidays_ignored",
        "the working-day calendar ignores statutory holidays",
        "protocol/calendar.py",
        "return d in t.workdays or (d.weekday() < 5 and d not in t.holidays)",
        "return d in t.workdays or d.weekday() < 5",
        ("tests/protocol/test_calendar.py", "tests/protocol/test_caseclock.py"),
    ),
    Mutation(
        "yellow_threshold",
        "yellow only when fewer than yellow_days remain (< instead of <=)",
        "protocol/caseclock.py",
        "elif remaining is not None and remaining <= yellow:",
        "elif remaining is not None and remaining < yellow:",
        ("tests/protocol/test_caseclock.py", "tests/protocol/test_caseclock_clocks.py"),
    ),
    Mutation(
        "repeated_supplement",
        "a second 补正 notice is no longer flagged (one complete notice, Art. 32)",
        "protocol/caseclock_replay.py",
        "        if self.supplement_requests:\n            return self.flag(",
        "        if False:\n            return self.flag(",
        ("tests/protocol/test_caseclock.py",),
    ),
]


def scratch_copy(dest: Path) -> None:
    """The working tree's files (tracked and new, not ignored) under dest; .venv linked."""
    out = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        check=True,
        capture_output=True,
    ).stdout.decode()
    for rel in filter(None, out.split("\0")):
        src = REPO / rel
        if not src.is_file():
            continue  # deleted in the working tree
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)
    (dest / ".venv").symlink_to((REPO / ".venv").resolve())


def run_tests(tree: Path, tests: list[str], timeout: float) -> tuple[int, str]:
    """pytest in the scratch tree; (exit status, last lines of its output)."""
    env = {**os.environ, "PYTHONPATH": str(tree), "PYTHONDONTWRITEBYTECODE": "1"}
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
    try:
        p = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return -1, "timed out"
    lines = [ln for ln in (p.stdout + p.stderr).splitlines() if ln.strip()]
    return p.returncode, "\n".join(lines[-15:])


def apply(tree: Path, m: Mutation) -> str | None:
    """Apply the mutation in place; the original text, or None when `old` is not there once."""
    path = tree / m.file
    text = path.read_text(encoding="utf-8")
    if text.count(m.old) != 1:
        return None
    path.write_text(text.replace(m.old, m.new), encoding="utf-8")
    return text


def verdict(rc: int) -> str:
    """pytest's exit status → what it means for a mutation (1 = a test failed = caught)."""
    return {1: "caught", 0: "SURVIVED", -1: "timeout"}.get(rc, f"error (pytest exit {rc})")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", help="mutations to run (default: all)")
    ap.add_argument("--list", action="store_true", help="list the mutations and exit")
    ap.add_argument("--whole-suite", action="store_true", help="run the whole suite (tests/) for each mutation")
    ap.add_argument("--baseline", action="store_true", help="first run each test set without the mutation")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds per pytest run")
    ap.add_argument("--verbose", action="store_true", help="print the tail of pytest's output")
    args = ap.parse_args(argv)

    by_name = {m.name: m for m in MUTATIONS}
    unknown = [n for n in args.names if n not in by_name]
    if unknown:
        ap.error(f"unknown mutation(s): {', '.join(unknown)}; --list shows them")
    chosen = [by_name[n] for n in args.names] or MUTATIONS
    if args.list:
        for m in chosen:
            print(f"{m.name:22} {m.file}\n{'':22} {m.what}\n{'':22} → {' '.join(m.tests)}")
        return 0

    tree = Path(tempfile.mkdtemp(prefix="jiancha-mutate-"))
    rows = []
    try:
        scratch_copy(tree)
        for m in chosen:
            tests = ["tests"] if args.whole_suite else list(m.tests)
            base = ""
            if args.baseline:
                rc, tail = run_tests(tree, tests, args.timeout)
                base = "passes" if rc == 0 else f"FAILS unmutated (exit {rc})"
                if args.verbose and rc:
                    print(tail)
            original = apply(tree, m)
            if original is None:
                rows.append((m, "DOES NOT APPLY", 0.0, base))
                continue
            started = time.monotonic()
            try:
                rc, tail = run_tests(tree, tests, args.timeout)
            finally:
                (tree / m.file).write_text(original, encoding="utf-8")
            rows.append((m, verdict(rc), time.monotonic() - started, base))
            print(f"{m.name}: {verdict(rc)} ({time.monotonic() - started:.0f} s)", file=sys.stderr, flush=True)
            if args.verbose:
                print(tail, file=sys.stderr)
    finally:
        shutil.rmtree(tree, ignore_errors=True)

    print("| mutation | what | caught by | result | s |" + (" unmutated |" if args.baseline else ""))
    print("|---|---|---|---|---|" + ("---|" if args.baseline else ""))
    for m, result, secs, base in rows:
        tests = "whole suite" if args.whole_suite else ", ".join(t.removeprefix("tests/") for t in m.tests)
        extra = f" {base} |" if args.baseline else ""
        print(f"| `{m.name}` | {m.what} | {tests} | {result} | {secs:.0f} |{extra}")
    bad = [r for r in rows if r[1] != "caught" or (args.baseline and r[3] != "passes")]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
