"""The call log's durable local spool: write records the database could not take, in order.

One append-only file of JSON lines per worker process under DATA_DIR/calllog-spool/, fsync'd per
batch. Beside it: `<name>.lock`, held (flock, metrotest_bot/filelock.py) by the owning process for its
whole life, so another process can tell a dead worker's spool from a live one; and `<name>.done`, the
byte offset up to which records are committed. The offset is advanced only after a commit and is not
fsync'd: after a crash some committed records are replayed again, which the replay makes harmless
(voice/logapply.py is idempotent). Only its reset to 0 is fsync'd, before the emptied file is
truncated: an older, larger offset must never survive a power loss and skip records of a regrown file.
A torn line (a crash mid-write) is skipped with a log line. A file is capped at CALLLOG_SPOOL_MAX_MB.
"""
from __future__ import annotations

import json
import logging
import os
import sys
import uuid
from contextlib import ExitStack
from pathlib import Path

from ..filelock import file_lock

log = logging.getLogger(__name__)

SUFFIX = ".jsonl"
READ_CHUNK_RECORDS = 500  # records replayed per transaction


def spool_dir(config) -> Path:
    return Path(config["DATA_DIR"]) / "calllog-spool"


def _fsync(fd: int) -> None:
    """Under gevent, in the hub's thread pool: a disk flush must not stall every call of the worker."""
    gevent_monkey = sys.modules.get("gevent.monkey")
    if gevent_monkey is not None and gevent_monkey.is_module_patched("threading"):
        import gevent

        gevent.get_hub().threadpool.apply(os.fsync, (fd,))
    else:
        os.fsync(fd)


def _read_offset(path: Path) -> int:
    try:
        return int(path.read_text().strip() or 0)
    except (OSError, ValueError):
        return 0


def read_records(path: Path, offset: int, limit: int = READ_CHUNK_RECORDS) -> tuple[list[dict], int]:
    """Up to `limit` records from byte `offset`, and the offset after them. A last line without its
    newline is a torn write (a crash mid-append): skipped, as is a line that is not JSON."""
    records: list[dict] = []
    with open(path, "rb") as f:
        f.seek(offset)
        while len(records) < limit:
            line = f.readline()
            if not line:
                break
            if not line.endswith(b"\n"):
                log.warning("call log spool %s: a torn last line (%d bytes) skipped", path.name, len(line))
                offset += len(line)
                break
            offset += len(line)
            try:
                records.append(json.loads(line))
            except ValueError:
                log.warning("call log spool %s: a corrupt line (%d bytes) skipped", path.name, len(line))
    return records, offset


class Spool:
    """This process's spool file. Created (lock first, then the file) on the first append."""

    def __init__(self, directory: Path, max_bytes: int = 0):
        self.dir = directory
        self.max_bytes = max_bytes  # 0: no cap
        self.path: Path | None = None
        self._fd: int | None = None
        self._locks = ExitStack()
        self.offset = 0  # committed up to here
        self.size = 0  # written up to here

    @property
    def pending(self) -> bool:
        return self.size > self.offset

    def _open(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        name = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        path = self.dir / (name + SUFFIX)
        # The lock before the file: a scanning process never sees our file unlocked.
        if not self._locks.enter_context(file_lock(path.with_suffix(".lock"))):
            raise OSError(f"call log spool {path}: its lock is taken")
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self.path = path

    def append(self, records: list[dict]) -> None:
        """Append and fsync; raises OSError when the disk fails (the caller logs the loss)."""
        if self._fd is None:
            self._open()
        data = "".join(json.dumps(r, ensure_ascii=False, separators=(",", ":"), default=str) + "\n"
                       for r in records).encode()
        if self.max_bytes and self.size + len(data) > self.max_bytes:
            raise SpoolFull(f"call log spool {self.path}: full ({self.size} of {self.max_bytes} bytes)")
        try:
            view, written = memoryview(data), 0
            while written < len(data):  # a write may be short (a full disk, a signal)
                n = os.write(self._fd, view[written:])
                if n <= 0:
                    raise OSError(f"call log spool {self.path}: nothing written")
                written += n
            _fsync(self._fd)
        except OSError:
            try:  # no half batch left behind: the next append starts on a line boundary
                os.ftruncate(self._fd, self.size)
            except OSError:
                log.exception("call log spool %s: a failed write could not be undone", self.path)
            raise
        self.size += len(data)

    def read(self) -> tuple[list[dict], int]:
        return read_records(self.path, self.offset)

    def committed(self, offset: int) -> None:
        """Records up to `offset` are in the database; an emptied spool is truncated."""
        if offset >= self.size:
            # Offset 0 on disk first: a crash before the truncation only replays committed records again.
            # `pending` stays true until the file is empty (the fsyncs yield: a flush() may be looking).
            _write_offset(self.path, 0, durable=True)
            os.ftruncate(self._fd, 0)
            _fsync(self._fd)
            self.offset = self.size = 0
            return
        self.offset = offset
        _write_offset(self.path, self.offset)


class SpoolFull(OSError):
    pass


def _write_offset(path: Path, offset: int, durable: bool = False) -> None:
    fd = os.open(path.with_suffix(".done"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, str(offset).encode())  # a few bytes: never short on a regular file
        if durable:
            _fsync(fd)
    finally:
        os.close(fd)


def orphans(directory: Path, own: Path | None):
    """Spool files of dead processes: yields (path, offset) with the file's lock held; the caller
    replays the records and calls `discard(path)` when they are all committed."""
    if not directory.is_dir():
        return
    for path in sorted(directory.glob("*" + SUFFIX)):
        if own is not None and path == own:
            continue
        lock = path.with_suffix(".lock")
        with file_lock(lock) as got:
            if not got:
                continue  # alive
            if not path.exists():  # replayed a moment ago by another worker: our lock file is its leftover
                lock.unlink(missing_ok=True)
                continue
            offset = _read_offset(path.with_suffix(".done"))
            if offset > path.stat().st_size:
                offset = 0  # truncated after its last replay, before the offset was reset
            yield path, offset


def discard(path: Path) -> None:
    """Remove a replayed orphan; called with its lock held."""
    for p in (path, path.with_suffix(".done"), path.with_suffix(".lock")):
        try:
            p.unlink()
        except FileNotFoundError:
            pass


def advance(path: Path, offset: int) -> None:
    _write_offset(path, offset)



def holds_records(directory: Path) -> bool:
    """Does any spool here (a live worker's or a dead one's) hold records not yet committed?"""
    if not directory.is_dir():
        return False
    for path in directory.glob("*" + SUFFIX):
        try:
            if path.stat().st_size > _read_offset(path.with_suffix(".done")):
                return True
        except FileNotFoundError:
            continue  # replayed and removed meanwhile
    return False
