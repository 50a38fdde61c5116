"""The answer engine: one per app, follows the KB version in force.

Which KB is served: the active KBVersion row if there is one (its index
`v<id>`), else the KB_PATH file (index `default-<sha>`; first start).
Every SHARED_STATE_TTL seconds a request re-reads the active row, so a KB
upload or rollback made on any worker or machine is served by every worker
within seconds, without a restart. An index found persisted is loaded, not
rebuilt; a missing one is built from its source file.
"""
from __future__ import annotations

import hashlib
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from . import analysis
from .answer import Answer
from .errors import KBError
from .indexer import build_index
from .pipeline import KBStats, build_pipeline, run_pipeline
from .stores import open_store
from .types import CallerContext, Passage

log = logging.getLogger(__name__)


@dataclass
class Target:
    name: str  # index name
    source: Path  # KB file it is built from
    version_id: int | None  # KBVersion id, None for the KB_PATH file


class LoadedIndex:
    """A KB index ready to serve: store, term stats and its retrieval pipeline."""

    def __init__(self, target: Target, store, manifest: dict):
        self.target = target
        self.store = store
        self.manifest = manifest
        documents = store.documents()
        self.count = len(documents)
        self.stats = KBStats(documents)
        self.pipeline = build_pipeline(store, self.stats)


_file_sha_cache: dict[tuple, str] = {}


def file_sha(path: Path) -> str:
    st = path.stat()
    key = (str(path), st.st_mtime_ns, st.st_size)
    sha = _file_sha_cache.get(key)
    if sha is None:
        sha = hashlib.sha256(path.read_bytes()).hexdigest()
        _file_sha_cache[key] = sha
    return sha


def default_index_name(kb_path: Path) -> str:
    """Index of the KB_PATH file: named by content, so an edited file gets a new index."""
    return f"default-{file_sha(kb_path)[:12]}"


def version_index_name(version_id: int) -> str:
    return f"v{version_id}"


def active_version(app) -> tuple[int, str] | None:
    """(id, stored_path) of the active KBVersion, read on a connection of its own
    (never the request's session, which may be inside a long call)."""
    from ..extensions import db
    from ..models import KBVersion

    with app.app_context():
        with db.engine.connect() as conn:
            row = conn.execute(
                db.select(KBVersion.id, KBVersion.stored_path)
                .where(KBVersion.active.is_(True)).order_by(KBVersion.activated_at.desc(), KBVersion.id.desc())
                .limit(1)
            ).first()
    return (row[0], row[1]) if row else None


