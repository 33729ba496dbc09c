"""Micro benchmark of the record codec and batch sealing (target: hub ingest >= 10,000 rec/s).

    python bench/codec.py [--runs 5] [--batch 500] [--batches 10]

Prints records/s (median of runs) for: encode_record, decode_record, seal_batch, open_batch
(verify + decrypt + strict decode of every record) and seal+open, next to the raw
msgpack packb+unpackb rate of the same record arrays as a baseline.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import msgpack

from protocol.crypto import generate_ed25519, generate_x25519
from protocol.records import GENESIS, Record, chain_next, decode_record, encode_record
from protocol.wire import open_batch, seal_batch


def sample_body(i: int) -> dict:
    """A case-event-like body of about 300 encoded bytes."""
    return {
        "case_no": f"S01-20240301-{i:06d}",
        "item": "330100-001-000-01",
        "step": "accept",
        "window": 3,
        "clerk": {"id": "clerk07", "name": "李四"},
        "applicant": "张三有限公司",
        "status": "in_progress",
        "due": "2024-03-08",
        "fee_fen": 0,
        "urgent": False,
        "note": "材料齐全，予以受理。",
        "attachments": [b"\x00" * 16, "receipt.pdf"],
        "limits": {"legal_days": 20, "promised_days": 5},
        "ref": None,
    }


def make_records(n: int, first: int) -> list[Record]:
    """n chained records starting at seq first."""
    out, prev = [], GENESIS
    for k in range(n):
        r = Record(
            first + k, prev, "case.event", 1_709_251_200_000 + k, k * 1000, "boot-1", "ntp", sample_body(first + k)
        )
        prev = chain_next(prev, encode_record(r))
        out.append(r)
    return out


def rate(fn, n_records: int, runs: int) -> float:
    """Median records/s of fn() over runs."""
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return n_records / statistics.median(times)


def main(argv: list[str]) -> int:
    """Run the benchmark and print figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--batches", type=int, default=10)
    a = ap.parse_args(argv)
    sign, hub = generate_ed25519(), generate_x25519()
    batches = [make_records(a.batch, 1 + b * a.batch) for b in range(a.batches)]
    encoded = [[encode_record(r) for r in recs] for recs in batches]
    n = a.batch * a.batches
    sizes = [len(e) for es in encoded for e in es]
    kw = dict(sign_key=sign, hub_seal_pub=hub.public_key(), sent_ms=1)
    sealed = [seal_batch("S01", es, first_seq=1 + b * a.batch, **kw) for b, es in enumerate(encoded)]
    vk = sign.public_key()
    raw_rows = [
        [[r.seq, r.prev, r.kind, r.wall_ms, r.mono_ns, r.boot_id, r.clock, r.body] for r in recs] for recs in batches
    ]

    def baseline():
        for rows in raw_rows:
            for row in rows:
                msgpack.unpackb(msgpack.packb(row, use_bin_type=True), raw=False)

    def seal_all():
        for b, es in enumerate(encoded):
            seal_batch("S01", es, first_seq=1 + b * a.batch, **kw)

    def open_all():
        for data in sealed:
            open_batch(data, site="S01", verify_key=vk, hub_seal_key=hub)

    def seal_open():
        seal_all()
        open_all()

    figures = {
        "msgpack pack+unpack (baseline)": rate(baseline, n, a.runs),
        "encode_record": rate(lambda: [encode_record(r) for rs in batches for r in rs], n, a.runs),
        "decode_record": rate(lambda: [decode_record(e) for es in encoded for e in es], n, a.runs),
        "seal_batch": rate(seal_all, n, a.runs),
        "open_batch (verify+decrypt+decode)": rate(open_all, n, a.runs),
        "seal_batch + open_batch": rate(seal_open, n, a.runs),
    }
    base = figures["msgpack pack+unpack (baseline)"]
    body = len(msgpack.packb(sample_body(1), use_bin_type=True))
    print(
        f"{a.batches} batches x {a.batch} records, body {body} B, "
        f"record {statistics.mean(sizes):.0f} B, "
        f"sealed batch {statistics.mean(len(s) for s in sealed) / 1024:.0f} KiB, "
        f"median of {a.runs} runs"
    )
    for name, value in figures.items():
        print(f"  {name:<38} {value:>10,.0f} rec/s   {value / base:5.2f}x baseline")
    ok = figures["open_batch (verify+decrypt+decode)"] >= 10_000
    print(f"hub ingest target 10,000 rec/s for open_batch: {'met' if ok else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
