"""The results folder of the web app: an SQLite database of jobs and losses, and their images.

Layout of ``--data DIR`` (default: the user's data folder, see :func:`default_data_dir`)::

    stylize-web.sqlite3     jobs (settings, status, result) and the loss of every step
    results/<job id>.png    the result, or the best image so far while the job runs
    results/<job id>.jpg    its preview
    tmp/                    uploads and other files of one server run; emptied at every start

Everything the page shows about a job is a *record*: a dict with the columns of ``jobs`` (JSON
columns decoded). A running job writes its record at every change of status and, every
``checkpoint`` seconds, its new losses and its best image, so a server that is killed loses at
most that much; at the next start such jobs are marked ``interrupted`` and keep that image.
Old jobs are deleted only beyond ``keep_jobs`` (oldest first), and by the user.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

DB_NAME = "stylize-web.sqlite3"
SCHEMA_VERSION = 1
#: Statuses of a job; the last four are final.
QUEUED, RUNNING, DONE, CANCELLED, FAILED = "queued", "running", "done", "cancelled", "failed"
INTERRUPTED = "interrupted"  # running or waiting when the server stopped
TERMINAL = frozenset({DONE, CANCELLED, FAILED, INTERRUPTED})
JSON_COLUMNS = ("styles", "options", "settings", "notes", "result")
COLUMNS = ("id", "created", "updated", "status", "phase", "title", "content", "styles", "options", "settings",
           "device", "network", "notes", "error", "result", "work", "preview_version")

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, created REAL NOT NULL, updated REAL NOT NULL, status TEXT NOT NULL,
    phase TEXT NOT NULL, title TEXT NOT NULL, content TEXT NOT NULL, styles TEXT NOT NULL,
    options TEXT NOT NULL, settings TEXT, device TEXT NOT NULL DEFAULT '', network TEXT NOT NULL DEFAULT '',
    notes TEXT NOT NULL DEFAULT '[]', error TEXT, result TEXT, work REAL NOT NULL DEFAULT 0,
    preview_version INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_created ON jobs (created);
CREATE TABLE IF NOT EXISTS losses (
    job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE, idx INTEGER NOT NULL,
    scale INTEGER, total REAL, content REAL, style REAL, PRIMARY KEY (job_id, idx)
) WITHOUT ROWID;
PRAGMA user_version = {SCHEMA_VERSION};
"""


def default_data_dir() -> Path:
    """Where results go without ``--data``: the user's data folder (``~/.local/share/stylize/web`` on Linux)."""
    import platformdirs

    return Path(platformdirs.user_data_dir("stylize", appauthor=False)) / "web"


