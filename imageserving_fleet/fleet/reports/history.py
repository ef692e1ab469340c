"""The report history: every run's host results and component samples in one SQLite file.

Built for a cron job that may overlap with itself: WAL mode (readers never block the writer),
a busy timeout instead of "database is locked", and every write in a BEGIN IMMEDIATE transaction,
so two runs queue for the write lock rather than deadlocking on a lock upgrade. The schema carries
its version in a table; opening a file runs the migrations it lacks, in one transaction, and a
file from a newer controller is refused rather than damaged.

    schema_version(version)
    runs(id, started_at, generated, slice, hosts, ok, degraded, failed, unreachable, skipped)
    host_results(run_id, host, result, reason, elapsed_s, supervisor_state)
    component_samples(run_id, host, component, state, pid, uptime_s, rss_bytes, restarts)
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path

from ...errors import ImageServingError
from ..results import HostResult, summarize
from .trends import Sample

BUSY_TIMEOUT_S = 60.0
DAY_S = 86400.0

# One tuple of statements per schema version; never edit a released one, append a new one.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (  # 1: runs, per-host results, per-component samples
        """CREATE TABLE runs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            started_at REAL NOT NULL,               -- unix time (wall clock: for people and pruning)
            generated TEXT NOT NULL,                -- ISO-8601 UTC, as the report shows it
            slice TEXT,                             -- "K/N" or NULL for the whole fleet
            hosts INTEGER NOT NULL, ok INTEGER NOT NULL, degraded INTEGER NOT NULL, failed INTEGER NOT NULL,
            unreachable INTEGER NOT NULL, skipped INTEGER NOT NULL)""",
        """CREATE TABLE host_results (
            run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            host TEXT NOT NULL, result TEXT NOT NULL, reason TEXT NOT NULL DEFAULT '',
            elapsed_s REAL, supervisor_state TEXT,
            PRIMARY KEY (run_id, host))""",
        """CREATE TABLE component_samples (
            run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            host TEXT NOT NULL, component TEXT NOT NULL, state TEXT, pid INTEGER,
            uptime_s REAL, rss_bytes INTEGER, restarts INTEGER,
            PRIMARY KEY (run_id, host, component))""",
        "CREATE INDEX host_results_by_host ON host_results(host, run_id)",
        "CREATE INDEX component_samples_by_host ON component_samples(host, run_id)",
    ),
    (  # 2: pruning by age without a full scan
        "CREATE INDEX runs_by_time ON runs(started_at)",
    ),
)
VERSION = len(MIGRATIONS)


class HistoryError(ImageServingError):
    """The history file cannot be used (not SQLite, from a newer version, unwritable); names it."""


class History:
    """One open history file. Use as a context manager; every method is one transaction."""

    def __init__(self, path: str | Path, busy_timeout_s: float = BUSY_TIMEOUT_S) -> None:
        self.path = str(path)
        try:
            # isolation_level=None: the module issues no implicit BEGIN; transactions are ours.
            self._db = sqlite3.connect(self.path, timeout=busy_timeout_s, isolation_level=None)
        except sqlite3.Error as exc:
            raise HistoryError(f"{self.path}: cannot open the history: {exc}") from None
        try:
            self._db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
            self.journal_mode = str(self._db.execute("PRAGMA journal_mode = WAL").fetchone()[0])
            self._db.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: durable at checkpoints, never corrupt
            self._db.execute("PRAGMA foreign_keys = ON")
            self.version = self.migrate()
        except sqlite3.Error as exc:
            self._db.close()
            raise HistoryError(f"{self.path}: not a usable history file: {exc}") from None
        except HistoryError:
            self._db.close()
            raise

    def __enter__(self) -> History:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE: take the write lock up front (waiting up to the busy timeout)."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """One snapshot for several SELECTs."""
        self._db.execute("BEGIN")
        try:
            yield self._db
        finally:
            self._db.execute("COMMIT")

    # ------------------------------------------------------------ schema
    def migrate(self) -> int:
        """Brings the file to VERSION; returns the version. Two processes doing it at once is fine."""
        with self._write() as db:
            db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = db.execute("SELECT max(version) FROM schema_version").fetchone()
            current = int(row[0]) if row and row[0] is not None else 0
            if current > VERSION:
                raise HistoryError(f"{self.path}: history schema {current} is newer than this controller "
                                   f"understands ({VERSION}); upgrade imageserving-fleet")
            for version in range(current + 1, VERSION + 1):
                for statement in MIGRATIONS[version - 1]:
                    db.execute(statement)
            if current != VERSION:
                db.execute("DELETE FROM schema_version")
                db.execute("INSERT INTO schema_version (version) VALUES (?)", (VERSION,))
            return VERSION

    # ------------------------------------------------------------- write
    def record(self, results: Sequence[HostResult], started_at: float, generated: str,
               slice_label: str | None = None, keep_days: float | None = None) -> int:
        """Appends one run (and prunes runs older than keep_days, in the same transaction); returns its id."""
        s = summarize(results)
        hosts, samples = [], []
        for r in results:
            hosts.append((r.host, str(r.result), r.reason, r.elapsed_s, r.status.supervisor.state if r.status else None))
            for c in r.components:
                samples.append((r.host, c.id, c.state, c.pid, None if c.uptime_s is None else float(c.uptime_s),
                                c.rss_bytes, c.restarts))
        try:
            with self._write() as db:
                cur = db.execute(
                    "INSERT INTO runs (started_at, generated, slice, hosts, ok, degraded, failed, unreachable, skipped)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (started_at, generated, slice_label, s.hosts, s.ok, s.degraded, s.failed, s.unreachable, s.skipped))
                run_id = int(cur.lastrowid or 0)
                db.executemany("INSERT OR REPLACE INTO host_results (run_id, host, result, reason, elapsed_s, "
                               "supervisor_state) VALUES (?, ?, ?, ?, ?, ?)", [(run_id, *h) for h in hosts])
                db.executemany("INSERT OR REPLACE INTO component_samples (run_id, host, component, state, pid, "
                               "uptime_s, rss_bytes, restarts) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                               [(run_id, *c) for c in samples])
                if keep_days is not None:
                    self._prune(db, started_at - keep_days * DAY_S)
        except sqlite3.Error as exc:
            raise HistoryError(f"{self.path}: cannot record the run: {exc}") from None
        return run_id

    @staticmethod
    def _prune(db: sqlite3.Connection, before: float) -> int:
        old = "SELECT id FROM runs WHERE started_at < ?"
        db.execute(f"DELETE FROM component_samples WHERE run_id IN ({old})", (before,))
        db.execute(f"DELETE FROM host_results WHERE run_id IN ({old})", (before,))
        return db.execute("DELETE FROM runs WHERE started_at < ?", (before,)).rowcount

    def prune(self, keep_days: float, now: float) -> int:
        """Deletes runs older than keep_days before now; returns how many."""
        with self._write() as db:
            return self._prune(db, now - keep_days * DAY_S)

    # -------------------------------------------------------------- read
    def runs(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM runs").fetchone()[0])

    def series(self, hosts: Sequence[str], window: int) -> dict[tuple[str, str], list[Sample | None]]:
        """Takes host names and a window; returns, per (host, component), one entry per run of the
        host among its last `window` runs (oldest first), None where that run has no sample."""
        out: dict[tuple[str, str], list[Sample | None]] = {}
        with self._read() as db:
            for host in hosts:
                run_ids = [row[0] for row in db.execute(
                    "SELECT run_id FROM host_results WHERE host = ? ORDER BY run_id DESC LIMIT ?", (host, window))]
                if not run_ids:
                    continue
                run_ids.reverse()
                position = {run_id: i for i, run_id in enumerate(run_ids)}
                for run_id, cid, state, pid, rss, restarts in db.execute(
                        "SELECT run_id, component, state, pid, rss_bytes, restarts FROM component_samples "
                        "WHERE host = ? AND run_id >= ? ORDER BY run_id", (host, run_ids[0])):
                    if run_id not in position:
                        continue
                    entries = out.setdefault((host, cid), [None] * len(run_ids))
                    entries[position[run_id]] = Sample(run_id, state, pid, rss, restarts)
        return out
