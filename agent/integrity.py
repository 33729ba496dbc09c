"""Is the agent's store the one it left behind? Checked before the agent opens it for running.

A box runs for a year with nobody watching. A damaged, emptied, vanished or rolled-back
`agent.db` must never be "repaired" by starting a fresh log: that would start a new box
history (new epoch) without the box's cases, and the clerk's acknowledged cases would be gone.

The head file `agent.db.head` (a few bytes of JSON beside the database) remembers the chain
head the agent last wrote: epoch, seq and hash. It is written atomically (temp file, fsync,
rename) after a committed append, at most once per `HEAD_EVERY_S` (the newest head is written
by the next commit after that, by `AgentStore.flush_head()` which the running agent calls
every second, and at a clean close). It may therefore be a little *behind* the database
(after a kill -9 or a power cut), never ahead of it.

`check_store(path)` refuses (raises StoreDamaged) when:
- the head file exists but the database is missing or 0 bytes (deleted, emptied);
- the file is not a SQLite database (zeroed, random, truncated header);
- `PRAGMA quick_check` is not "ok" (damaged pages, truncated file);
- the log's newest records do not decode, do not hash to their stored hash or do not chain;
  every record not yet acknowledged by the hub must hash to its stored hash;
- the database is behind the head file (an older copy, lost writes), its record at the head
  file's seq has another hash, or its epoch is not the head file's (another store).
A database without a head file is checked the same way and adopted (stores written before
the head file existed); no database and no head file is a new box.

See docs/box.md, "Damaged store", for the recovery commands.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

from protocol.records import GENESIS, RecordError, decode_record, peek_seq

log = logging.getLogger("jiancha.agent.integrity")

EXIT_STORE_DAMAGED = 65  # EX_DATAERR; the unit has RestartPreventExitStatus=65 (no restart loop)
EXIT_STORE_UNREADABLE = 74  # EX_IOERR: the disk answered with an I/O error; systemd retries
HEAD_SUFFIX = ".head"
HEAD_EVERY_S = 1.0  # at most one head-file write (one fsync) per second
TAIL_DECODED = 64  # newest records fully decoded and chain-checked at start
SQLITE_MAGIC = b"SQLite format 3\x00"
DOC = 'docs/box.md, section "Damaged store"'


class StoreDamaged(Exception):
    """The store must not be run on. `problem` says what is wrong, in one or two sentences."""

    exit_code = EXIT_STORE_DAMAGED

    def __init__(self, path: Path, problem: str):
        super().__init__(f"{path}: {problem}")
        self.path = Path(path)
        self.problem = problem


class StoreUnreadable(StoreDamaged):
    """The disk failed to read the store (I/O error, permissions): maybe passing; retried."""

    exit_code = EXIT_STORE_UNREADABLE


@dataclass
class Verdict:
    """What check_store found: state is 'new', 'ok' or 'adopt' (no head file yet)."""

    path: Path
    state: str
    head_seq: int = 0
    epoch: str | None = None
    acked_seq: int = 0
    head_file_seq: int | None = None
    notes: list[str] = field(default_factory=list)

    def text(self) -> str:
        if self.state == "new":
            return f"{self.path}: no store yet; the agent creates a new one (new epoch) at start"
        behind = ""
        if self.head_file_seq is not None and self.head_file_seq < self.head_seq:
            behind = f"; head file at seq {self.head_file_seq} (behind, as after a kill or power cut: fine)"
        adopt = "; no head file yet (written at the next start)" if self.state == "adopt" else ""
        return (
            f"{self.path}: ok: quick_check ok, log head seq {self.head_seq} decodes and chains, "
            f"epoch {self.epoch}, acked by the hub up to {self.acked_seq}{behind}{adopt}"
        )


def head_path(db: Path) -> Path:
    """The head file beside the database: agent.db -> agent.db.head."""
    return Path(f"{db}{HEAD_SUFFIX}")


def store_files(db: Path) -> list[Path]:
    """The database and every file that belongs to it."""
    return [Path(f"{db}{s}") for s in ("", "-wal", "-shm", "-journal", HEAD_SUFFIX)]


# -- the head file ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Head:
    epoch: str
    seq: int
    hash: bytes


def read_head(db: Path) -> Head | None:
    """The head file's content; None when there is none; StoreDamaged when it is unreadable."""
    p = head_path(db)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StoreUnreadable(p, f"cannot read the head file: {exc.strerror or exc}") from None
    try:
        d = json.loads(raw.decode("utf-8"))
        head = Head(epoch=str(d["epoch"]), seq=int(d["seq"]), hash=bytes.fromhex(d["hash"]))
        if head.seq < 0 or len(head.hash) != 32:
            raise ValueError("bad seq or hash")
        return head
    except (UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise StoreDamaged(
            p,
            f"the head file beside the database is unreadable ({exc}). If "
            f"`jiancha agent check-store` then finds the database itself sound, "
            f"move the head file aside and start again",
        ) from None


def write_head(db: Path, epoch: str, seq: int, hash_: bytes) -> None:
    """Atomically replace the head file: temp file, fsync, rename (the directory is fsynced
    when the head file is created, so that its existence survives a power cut)."""
    p = head_path(db)
    tmp = Path(f"{p}.tmp")
    created = not p.exists()
    data = (
        json.dumps(
            {"v": 1, "epoch": epoch, "seq": seq, "hash": hash_.hex(), "written_ms": int(time.time() * 1000)}
        ).encode()
        + b"\n"
    )
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, p)
    if created:
        _fsync_dir(p.parent)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# -- the check -----------------------------------------------------------------------------------
