"""What the store's head file (agent.db.head, agent/integrity.py) costs.

1. Registrations/s through AgentStore.register (synchronous=FULL, on the data folder's disk)
   without a head file, with the default (written at most once per second) and with a head
   file written after every commit (temp file + fsync + rename).
2. The start-up check (check_store: quick_check, head decode, hashes of unacked records) of a
   store with N registrations, none acknowledged (the worst case: every record is hashed).

    .venv/bin/python bench/store_head.py [--n 300] [--records 20000] [--runs 3] [--dir DIR]

DIR must be on the disk under test (default: a temporary folder under bench/out/, not /tmp
which may be tmpfs).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from agent import integrity  # noqa: E402
from agent.store import AgentStore  # noqa: E402
from protocol.calendar import CST  # noqa: E402
from protocol.models import CatalogItem, NewCase  # noqa: E402

ITEM = CatalogItem(
    code="XK-001",
    name="食品经营许可",
    department="市场监督管理局",
    item_type="licensing",
    case_type="promised",
    legal_days=20,
    promised_days=10,
)


def _store(db: Path) -> AgentStore:
    s = AgentStore(db, "S01")
    s.save_config("catalog", 1, 0, {"items": [ITEM.model_dump(mode="json")]}, b"bench")
    s.case_view = lambda case_no, now: None  # the API's answer is not what is measured
    return s


def registrations_per_s(folder: Path, n: int, mode: str) -> float:
    db = folder / f"{mode}.db"
    for p in integrity.store_files(db):
        p.unlink(missing_ok=True)
    s = _store(db)
    real = integrity.write_head
    if mode == "off":
        integrity.write_head = lambda *a, **k: None
    elif mode == "every-commit":
        s.head_every_s = 0.0
    req = NewCase(item_code="XK-001", applicant={"name": "李四", "phone": "13800000000"}, window="3号窗口")
    now = datetime.now(CST)
    try:
        t = time.perf_counter()
        for _ in range(n):
            s.register(req, now)
        return n / (time.perf_counter() - t)
    finally:
        integrity.write_head = real
        s.close()


def check_seconds(folder: Path, records: int, runs: int) -> list[float]:
    db = folder / "big.db"
    for p in integrity.store_files(db):
        p.unlink(missing_ok=True)
    s = _store(db)
    s.conn.execute("PRAGMA synchronous=OFF")  # set-up speed only
    req = NewCase(item_code="XK-001", applicant={"name": "李四", "phone": "13800000000"}, window="3号窗口")
    now = datetime.now(CST)
    for _ in range(records):
        s.register(req, now)
    s.close()
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        v = integrity.check_store(db)
        out.append(time.perf_counter() - t)
        assert v.state == "ok" and v.head_seq == records
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=300, help="registrations per run")
    ap.add_argument("--records", type=int, default=20_000, help="store size for the start-up check")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--dir", type=Path, default=None)
    a = ap.parse_args()
    base = a.dir or (REPO / "bench" / "out")
    base.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="store-head-", dir=base))
    try:
        results: dict[str, list[float]] = {m: [] for m in ("off", "default-1s", "every-commit")}
        for _ in range(a.runs):  # interleaved, so drift hits every mode alike
            for mode in results:
                results[mode].append(registrations_per_s(folder, a.n, mode))
        for mode, xs in results.items():
            print(
                f"registrations/s, head file {mode:13s}: median {statistics.median(xs):7.1f}  "
                f"(runs: {', '.join(f'{x:.1f}' for x in xs)})"
            )
        w = []
        for i in range(200):  # one head-file write: temp file, fsync, rename
            t = time.perf_counter()
            integrity.write_head(folder / "w.db", "e" * 32, i, bytes(32))
            w.append(time.perf_counter() - t)
        print(
            f"one head-file write: median {statistics.median(w) * 1000:.2f} ms, "
            f"90th percentile {statistics.quantiles(w, n=10)[-1] * 1000:.2f} ms (200 writes)"
        )
        xs = check_seconds(folder, a.records, a.runs)
        print(
            f"start-up check of {a.records:,} unacked records ({(folder / 'big.db').stat().st_size / 2**20:.1f} "
            f"MiB): median {statistics.median(xs) * 1000:.0f} ms (runs: {', '.join(f'{x * 1000:.0f}' for x in xs)})"
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
