"""Where the file of a KB version comes from: SQL holds its bytes, DATA_DIR a local copy.

An upload is saved under the DATA_DIR of the machine that took it; its bytes
go to the database too (models.KBFile), in the upload's transaction. Any
other machine that has to build the version's index (the engine switching to
it, a retry, `flask reindex`) copies the bytes to its own DATA_DIR first:

    path = local_source(config, version_id, stored_path)   # needs an app context

Builds of one index on one machine take turns through `build_lock()`, a file
lock under DATA_DIR: a second worker waits, then finds the index built.
"""
from __future__ import annotations

import hashlib
import logging
import os
import uuid
from contextlib import contextmanager
from pathlib import Path

from ..filelock import file_lock
from .errors import KBError

log = logging.getLogger(__name__)


def upload_dir(config) -> Path:
    return Path(config["DATA_DIR"]) / "kb" / "uploads"


def keep_file(session, version_id: int, data: bytes) -> None:
    """Store an upload's bytes with its KBVersion (committed by the caller)."""
    from ..models import KBFile

    session.add(KBFile(version_id=version_id, sha256=hashlib.sha256(data).hexdigest(), content=data))


def forget_file(session, version_id: int) -> None:
    """Drop an unusable upload's bytes (committed by the caller)."""
    from ..models import KBFile

    session.execute(KBFile.__table__.delete().where(KBFile.version_id == version_id))


def has_file(version_id: int) -> bool:
    from ..extensions import db
    from ..models import KBFile

    return db.session.scalar(db.select(KBFile.version_id).where(KBFile.version_id == version_id)) is not None


def read_file(version_id: int) -> tuple[bytes, str] | None:
    """(content, sha256) of a version's file from the database, on a connection of its own
    (never the request's session, which may be inside a long call)."""
    from ..extensions import db
    from ..models import KBFile

    with db.engine.connect() as conn:
        row = conn.execute(db.select(KBFile.content, KBFile.sha256).where(KBFile.version_id == version_id)).first()
    return (bytes(row[0]), row[1]) if row else None


def local_source(config, version_id: int, stored_path: str | Path) -> Path:
    """A path on this machine holding the file of KBVersion `version_id`.

    The path recorded at upload when this machine took it; else a copy under this
    DATA_DIR/kb/uploads (same name), written from the database if not there yet.
    Raises KBError when neither this machine nor the database has the file.
    """
    stored = Path(stored_path)
    if stored.is_file():
        return stored
    local = upload_dir(config) / stored.name
    if local.is_file():
        return local
    found = read_file(version_id)
    if found is None:
        raise KBError("Файла этой версии базы знаний нет ни на этом сервере, ни в базе данных: загрузите его снова.")
    data, sha = found
    if hashlib.sha256(data).hexdigest() != sha:
        raise KBError("Файл этой версии базы знаний в базе данных повреждён: загрузите его снова.")
    local.parent.mkdir(parents=True, exist_ok=True)
    # Written aside and renamed: a concurrent reader never sees half a file.
    tmp = local.with_name(f".{local.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, local)
    log.info("KB version %s: file copied from the database to %s", version_id, local)
    return local


@contextmanager
def build_lock(config, name: str, wait_s: float = 600.0):
    """Hold the build lock of index `name` on this machine (workers share DATA_DIR).

    Yields True once held, False when `wait_s` passed first. Polls with sleeps, so
    under gevent a waiting greenlet never blocks the worker."""
    with file_lock(Path(config["DATA_DIR"]) / "kb" / "locks" / f"{name}.lock", wait_s) as got:
        yield got
