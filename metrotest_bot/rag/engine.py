"""The answer engine: one per app, follows the KB version in force.

Which KB is served: the active KBVersion row if there is one (its index
`v<id>`), else the KB_PATH file (index `default-<sha>`; first start).
Every SHARED_STATE_TTL seconds a request re-reads the active row, so a KB
upload or rollback made on any worker or machine is served by every worker
within seconds, without a restart. An index found persisted is loaded, not
rebuilt; a missing one is built from its source file: for a KB version, the
upload kept in the database (rag/sources.py) when this machine has no copy.
Such a build runs aside (the KB loaded so far keeps answering until the new
index is complete), once per machine: workers sharing a DATA_DIR take turns
through a file lock, and the second finds the index built.
"""
from __future__ import annotations

import hashlib
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from . import analysis, pacing, semantic
from .dialogue import Dialogue
from .answer import Answer
from .errors import KBError
from .indexer import build_index
from .found import Found, find
from .pipeline import build_pipeline
from .stats import KBStats
from .sources import build_lock, local_source
from .stores import open_store
from .types import CallerContext, Passage

log = logging.getLogger(__name__)


INLINE_LOAD_MAX = 2000  # passages of an index loaded in place on a switch; a bigger one loads aside


@dataclass
class Target:
    name: str  # index name
    source: Path  # KB file it is built from (for a version: as recorded at upload, maybe on another machine)
    version_id: int | None  # KBVersion id, None for the KB_PATH file


class LoadedIndex:
    """A KB index ready to serve: store, term stats and its retrieval pipeline."""

    def __init__(self, target: Target, store, manifest: dict):
        self.target = target
        self.store = store
        self.manifest = manifest
        documents = store.documents()
        self.count = len(documents)
        self.stats = KBStats(documents, store.vectors())
        semantic.warm()  # the model loaded here, off the call path, once per process
        self.pipeline = build_pipeline(store, self.stats)

    def retire(self) -> None:
        """Let go of the documents and statistics once no question is using this index any more.

        A pipeline's graph is cyclic (components and their sockets); loaded aside, it was frozen
        (gc.freeze), and the collector never frees frozen cycles: the components' references to the
        store and statistics are dropped here so reference counting frees the bulk."""
        for _, component in list(self.pipeline.walk()):
            vars(component).clear()
        self.pipeline.graph.clear()
        self.store = self.stats = None


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


def off_hub(fn, *args):
    """fn(*args), in a native thread of gevent's pool under gunicorn's gevent worker:
    building an index is seconds of pure CPU that in a greenlet would stall every call."""
    try:
        from gevent import monkey
    except ImportError:
        return fn(*args)
    if not monkey.is_module_patched("threading"):
        return fn(*args)
    import gevent

    return gevent.get_hub().threadpool.apply(fn, args)


# s: how soon the hub gets the GIL back from a load running aside. The question's embedding is ~100 short
# numpy calls, each giving the GIL up and waiting up to an interval for it: at 1 ms a 2 ms embedding took 36.
LOAD_SWITCH_INTERVAL = 0.0001
# An index replaced is retired this long after: no question takes longer on it (retrieval is milliseconds).
RETIRE_AFTER_S = 30.0