def check_store(db: Path | str) -> Verdict:
    """Check the store at `db` before running on it; StoreDamaged (or StoreUnreadable) if not fit."""
    db = Path(db)
    head = read_head(db)
    try:
        size = db.stat().st_size
    except FileNotFoundError:
        if head is not None:
            extra = " (its -wal file is still there)" if Path(f"{db}-wal").exists() else ""
            raise StoreDamaged(
                db,
                f"the database file is missing{extra}, but its head file says a "
                f"store with {head.seq} records (epoch {head.epoch}) was created here",
            ) from None
        return Verdict(db, "new")
    except OSError as exc:
        raise StoreUnreadable(db, f"cannot read the database file: {exc.strerror or exc}") from None
    if size == 0:
        if head is not None:
            raise StoreDamaged(
                db,
                f"the database file is empty (0 bytes), but its head file says a store "
                f"with {head.seq} records (epoch {head.epoch}) was created here",
            )
        if Path(f"{db}-wal").exists() and Path(f"{db}-wal").stat().st_size > 0:
            raise StoreDamaged(db, "the database file is empty (0 bytes) but its -wal file is not")
        return Verdict(db, "new")
    _check_header(db, size)
    try:
        conn = sqlite3.connect(f"file:{db}?mode=rw", uri=True, isolation_level=None)
    except sqlite3.Error as exc:
        raise StoreUnreadable(db, f"cannot open the database: {exc}") from None
    try:
        return _check_open(db, conn, head)
    except sqlite3.DatabaseError as exc:
        if _io_error(exc):
            raise StoreUnreadable(db, f"the disk failed while reading the database: {exc}") from None
        raise StoreDamaged(db, f"SQLite cannot read the database: {exc}{_size_note(db, size)}") from None
    finally:
        conn.close()


def _size_note(db: Path, size: int) -> str:
    """' (… truncated)' when the file is shorter than its header says, else ''."""
    try:
        with open(db, "rb") as f:
            hdr = f.read(100)
    except OSError:
        return ""
    if len(hdr) < 100 or not hdr.startswith(SQLITE_MAGIC):
        return ""
    page = int.from_bytes(hdr[16:18], "big")
    page = 65536 if page == 1 else page
    pages = int.from_bytes(hdr[28:32], "big")
    if hdr[24:28] == hdr[92:96] and pages * page > size:
        return f" (the file is {size:,} bytes, its header says {pages * page:,}: it was truncated)"
    return ""


def _check_header(db: Path, size: int) -> None:
    try:
        with open(db, "rb") as f:
            first = f.read(4096)
    except OSError as exc:
        raise StoreUnreadable(db, f"cannot read the database file: {exc.strerror or exc}") from None
    if first.startswith(SQLITE_MAGIC):
        if size < 100:
            raise StoreDamaged(db, f"the database file is truncated ({size} bytes)")
        return
    if not first.strip(b"\x00"):
        what = f"its first {len(first):,} bytes are zeros (the file was zeroed or never written)"
    elif size < len(SQLITE_MAGIC):
        what = f"it is only {size} bytes long (truncated)"
    else:
        what = "it does not begin with the SQLite header (overwritten with other data)"
    raise StoreDamaged(db, f"not a SQLite database: {what}")


