"""The durable outbox: run events until the center acks them, plus the agent's fencing state."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import structlog

from agent.errors import StateDirError
from agent.orphans import TrackedProcess
from protocol.codec import MessageDecoder, encode
from protocol.errors import ProtocolError
from protocol.messages import DaemonsWanted, RunFinished, RunStarted

Event = RunStarted | RunFinished

FILE_NAME = "outbox.sqlite3"
MAX_EVENTS = 100_000
MAX_RUNIDS = 100_000
RUNID_TTL_US = 24 * 3600 * 1_000_000
_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY, kind TEXT NOT NULL, runid TEXT NOT NULL, frame BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS seen_runs (runid TEXT PRIMARY KEY, seen_us INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS desired (key TEXT PRIMARY KEY, frame BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS open_runs (runid TEXT PRIMARY KEY, frame BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS processes (
    runid TEXT PRIMARY KEY, pgid INTEGER NOT NULL, create_time REAL NOT NULL,
    grace_s REAL NOT NULL, started BLOB NOT NULL);
"""
DAEMONS_KEY = "daemons"
log = structlog.get_logger("agent.outbox")


def _unpack(frame: bytes) -> object | None:
    """A stored frame back as its message; None if the row is unreadable."""
    try:
        messages = MessageDecoder(max_frame_bytes=len(frame)).feed(frame)
    except ProtocolError:
        return None
    return messages[0] if len(messages) == 1 else None


@contextlib.contextmanager
def _private_umask() -> Iterator[None]:
    """Files SQLite creates meanwhile (the database, its -wal and -shm) are the owner's only."""
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)


