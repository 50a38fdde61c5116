"""KB versions: primitives for the admin panel's upload and rollback.

The admin code owns the KBVersion rows and the uploaded files; these
functions do the KB side:

1. `validate_kb_file(path)` — parse the file, raising KBError with a Russian
   message for an empty, binary or unsupported file (nothing is written).
2. `build_version(version_id, path, progress)` — build the index of that
   file under its own name (`v<id>`: DATA_DIR/kb/indexes/v<id>/ or the
   Elasticsearch index `<prefix>-kb-v<id>`), never touching the index in
   force. Returns a BuildResult (passages, sections, encoding, seconds).
3. `activate_version(version_id)` — mark that row the only active one and
   commit. Every worker's engine re-reads the active row at most
   SHARED_STATE_TTL seconds later and switches to the version's index; this
   worker switches at once. Rollback is `activate_version(older_id)`.
   A machine without the version's index builds it from the file's bytes kept
   in the database (`keep_file`, rag/sources.py), then switches.

Typical background job:

    row = KBVersion(filename=..., stored_path=..., status="indexing"); commit
    try:
        result = build_version(row.id, row.stored_path, progress=lambda done, total: ...)
    except KBError as exc:
        row.status, row.error = "failed", exc.message   # the KB in force stays
    else:
        row.status, row.n_passages, row.n_sections = "ready", result.n_passages, result.n_sections
        activate_version(row.id)
"""
from __future__ import annotations

from pathlib import Path

from flask import current_app

from .engine import version_index_name
from .errors import KBError
from .indexer import BuildResult, Progress, build_index
from .ingest import ParsedKB, parse_file
from .upload_limits import IngestLimits
from .sources import forget_file, has_file, keep_file  # noqa: F401  (the admin's upload uses them)
from .stores import open_store


def validate_kb_file(path: str | Path) -> ParsedKB:
    """Parse a KB file; KBError(message) when it cannot serve as a KB."""
    return parse_file(path)


def build_version(version_id: int, path: str | Path, progress: Progress | None = None,
                  config=None) -> BuildResult:
    """Build the index of KB file `path` for KBVersion `version_id` (needs an app context
    unless `config` is given). Raises KBError; the active KB is never affected."""
    config = config if config is not None else current_app.config
    limits = IngestLimits.from_config(config)
    budget = limits.budget()  # reading and indexing together
    parsed = parse_file(path, limits, budget)

    def step(done: int, total: int) -> None:
        budget.check()  # a KBError out of the build: the job fails, the KB in force stays
        if progress is not None:
            progress(done, total)

    return build_index(config, path, version_index_name(version_id), progress=step, parsed=parsed)


def activate_version(version_id: int) -> None:
    """Make KBVersion `version_id` the KB in force (its index must be built)."""
    from ..extensions import db
    from ..models import KB_STATUS_READY, KBVersion
    from ..timeutil import utcnow

    row = db.session.get(KBVersion, version_id)
    if row is None:
        raise KBError("Такой версии базы знаний нет.")
    # Built here, or buildable here from the database (every worker builds what it lacks).
    if not open_store(current_app.config, version_index_name(version_id)).exists() and not has_file(version_id):
        raise KBError("Индекс этой версии базы знаний не построен: загрузите файл заново.")
    db.session.execute(db.update(KBVersion).where(KBVersion.id != version_id).values(active=False))
    row.active = True
    row.status = KB_STATUS_READY
    row.activated_at = utcnow()
    db.session.commit()
    from . import get_engine

    get_engine().refresh()


def delete_version_index(version_id: int) -> None:
    """Drop a version's index (e.g. of a failed or deleted upload). Not for the active one."""
    open_store(current_app.config, version_index_name(version_id)).delete()