def collector_paused(fn, *args):
    """fn(*args), run aside, with the cyclic garbage collector paused and what it made then frozen.

    Loading a big KB makes millions of objects: the collections they trigger (a full one took up
    to half a second) hold the GIL, so every call of a gevent worker stalls though the load runs
    in a thread of its own; frozen (gc.freeze), the loaded index is never scanned by a later
    collection either (gunicorn.conf.py freezes the index loaded at start for the same reason).
    Meanwhile the GIL changes hands every 0.1 ms, not every 5: the hub takes it back after each
    socket, SQLite or numpy call it makes, and each of those waited a full interval. Either way the
    load gives way to the questions answered meanwhile (rag/pacing.py)."""
    import gc
    import sys

    with pacing.aside():
        if not gc.isenabled():  # paused by someone else (another load): leave it to them
            return fn(*args)
        gc.disable()
        interval = sys.getswitchinterval()
        sys.setswitchinterval(min(interval, LOAD_SWITCH_INTERVAL))
        try:
            return fn(*args)
        finally:
            sys.setswitchinterval(interval)
            gc.freeze()
            gc.enable()


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
        self._wanted: str | None = None  # the index the database last said is in force
        self._jobs: dict[str, threading.Thread] = {}  # index name → its build running aside

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

    def _built(self, target: Target) -> dict | None:
        """The manifest of the target's index when it is complete here (this DATA_DIR, or Elasticsearch)
        and built by this analyser; None otherwise."""
        manifest = open_store(self.config, target.name).manifest()
        return manifest if manifest is not None and manifest.get("analyzer") == analysis.ANALYZER_VERSION else None

    def _ready(self, target: Target) -> bool:
        return self._built(target) is not None

    def _quick_to_load(self, target: Target) -> bool:
        """Built here and small enough to load in place (milliseconds), so a switch is immediate."""
        manifest = self._built(target)
        return manifest is not None and int(manifest.get("n_passages") or 0) <= INLINE_LOAD_MAX

    def _source(self, target: Target) -> Path:
        if target.version_id is None:
            return target.source
        with self.app.app_context():
            return local_source(self.config, target.version_id, target.source)

    def _build(self, target: Target, rebuild: bool = False, progress=None, run=lambda fn, *a: fn(*a)) -> None:
        """Build the target's index, unless another worker of this machine has just done so."""
        with build_lock(self.config, target.name) as got:
            if not got:
                raise KBError(f"the index {target.name} is being built by another worker for too long")
            if not rebuild and self._ready(target):
                return
            source = self._source(target)
            log.info("building KB index %s from %s", target.name, source)
            try:
                run(build_index, self.config, source, target.name, progress)
            except OSError:
                # Another machine finished the same (shared) index a moment earlier: use theirs.
                if not self._ready(target):
                    raise
        if target.version_id is None:
            self._drop_stale_defaults(target.name)

    def _open(self, target: Target, rebuild: bool = False, progress=None) -> LoadedIndex:
        if rebuild or not self._ready(target):
            self._build(target, rebuild=rebuild, progress=progress)
        return self._load(target)

    def _load(self, target: Target) -> LoadedIndex:
        store = open_store(self.config, target.name)
        return LoadedIndex(target, store, store.manifest() or {})

    def _build_aside(self, target: Target) -> None:
        """Build and load the target's index in the background; the current index serves meanwhile."""
        job = self._jobs.get(target.name)
        if job is not None and job.is_alive():
            return
        job = threading.Thread(target=self._build_job, args=(target,), name=f"kb-build-{target.name}", daemon=True)
        self._jobs[target.name] = job
        job.start()

    def _build_job(self, target: Target) -> None:
        try:
            if not self._ready(target):
                self._build(target, run=off_hub)
            # Loading is seconds of CPU on a big KB (documents, term statistics, postings): in a native
            # thread, so the worker's calls go on (in a greenlet it would stall every one of them).
            loaded = off_hub(collector_paused, self._load, target)
            with self._lock:
                if self._wanted == target.name:  # still the KB in force (no rollback meanwhile)
                    self._swap(loaded)
                    self._failed.pop(target.name, None)
            log.info("KB index %s built here and in force", target.name)
        except Exception as exc:  # keep serving what we had; tried again in a while
            self._failed[target.name] = time.monotonic()
            log.exception("cannot build KB index %s: %s", target.name, exc)
        finally:
            self._jobs.pop(target.name, None)

    def wait_builds(self, timeout: float = 60.0) -> None:
        """Tests and the CLI: wait for the builds running aside."""
        for job in list(self._jobs.values()):
            job.join(timeout)

    def _drop_stale_defaults(self, keep: str) -> None:
        if self.config.get("ELASTICSEARCH_URL"):
            return  # other machines may still serve them; Elasticsearch indexes are cheap to keep
        root = Path(self.config["DATA_DIR"]) / "kb" / "indexes"
        for path in root.glob("default-*"):
            if path.name != keep and path.is_dir():
                open_store(self.config, path.name).delete()

    def current(self) -> LoadedIndex | None:
        """The loaded index in force, re-checked at most every SHARED_STATE_TTL seconds."""
        ttl = float(self.config["SHARED_STATE_TTL"])
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
            self._wanted = target.name
            if self._index is None or self._index.target.name != target.name:
                failed_at = self._failed.get(target.name)
                if target.name in self._jobs:
                    pass  # being built aside
                elif failed_at is None or time.monotonic() - failed_at > 30:
                    try:
                        if self._index is not None and not self._quick_to_load(target):
                            # A KB to build, or a big one to load, is made ready aside; the one loaded so
                            # far answers meanwhile (a big load in a greenlet would stall every call).
                            self._build_aside(target)
                        else:
                            self._swap(self._open(target))
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
            needed = not self._ready(target)
            self._wanted = target.name
            self._swap(self._open(target, rebuild=needed or not if_needed, progress=progress))
            self._checked_at = time.monotonic()
            return self._index, (needed or not if_needed)

    def _swap(self, loaded: LoadedIndex) -> None:
        """Put an index in force; the one it replaces is retired once the questions on it are done."""
        old, self._index = self._index, loaded
        if old is not None and old is not loaded:
            timer = threading.Timer(RETIRE_AFTER_S, old.retire)
            timer.daemon = True
            timer.start()

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

    def retrieve(self, question: str, previous=None) -> tuple[list[Passage], bool, float]:
        """(the whole question's passages best first, answered offline — by the whole or a part —, retrieval_ms)."""
        found, ms = self.search(question, previous)
        return (found.passages if found else []), bool(found and found.answered), ms

    def search(self, question: str, previous=None) -> tuple["Found | None", float]:
        """Analyse the question once (a follow-up resolved against `previous`, the call's last
        question) and retrieve: (what was found, or None with no KB or no words; retrieval_ms)."""
        started = time.monotonic()
        index = self.current()
        with pacing.question():
            found = find(index.pipeline, question, previous) if index is not None else None
        return found, (time.monotonic() - started) * 1000

    def answer(self, question: str, settings, caller: CallerContext | None = None,
               dialogue: Dialogue | None = None) -> Answer:
        """An answer stream; `dialogue` (the call's memory) resolves follow-ups and is given to the LLM."""
        started = time.monotonic()
        found, retrieval_ms = self.search(question, dialogue.last_query if dialogue else None)
        index = self._index
        return Answer(question=question, found=found, retrieval_ms=retrieval_ms, started=started,
                      settings=settings, caller=caller, config=self.config, stats=index.stats if index else None,
                      dialogue=dialogue)

