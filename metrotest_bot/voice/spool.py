"""The call log's durable local spool: write records the database could not take, in order.

One append-only file of JSON lines per worker process under DATA_DIR/calllog-spool/, fsync'd per
batch. Beside it: `<name>.lock`, held (flock, metrotest_bot/filelock.py) by the owning process for its
whole life, so another process can tell a dead worker's spool from a live one; and `<name>.done`, the
byte offset up to which records are committed. The offset is advanced only after a commit and is not
fsync'd: after a crash some committed records are replayed again, which the replay makes harmless
(voice/logapply.py is idempotent). A torn line (a crash mid-write) is skipped with a log line.
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

    def __init__(self, directory: Path):
        self.dir = directory
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
        os.write(self._fd, data)
        _fsync(self._fd)
        self.size += len(data)

    def read(self) -> tuple[list[dict], int]:
        return read_records(self.path, self.offset)

    def committed(self, offset: int) -> None:
        """Records up to `offset` are in the database; an emptied spool is truncated."""
        self.offset = offset
        if self.offset >= self.size:
            os.ftruncate(self._fd, 0)
            os.fsync(self._fd)
            self.offset = self.size = 0
        _write_offset(self.path, self.offset)


def _write_offset(path: Path, offset: int) -> None:
    path.with_suffix(".done").write_text(str(offset))


def orphans(directory: Path, own: Path | None):
    """Spool files of dead processes: yields (path, offset) with the file's lock held; the caller
    replays the records and calls `discard(path)` when they are all committed."""
    if not directory.is_dir():
        return
    for path in sorted(directory.glob("*" + SUFFIX)):
        if own is not None and path == own:
            continue
        with file_lock(path.with_suffix(".lock")) as got:
            if not got or not path.exists():
                continue  # alive, or replayed a moment ago by another worker
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