class Outbox:
    """Unacked events in seq order, the highest epoch seen and the recent run ids.

    One SQLite file (`outbox.sqlite3` in the state directory), WAL with `synchronous=FULL` so a
    committed event survives a power cut. Besides the events it keeps the highest epoch seen,
    the recently seen run ids (so a repeated exec is ignored even across agent restarts), and the
    daemon rules last wanted (`desired`: one `DaemonsWanted` frame, so daemons come back at start)
    and the processes running now (`processes`: so a restart after a crash can stop the orphans).
    Every write of a loop iteration goes in one transaction (`commit`); the caller batches.
    """

    def __init__(
        self,
        db: sqlite3.Connection,
        path: Path,
        *,
        max_events: int = MAX_EVENTS,
        max_runids: int = MAX_RUNIDS,
    ) -> None:
        self._db = db
        self.path = path
        self._max_events = max_events
        self._max_runids = max_runids
        self._seen: dict[str, int] = {}
        # Called (on the writer thread) with how many events the cap just dropped.
        self.on_full: Callable[[int], None] = lambda dropped: None
        self.epoch = self._meta("epoch", -1)
        self._last_seq = max(self._meta("last_seq", 0), self._scalar("SELECT MAX(seq) FROM events"))
        self.count = self._scalar("SELECT COUNT(*) FROM events")
        for runid, seen_us in db.execute("SELECT runid, seen_us FROM seen_runs ORDER BY rowid"):
            self._seen[runid] = seen_us

    @classmethod
    def open(cls, state_dir: Path, **limits: int) -> Outbox:
        """Create the state directory and database if needed; StateDirError if impossible."""
        try:
            state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            # The outbox holds runs' output and the agent its key: a directory made earlier
            # (by a package, by hand) with 0755 is closed to others too.
            state_dir.chmod(0o700)
            path = state_dir / FILE_NAME
            # Used from the journal's one writer thread after opening here.
            with _private_umask():
                db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=FULL")
                db.executescript(_SCHEMA)
            for name in (FILE_NAME, f"{FILE_NAME}-wal", f"{FILE_NAME}-shm"):
                if (state_dir / name).exists():
                    (state_dir / name).chmod(0o600)
        except (OSError, sqlite3.Error) as exc:
            raise StateDirError(state_dir, exc) from exc
        return cls(db, path, **limits)

    def close(self) -> None:
        """Close the database (pending transactions are already committed)."""
        self._db.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT, rolled back on any error."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _scalar(self, sql: str) -> int:
        """The one integer a query returns, 0 for NULL."""
        row = self._db.execute(sql).fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def _meta(self, key: str, default: int) -> int:
        """A value of the key-value table, or `default`."""
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return int(row[0]) if row else default

    def seen(self, runid: str) -> bool:
        """Whether a run id is among the recently seen ones."""
        return runid in self._seen

    def commit(
        self,
        events: list[Event],
        *,
        epoch: int | None = None,
        runids: Iterable[tuple[str, int]] = (),
        opened: Iterable[RunFinished] = (),
        acks: list[int] | None = None,
        daemons: DaemonsWanted | None = None,
        tracked: list[TrackedProcess] | None = None,
        untracked: list[str] | None = None,
    ) -> list[Event]:
        """Write events (seq assigned here), epoch, run ids, acks, the wanted daemons and the
        processes started and ended, in one transaction."""
        first = self._last_seq + 1
        numbered = [dataclasses.replace(e, seq=first + i) for i, e in enumerate(events)]
        new_runs = [(r, us) for r, us in runids if r not in self._seen]
        with self._transaction() as db:
            db.executemany(
                "INSERT INTO events (seq, kind, runid, frame) VALUES (?, ?, ?, ?)",
                [(e.seq, e.CALL, e.ref.runid, encode(e)) for e in numbered],
            )
            db.executemany("INSERT OR IGNORE INTO seen_runs VALUES (?, ?)", new_runs)
            db.executemany(
                "INSERT OR IGNORE INTO open_runs VALUES (?, ?)",
                [(f.ref.runid, encode(f)) for f in opened],
            )
            db.executemany(
                "DELETE FROM open_runs WHERE runid = ?",
                [(e.ref.runid,) for e in numbered if isinstance(e, RunFinished)],
            )
            if numbered:
                self._set_meta("last_seq", numbered[-1].seq)
            if epoch is not None and epoch > self.epoch:
                self._set_meta("epoch", epoch)
            if daemons is not None:
                db.execute(
                    "INSERT OR REPLACE INTO desired (key, frame) VALUES (?, ?)",
                    (DAEMONS_KEY, encode(daemons)),
                )
            self._write_processes(db, tracked or [], untracked or [])
            acked = self._delete(db, acks or [])
            dropped = self._enforce_event_cap(len(numbered) - acked)
        self._after_commit(numbered, epoch, new_runs, dropped + acked)
        return numbered

    def _after_commit(
        self, numbered: list[Event], epoch: int | None, runs: list[tuple[str, int]], removed: int
    ) -> None:
        """Bring the in-memory figures in line with what was just committed."""
        if numbered:
            self._last_seq = numbered[-1].seq
        if epoch is not None and epoch > self.epoch:
            self.epoch = epoch
        self._seen.update(runs)
        self.count += len(numbered) - removed
        if len(self._seen) > self._max_runids + self._max_runids // 10:
            self._trim_runids(len(self._seen) - self._max_runids)

    @staticmethod
    def _write_processes(
        db: sqlite3.Connection, tracked: list[TrackedProcess], untracked: list[str]
    ) -> None:
        """Remember started processes, then forget ended ones (inside a transaction)."""
        db.executemany(
            "INSERT OR REPLACE INTO processes VALUES (?, ?, ?, ?, ?)",
            [(t.runid, t.pgid, t.create_time, t.grace_s, encode(t.started)) for t in tracked],
        )
        db.executemany("DELETE FROM processes WHERE runid = ?", [(r,) for r in untracked])

    def load_processes(self) -> list[TrackedProcess]:
        """The processes that were running when the agent last stopped (or died)."""
        out = []
        for runid, pgid, create_time, grace_s, frame in self._db.execute(
            "SELECT runid, pgid, create_time, grace_s, started FROM processes ORDER BY rowid"
        ):
            started = _unpack(frame)
            if not isinstance(started, RunStarted):
                log.error("agent.outbox_bad_process", runid=runid)
                continue
            out.append(TrackedProcess(started, int(pgid), float(create_time), float(grace_s)))
        return out

    def _set_meta(self, key: str, value: int) -> None:
        """Set one key of the key-value table (inside a transaction)."""
        self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def _enforce_event_cap(self, added: int) -> int:
        """Drop the oldest RunStarted events above the cap; a RunFinished is never dropped."""
        excess = self.count + added - self._max_events
        if excess <= 0:
            return 0
        cur = self._db.execute(
            "DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE kind = ? "
            "ORDER BY seq LIMIT ?)",
            (RunStarted.CALL, excess),
        )
        log.warning("agent.outbox_full", limit=self._max_events, dropped_run_started=cur.rowcount)
        if cur.rowcount > 0:
            self.on_full(cur.rowcount)
        return cur.rowcount

    def ack(self, seqs: list[int]) -> int:
        """Delete acknowledged events; unknown seqs are ignored. Returns how many went."""
        with self._transaction() as db:
            acked = self._delete(db, seqs)
        self.count -= acked
        return acked

    @staticmethod
    def _delete(db: sqlite3.Connection, seqs: list[int]) -> int:
        """Delete events by seq (inside a transaction); return how many went."""
        if not seqs:
            return 0
        return db.executemany("DELETE FROM events WHERE seq = ?", [(s,) for s in seqs]).rowcount

    def unacked(self, after_seq: int = 0) -> list[Event]:
        """Every unacked event with seq > after_seq, in seq order (unreadable rows skipped)."""
        rows = self._db.execute(
            "SELECT seq, frame FROM events WHERE seq > ? ORDER BY seq", (after_seq,)
        )
        out = []
        for seq, frame in rows:
            event = _unpack(frame)
            if not isinstance(event, RunStarted | RunFinished):
                log.error("agent.outbox_bad_row", seq=seq)
                continue
            out.append(event)
        return out

    def load_open_runs(self) -> list[RunFinished]:
        """Runs accepted with no final event yet: each as the RunFinished to fill in if the
        agent cannot tell how it ended (read at start, before the writer thread)."""
        rows = self._db.execute("SELECT frame FROM open_runs ORDER BY rowid").fetchall()
        return [m for (frame,) in rows if isinstance(m := _unpack(frame), RunFinished)]

    def load_daemons(self) -> DaemonsWanted | None:
        """The daemon rules last wanted (a complete set), or None if none was ever stored."""
        row = self._db.execute("SELECT frame FROM desired WHERE key = ?", (DAEMONS_KEY,)).fetchone()
        if row is None:
            return None
        wanted = _unpack(row[0])
        if not isinstance(wanted, DaemonsWanted):
            log.error("agent.outbox_bad_desired")
            return None
        return wanted

    def prune_runids(self, now_us: int, ttl_us: int = RUNID_TTL_US) -> int:
        """Forget run ids seen before `now_us - ttl_us`. Returns how many were forgotten."""
        cutoff = now_us - ttl_us
        old = 0
        for seen_us in self._seen.values():  # insertion order is seen order
            if seen_us >= cutoff:
                break
            old += 1
        return self._trim_runids(old) if old else 0

    def _trim_runids(self, n: int) -> int:
        """Forget the `n` oldest run ids."""
        victims = list(self._seen)[:n]
        with self._transaction() as db:
            db.executemany("DELETE FROM seen_runs WHERE runid = ?", [(r,) for r in victims])
        for runid in victims:
            del self._seen[runid]
        return len(victims)
