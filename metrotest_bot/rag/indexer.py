"""Build a KB index: file → passages → analysed Documents → a store, with progress."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from haystack import Document

from . import analysis
from .ingest import ParsedKB, parse_file
from .semantic import passage_vectors
from .stores import open_store
from .upload_limits import IngestLimits

Progress = Callable[[int, int], None]  # (done, total)


@dataclass
class BuildResult:
    name: str  # index name (directory under DATA_DIR/kb/indexes, or Elasticsearch index suffix)
    n_passages: int
    n_sections: int
    encoding: str | None
    sha256: str
    seconds: float


def passage_terms(section: str, text: str) -> str:
    """Search terms of one passage; its section title counts as part of it."""
    return " ".join(analysis.index_terms(section) + analysis.section_markers(section) + analysis.index_terms(text))


def to_documents(parsed: ParsedKB, name: str, progress: Progress | None = None) -> list[Document]:
    docs = []
    total = len(parsed.passages)
    for i, p in enumerate(parsed.passages):
        docs.append(Document(
            id=f"{name}:{p.position}",
            content=passage_terms(p.section, p.text),
            meta={"kind": "passage", "text": p.text, "section": p.section, "position": p.position},
        ))
        if progress and (i % 10 == 0 or i == total - 1):
            progress(i + 1, total)
    return docs


def build_index(config, source: str | Path, name: str, progress: Progress | None = None,
                parsed: ParsedKB | None = None) -> BuildResult:
    """Parse `source` and write its index `name` on the configured backend.

    Raises KBError (Russian message) when the file is unusable; the index
    named `name` is then untouched. `progress(done, total)` is called as
    passages are analysed.
    """
    started = time.monotonic()
    parsed = parsed or parse_file(source, IngestLimits.from_config(config))  # the configured limits, KB_PATH too
    docs = to_documents(parsed, name, progress)
    manifest = {
        "name": name, "source": str(source), "filename": parsed.filename, "sha256": parsed.sha256,
        "encoding": parsed.encoding, "n_passages": len(docs), "n_sections": parsed.n_sections,
        "analyzer": analysis.ANALYZER_VERSION, "built_at": time.time(),
    }
    # Embedded here, once per KB version, so that a question costs one embedding, not four.
    open_store(config, name).write(docs, manifest, passage_vectors(docs))
    return BuildResult(name=name, n_passages=len(docs), n_sections=parsed.n_sections, encoding=parsed.encoding,
                       sha256=parsed.sha256, seconds=time.monotonic() - started)