def _io_error(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return (
        (code is not None and code & 0xFF in (10, 14)) or "disk I/O error" in str(exc) or "unable to open" in str(exc)
    )


def _check_open(db: Path, conn: sqlite3.Connection, head: Head | None) -> Verdict:
    rows = [r[0] for r in conn.execute("PRAGMA quick_check(5)")]
    if rows != ["ok"]:
        found = [
            ln.strip()
            for r in rows
            for ln in str(r).splitlines()
            if ln.strip() and not ln.startswith("*** in database")
        ]
        raise StoreDamaged(
            db, "PRAGMA quick_check finds the database damaged: " + "; ".join(found) + _size_note(db, db.stat().st_size)
        )
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if not {"log", "meta"} <= tables:
        # created but killed before its first migration committed: nothing was ever stored
        if head is not None:
            raise StoreDamaged(
                db,
                f"the database holds no case log, but its head file says a store "
                f"with {head.seq} records (epoch {head.epoch}) was created here",
            )
        return Verdict(db, "new")
    meta = dict(conn.execute("SELECT key, value FROM meta WHERE key IN ('epoch', 'acked_seq')"))
    epoch = meta.get("epoch")
    acked = int(meta.get("acked_seq") or 0)
    top = conn.execute("SELECT count(*), min(seq), max(seq) FROM log").fetchone()
    n, lo, hi = top[0], top[1] or 0, top[2] or 0
    if n and (lo != 1 or hi != n):
        raise StoreDamaged(db, f"the log has gaps: {n} records numbered {lo}..{hi}")
    if epoch is None and (n or head is not None):
        raise StoreDamaged(db, "the database has lost its epoch (meta table)")
    if head is not None:
        if head.epoch != epoch:
            raise StoreDamaged(
                db, f"the database is another store: its epoch is {epoch}, the head file beside it says {head.epoch}"
            )
        if hi < head.seq:
            raise StoreDamaged(
                db,
                f"the database is behind its head file: its last record is seq {hi}, "
                f"the agent had written up to seq {head.seq} (an older copy of the "
                f"file, or writes the storage lost)",
            )
    first_decoded = max(1, hi - TAIL_DECODED + 1)
    if head is not None and head.seq:
        first_decoded = min(first_decoded, head.seq)
    first_hashed = max(1, min(first_decoded, acked + 1))
    _check_log(db, conn, first_hashed, first_decoded, hi, head)
    state = "ok" if head is not None else "adopt"
    return Verdict(db, state, head_seq=hi, epoch=epoch, acked_seq=acked, head_file_seq=head.seq if head else None)


def _check_log(
    db: Path, conn: sqlite3.Connection, first_hashed: int, first_decoded: int, last: int, head: Head | None
) -> None:
    """Records first_hashed..last hash to their stored hash; first_decoded..last also decode,
    carry their own seq and chain to their predecessor; the head file's record matches."""
    if last == 0:
        return
    prev = GENESIS
    if first_decoded > 1:
        row = conn.execute("SELECT hash FROM log WHERE seq=?", (first_decoded - 1,)).fetchone()
        prev = bytes(row[0]) if row else GENESIS
    for seq, stored, data in conn.execute(
        "SELECT seq, hash, data FROM log WHERE seq BETWEEN ? AND ? ORDER BY seq", (first_hashed, last)
    ):
        data, stored = bytes(data), bytes(stored)
        if hashlib.sha256(data).digest() != stored:
            raise StoreDamaged(db, f"log record seq {seq} does not match its stored hash (damaged bytes)")
        if head is not None and seq == head.seq and stored != head.hash:
            raise StoreDamaged(
                db,
                f"log record seq {seq} is not the record the agent wrote: its hash "
                f"{stored.hex()[:16]}… differs from the head file's {head.hash.hex()[:16]}…",
            )
        if seq < first_decoded:
            continue
        try:
            if peek_seq(data) != seq:
                raise RecordError(f"it says it is seq {peek_seq(data)}")
            rec = decode_record(data)
        except RecordError as exc:
            raise StoreDamaged(db, f"log record seq {seq} does not decode: {exc}") from None
        if rec.prev != prev:
            raise StoreDamaged(db, f"log record seq {seq} does not chain to record {seq - 1}")
        prev = stored


# -- operator commands -------------------------------------------------------------------------
def move_aside(db: Path, now: float | None = None) -> Path | None:
    """Move the store's files (database, -wal, -shm, head file) into a new folder
    `damaged-YYYYmmddTHHMMSS` beside them; nothing is deleted. None when there was nothing."""
    db = Path(db)
    present = [p for p in store_files(db) if os.path.lexists(p)]
    if not present:
        return None
    stamp = time.strftime("%Y%m%dT%H%M%S", time.localtime(now))
    dest = db.parent / f"damaged-{stamp}"
    i = 1
    while dest.exists():
        i += 1
        dest = db.parent / f"damaged-{stamp}-{i}"
    dest.mkdir(mode=0o700)
    for p in present:
        shutil.move(str(p), str(dest / p.name))
    _fsync_dir(dest)
    _fsync_dir(db.parent)
    return dest


def refusal_text(exc: StoreDamaged, *, config: str | Path | None = None, data_dir: str | Path | None = None) -> str:
    """What the operator reads in the journal when the agent refuses to start."""
    args = f"--config {config}" if config else "--config /etc/jiancha/agent.yaml"
    if data_dir:
        args += f" --data-dir {data_dir}"
    if isinstance(exc, StoreUnreadable):
        return (
            f"jiancha agent: cannot read the case store {exc.path}: {exc.problem}\n"
            f"  The agent will try again. If this persists, check the disk (dmesg, fsck) and "
            f"see {DOC}."
        )
    return (
        f"jiancha agent: REFUSING TO START: the case store {exc.path} is damaged or is not the "
        f"store this box wrote.\n"
        f"  What is wrong: {exc.problem}.\n"
        f"  Nothing was changed. The agent will not start a new store by itself: that would lose "
        f"this box's cases.\n"
        f"  Recovery ({DOC}):\n"
        f"    1. jiancha agent check-store {args}\n"
        f"    2. copy the folder {exc.path.parent} off the box for inspection\n"
        f"    3. jiancha agent reset-store {args} --yes-i-understand\n"
        f"       (moves the files aside, never deletes them; the next start begins a new store "
        f"with a new epoch; cases the hub had not acknowledged are lost unless recovered from "
        f"the moved files)"
    )


def check_command(db: Path) -> int:
    """`jiancha agent check-store`: print the verdict; 0 when the agent may run on it."""
    try:
        print(check_store(db).text())
        return 0
    except StoreDamaged as exc:
        print(f"{exc.path}: DAMAGED: {exc.problem}\n  Recovery: {DOC}.")
        return exc.exit_code


def reset_command(db: Path, *, sure: bool, even_if_healthy: bool = False) -> int:
    """`jiancha agent reset-store`: move a damaged store aside so the next start begins a new one."""
    db = Path(db)
    if not sure:
        print(
            f"reset-store moves {db} and its -wal, -shm and .head files into a damaged-<time> folder "
            f"beside them; the next start begins a NEW store (new epoch) without this box's cases. "
            f"Add --yes-i-understand to do it ({DOC})."
        )
        return 2
    try:
        verdict = check_store(db)
    except StoreUnreadable as exc:  # an I/O or permission error may pass: never move a store for it
        print(
            f"{exc.path}: could not be read: {exc.problem}. That is not damage: fix the disk or the "
            f"permissions and start again; refusing to reset."
        )
        return 2
    except StoreDamaged as exc:
        print(f"{exc.path}: damaged: {exc.problem}")
    else:
        if verdict.state == "new" and not any(os.path.lexists(p) for p in store_files(db)):
            print(f"{db}: there is no store here; nothing to move (the next start creates one)")
            return 0
        if verdict.state != "new" and not even_if_healthy:
            print(verdict.text())
            print(
                "The store is sound: refusing to reset it. To start this box afresh anyway, stop the "
                "agent (systemctl stop jiancha-agent) and add --even-if-healthy."
            )
            return 2
    dest = move_aside(db)
    print(
        f"moved the store's files to {dest} (nothing deleted). The next `jiancha agent run` creates a "
        f"new store with a new epoch; the hub raises an epoch_changed alert for this site. Cases the hub "
        f"had not acknowledged are only in {dest}."
    )
    return 0