class ResultStore:
    """Jobs, losses and result images of the web app in ``folder``. Thread-safe."""

    def __init__(self, folder: str | Path, *, keep_jobs: int = 1000) -> None:
        if keep_jobs < 1:
            raise ValueError("keep_jobs must be at least 1")
        self.folder = Path(folder)
        self.results = self.folder / "results"
        self.tmp = self.folder / "tmp"
        self.keep_jobs = keep_jobs
        self._lock = threading.Lock()
        self.generation = 0  # moves at every change of the database: what was read before may be stale
        self.folder.mkdir(parents=True, exist_ok=True)
        self._owner = _lock_folder(self.folder / "lock")  # one server per results folder
        shutil.rmtree(self.tmp, ignore_errors=True)  # the last run's uploads: nobody refers to them any more
        for path in (self.results, self.tmp):
            path.mkdir(parents=True, exist_ok=True)
        self._conn: sqlite3.Connection | None = None
        with self._lock:
            self._db.executescript(SCHEMA)
        self.interrupted = self._recover()
        self._clean_files()
        self.prune()

    @property
    def _db(self) -> sqlite3.Connection:
        """The connection (call with the lock held); opened again after :meth:`close`."""
        if self._conn is None:
            self._conn = sqlite3.connect(self.folder / DB_NAME, check_same_thread=False, isolation_level=None)
            self._conn.row_factory = sqlite3.Row
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute("PRAGMA foreign_keys = ON")
        return self._conn

    # -- jobs

    def save(self, record: dict[str, Any]) -> None:
        """Insert or replace a job's record (all of :data:`COLUMNS`)."""
        row = {**record, "updated": time.time()}
        values = [json.dumps(row[c], allow_nan=False) if c in JSON_COLUMNS else row[c] for c in COLUMNS]
        marks = ", ".join("?" * len(COLUMNS))
        with self._lock:
            self._db.execute(f"INSERT OR REPLACE INTO jobs ({', '.join(COLUMNS)}) VALUES ({marks})", values)
            self.generation += 1

    def add_losses(self, job_id: str, points: Iterable[list[float | None]]) -> None:
        """Store loss points ``[index, scale, total, content, style]`` (an index already stored is kept)."""
        rows = [(job_id, *p[:5]) for p in points]
        if not rows:
            return
        with self._lock, self._transaction():
            self._db.executemany("INSERT OR IGNORE INTO losses VALUES (?, ?, ?, ?, ?, ?)", rows)
            self.generation += 1

    def get(self, job_id: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return None if row is None else _decode(row)

    def losses(self, job_id: str, offset: int = 0) -> list[list[float | None]]:
        with self._lock:
            rows = self._db.execute("SELECT idx, scale, total, content, style FROM losses WHERE job_id = ? "
                                    "ORDER BY idx LIMIT -1 OFFSET ?", (job_id, max(0, offset))).fetchall()
        return [list(r) for r in rows]

    def count_losses(self, job_id: str) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM losses WHERE job_id = ?", (job_id,)).fetchone()[0]

    def history(self, *, limit: int = 50, before: float | None = None) -> list[dict[str, Any]]:
        """The newest jobs first (``before``: only jobs created earlier than that time)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM jobs WHERE created < ? ORDER BY created DESC LIMIT ?",
                (before if before is not None else float("inf"), limit)).fetchall()
        return [_decode(r) for r in rows]

    def total(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]

    def delete(self, job_id: str) -> bool:
        """Delete a job, its losses and its images; whether it existed."""
        with self._lock:
            deleted = self._db.execute("DELETE FROM jobs WHERE id = ?", (job_id,)).rowcount > 0
            self.generation += 1
        self._unlink_files(job_id)
        return deleted

    def prune(self) -> list[str]:
        """Delete the oldest finished jobs beyond ``keep_jobs``; their ids."""
        with self._lock:
            excess = self._db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0] - self.keep_jobs
            if excess <= 0:
                return []
            marks = ", ".join("?" * len(TERMINAL))
            ids = [r[0] for r in self._db.execute(
                f"SELECT id FROM jobs WHERE status IN ({marks}) ORDER BY created LIMIT ?",
                (*sorted(TERMINAL), excess)).fetchall()]
        for job_id in ids:
            self.delete(job_id)
        return ids

    # -- files

    def result_path(self, job_id: str) -> Path:
        return self.results / f"{job_id}.png"

    def preview_path(self, job_id: str) -> Path:
        return self.results / f"{job_id}.jpg"

    def close(self) -> None:
        """Close the database and let another server use the folder (a later call opens it again)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            if self._owner is not None:
                self._owner.close()
                self._owner = None

    # -- internals

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _recover(self) -> list[str]:
        """Jobs that were waiting or running when the last server stopped without saying so: interrupted."""
        interrupted = []
        for record in (_decode(r) for r in self._db.execute(
                "SELECT * FROM jobs WHERE status IN (?, ?)", (QUEUED, RUNNING)).fetchall()):
            has_image = record["result"] is not None and self.result_path(record["id"]).is_file()
            record.update(status=INTERRUPTED, phase=(
                "the server stopped while this job was running; the best image so far was kept" if has_image
                else "the server stopped before this job painted anything"))
            if not has_image:
                record["result"] = None
            self.save(record)
            interrupted.append(record["id"])
        return interrupted

    def _clean_files(self) -> None:
        """Half-written files of a killed server, and images of jobs the database does not know."""
        with self._lock:
            known = {r[0] for r in self._db.execute("SELECT id FROM jobs").fetchall()}
        for path in self.results.iterdir():
            if path.name.startswith(".") or path.stem not in known:
                with contextlib.suppress(OSError):
                    path.unlink()

    def _unlink_files(self, job_id: str) -> None:
        for path in (self.result_path(job_id), self.preview_path(job_id)):
            path.unlink(missing_ok=True)


class FolderInUseError(OSError):
    """Another server uses this results folder."""


def _lock_folder(path: Path) -> IO[bytes] | None:
    """Hold an exclusive lock on ``path`` while the returned file is open (None where there is no fcntl)."""
    try:
        import fcntl
    except ImportError:  # Windows: no lock
        return None
    handle = path.open("ab")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise FolderInUseError(f"{path.parent} is used by another stylize server") from None
    return handle


def _decode(row: sqlite3.Row) -> dict[str, Any]:
    record = dict(row)
    for column in JSON_COLUMNS:
        if record.get(column) is not None:
            record[column] = json.loads(record[column])
    return record