class Engine:
    def __init__(self, app):
        self.app = app
        self.config = app.config
        self._lock = threading.RLock()
        self._index: LoadedIndex | None = None
        self._checked_at = float("-inf")
        self._failed: dict[str, float] = {}  # index name → when loading it last failed

    # --- which KB ------------------------------------------------------------------

    def target(self) -> Target:
        """The KB that should be served now (reads the database)."""
        try:
            active = active_version(self.app)
        except Exception:  # no table yet (fresh DB) or the database is briefly down
            log.debug("active KB version unknown", exc_info=True)
            active = None
            if self._index is not None:
                return self._index.target
        if active:
            return Target(version_index_name(active[0]), Path(active[1]), active[0])
        kb_path = Path(self.config["KB_PATH"])
        return Target(default_index_name(kb_path), kb_path, None)

    def _open(self, target: Target, rebuild: bool = False, progress=None) -> LoadedIndex:
        store = open_store(self.config, target.name)
        manifest = None if rebuild else store.manifest()
        if manifest is None or manifest.get("analyzer") != analysis.ANALYZER_VERSION:
            log.info("building KB index %s from %s", target.name, target.source)
            try:
                build_index(self.config, target.source, target.name, progress=progress)
            except OSError:
                # Another worker finished the same index a moment earlier: use theirs.
                if (store.manifest() or {}).get("analyzer") != analysis.ANALYZER_VERSION:
                    raise
            manifest = store.manifest() or {}
            if target.version_id is None:
                self._drop_stale_defaults(target.name)
        return LoadedIndex(target, store, manifest)

    def _drop_stale_defaults(self, keep: str) -> None:
        if self.config.get("ELASTICSEARCH_URL"):
            return  # other machines may still serve them; Elasticsearch indexes are cheap to keep
        root = Path(self.config["DATA_DIR"]) / "kb" / "indexes"
        for path in root.glob("default-*"):
            if path.name != keep and path.is_dir():
                open_store(self.config, path.name).delete()

    def current(self) -> LoadedIndex | None:
        """The loaded index in force, re-checked at most every SHARED_STATE_TTL seconds."""
        ttl = float(self.config.get("SHARED_STATE_TTL", 2.0))
        if self._index is not None and time.monotonic() - self._checked_at < ttl:
            return self._index
        with self._lock:
            if self._index is not None and time.monotonic() - self._checked_at < ttl:
                return self._index
            try:
                target = self.target()
            except (OSError, KBError) as exc:
                log.error("KB file unavailable: %s", exc)
                self._checked_at = time.monotonic()
                return self._index
            if self._index is None or self._index.target.name != target.name:
                failed_at = self._failed.get(target.name)
                if failed_at is None or time.monotonic() - failed_at > 30:
                    try:
                        self._index = self._open(target)
                        self._failed.pop(target.name, None)
                    except Exception as exc:  # keep serving what we had
                        self._failed[target.name] = time.monotonic()
                        log.exception("cannot load KB index %s: %s", target.name, exc)
            self._checked_at = time.monotonic()
            return self._index

    def refresh(self) -> None:
        """Re-check the KB in force on the next request (after an activation)."""
        self._checked_at = float("-inf")

    def reindex(self, progress=None, if_needed: bool = False) -> tuple[LoadedIndex, bool]:
        """Rebuild the index of the KB in force. Returns (index, built)."""
        with self._lock:
            target = self.target()
            store = open_store(self.config, target.name)
            manifest = store.manifest()
            needed = manifest is None or manifest.get("analyzer") != analysis.ANALYZER_VERSION
            self._index = self._open(target, rebuild=needed or not if_needed, progress=progress)
            self._checked_at = time.monotonic()
            return self._index, (needed or not if_needed)

    # --- the contract -----------------------------------------------------------------

    def passage_count(self) -> int:
        index = self.current()
        return index.count if index else 0

    def passages(self) -> list[Passage]:
        """Every passage of the KB in force, in file order (score 0): for the admin's KB page."""
        index = self.current()
        if index is None:
            return []
        docs = sorted(index.store.documents(), key=lambda d: d.meta.get("position", 0))
        return [Passage(id=d.id, text=d.meta.get("text", ""), section=d.meta.get("section", ""), score=0.0)
                for d in docs]

    def kb_info(self) -> dict:
        """What is served: index name, KBVersion id (None: the KB_PATH file), source file, manifest."""
        index = self.current()
        if index is None:
            return {}
        return {"index": index.target.name, "version_id": index.target.version_id,
                "source": str(index.target.source), **index.manifest}

    def backend_name(self) -> str:
        return "elasticsearch" if self.config.get("ELASTICSEARCH_URL") else "embedded"

    def retrieve(self, question: str) -> tuple[list[Passage], bool, float]:
        """(passages best first, answered, retrieval_ms)."""
        started = time.monotonic()
        index = self.current()
        passages, answered = [], False
        if index is not None and not analysis.analyze_question(question).is_empty():
            docs, answered = run_pipeline(index.pipeline, question)
            passages = [Passage(id=d.id, text=d.meta.get("text", ""), section=d.meta.get("section", ""),
                                score=float(d.score or 0.0)) for d in docs]
        return passages, answered, (time.monotonic() - started) * 1000

    def answer(self, question: str, settings, caller: CallerContext | None = None) -> Answer:
        started = time.monotonic()
        passages, answered, retrieval_ms = self.retrieve(question)
        index = self._index
        return Answer(question=question, passages=passages, answered=answered, retrieval_ms=retrieval_ms,
                      started=started, settings=settings, caller=caller, config=self.config,
                      stats=index.stats if index else None)
