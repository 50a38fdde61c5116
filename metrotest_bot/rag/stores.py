"""Two document stores behind one interface, chosen by ELASTICSEARCH_URL.

- EmbeddedStore: Haystack's InMemoryDocumentStore, persisted as JSON under
  DATA_DIR/kb/<name>/ so a restart does not re-index.
- ElasticStore: elasticsearch-haystack's ElasticsearchDocumentStore, one
  index per KB version (`<prefix>-kb-<name>`), with a Russian analyzer in
  the mapping: the `content` field holds our lemmas and goes through a
  Russian stemmer as well; `text` and `section` (the original wording) use
  Elasticsearch's built-in `russian` analyzer, for Kibana.

Both store the same Documents (see `to_document`): `content` = search terms
produced by rag.analysis, meta `text` / `section` / `position` = the passage;
and each passage's sentence embedding (rag/semantic.py) beside them, never
inside a passage (a BM25 hit would carry 512 numbers back on every question):
a `vectors.npz` file, or `kind: vectors` documents that retrieval filters out.
A finished index carries a manifest (passage count, source, analyzer
version); an index without one is incomplete and is never served.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Protocol

from haystack import Document
from haystack.document_stores.types import DuplicatePolicy

from .pacing import STEP, give_way
from .semantic import PassageVectors, from_chunks, to_chunks

MANIFEST_ID = "__manifest__"
VECTORS_ID = "__vectors__"  # + the chunk's number
SCROLL_SIZE = 1000  # passages per request when listing a whole Elasticsearch index


class KBStore(Protocol):
    backend: str  # "embedded" | "elasticsearch"
    name: str

    def exists(self) -> bool: ...  # a complete index (with manifest) is there
    def manifest(self) -> dict | None: ...
    def write(self, documents: list[Document], manifest: dict,
              vectors: PassageVectors | None = None) -> None: ...  # replaces the whole index
    def vectors(self) -> PassageVectors: ...  # the passages' embeddings stored with them (maybe none)
    def documents(self) -> list[Document]: ...  # every passage
    def count(self) -> int: ...
    def bm25_retriever(self, top_k: int) -> Any: ...  # a Haystack retriever component
    def embedding_retriever(self, top_k: int) -> Any: ...
    def delete(self) -> None: ...


# --- embedded ------------------------------------------------------------------

def read_json_array(path: Path) -> list:
    """A JSON array file's items, decoded and parsed a piece at a time. A big KB's documents.json
    is ~80 MB: one decode and one json.loads of it hold the GIL for half a second, and a gevent
    worker loading a KB aside in a thread would freeze every call for as long."""
    import codecs
    import re

    decoder = codecs.getincrementaldecoder("utf-8")()
    parts = []
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            parts.append(decoder.decode(chunk))
    parts.append(decoder.decode(b"", final=True))
    text = "".join(parts)
    del parts
    space = re.compile(r"\s*").match
    raw_decode = json.JSONDecoder().raw_decode  # one item at a time; ValueError on anything malformed
    items: list = []
    pos = space(text, 0).end()
    if not text.startswith("[", pos):
        raise ValueError(f"{path}: not a JSON array")
    pos = space(text, pos + 1).end()
    if text.startswith("]", pos):
        pos += 1
    else:
        while True:
            item, pos = raw_decode(text, pos)
            items.append(item)
            give_way(len(items))
            pos = space(text, pos).end()
            if text.startswith(",", pos):
                pos = space(text, pos + 1).end()
            elif text.startswith("]", pos):
                pos += 1
                break
            else:
                raise ValueError(f"{path}: not a JSON array (at character {pos})")
    if space(text, pos).end() != len(text):
        raise ValueError(f"{path}: data after the JSON array")
    return items


class EmbeddedStore:
    """InMemoryDocumentStore + a JSON file per KB version."""

    backend = "embedded"

    def __init__(self, data_dir: Path, name: str):
        self.name = name
        self.dir = Path(data_dir) / "kb" / "indexes" / name
        self._store = None

    @property
    def _docs_path(self) -> Path:
        return self.dir / "documents.json"

    @property
    def _manifest_path(self) -> Path:
        return self.dir / "manifest.json"

    def exists(self) -> bool:
        return self._manifest_path.exists() and self._docs_path.exists()

    def manifest(self) -> dict | None:
        try:
            return json.loads(self._manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def _new_store(self):
        from haystack.document_stores.in_memory import InMemoryDocumentStore

        # Terms are produced by rag.analysis and joined by spaces: split on spaces only.
        # shared=False: the documents die with this store (tests build many).
        return InMemoryDocumentStore(bm25_tokenization_regex=r"\S+", bm25_algorithm="BM25Plus",
                                     embedding_similarity_function="cosine", shared=False)

    @property
    def store(self):
        if self._store is None:
            store = self._new_store()
            if self._docs_path.exists():
                raw = read_json_array(self._docs_path)
                raw.reverse()
                docs = []
                while raw:  # each dict freed as it is used: freeing 75,000 at once holds the GIL too
                    docs.append(Document.from_dict(raw.pop()))
                    give_way(len(docs))
                for start in range(0, len(docs), STEP):  # in steps, giving way to questions between them
                    store.write_documents(docs[start:start + STEP], policy=DuplicatePolicy.OVERWRITE)
                    give_way(start)
            self._store = store
        return self._store

    @property
    def _vectors_path(self) -> Path:
        return self.dir / "vectors.npz"

    def write(self, documents: list[Document], manifest: dict, vectors: PassageVectors | None = None) -> None:
        store = self._new_store()
        store.write_documents(documents, policy=DuplicatePolicy.OVERWRITE)
        # Written to a temp dir and renamed: a crash never leaves half an index.
        tmp = self.dir.with_name(self.dir.name + f".tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        (tmp / "documents.json").write_text(
            json.dumps([d.to_dict(flatten=False) for d in documents], ensure_ascii=False), encoding="utf-8")
        if vectors is not None:
            import numpy as np

            with (tmp / "vectors.npz").open("wb") as f:
                np.savez(f, ids=np.array(vectors.ids()), vectors=vectors.matrix)
        (tmp / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=1), encoding="utf-8")
        old = self.dir.with_name(self.dir.name + f".old{os.getpid()}")
        if self.dir.exists():
            self.dir.rename(old)
        tmp.rename(self.dir)
        shutil.rmtree(old, ignore_errors=True)
        self._store = store

    def documents(self) -> list[Document]:
        return self.store.filter_documents()

    def vectors(self) -> PassageVectors:
        import numpy as np

        try:
            with np.load(self._vectors_path, allow_pickle=False) as stored:
                return PassageVectors([str(i) for i in stored["ids"]], stored["vectors"].astype(np.float16, copy=False))
        except FileNotFoundError:  # built before vectors were stored: embedded when first needed
            return PassageVectors()

    def count(self) -> int:
        return self.store.count_documents()

    def bm25_retriever(self, top_k: int):
        # Haystack's BM25 scoring, over postings: only passages holding a query term are scored.
        from .bm25 import IndexedBM25Retriever

        return IndexedBM25Retriever(self.documents(), top_k=top_k)

    def embedding_retriever(self, top_k: int):
        from haystack.components.retrievers.in_memory import InMemoryEmbeddingRetriever

        return InMemoryEmbeddingRetriever(document_store=self.store, top_k=top_k)

    def delete(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
        self._store = None


# --- Elasticsearch ---------------------------------------------------------------

def es_index_settings() -> dict:
    """Index settings: the analyzer for our lemma field; BM25 over `content` only."""
    return {
        "analysis": {
            "filter": {
                "ru_stop": {"type": "stop", "stopwords": "_russian_"},
                "ru_stemmer": {"type": "stemmer", "language": "russian"},
            },
            "analyzer": {
                # Terms are already lemmas separated by spaces (see rag.analysis);
                # the Russian stemmer additionally folds derived forms.
                "ru_terms": {"type": "custom", "tokenizer": "whitespace",
                             "filter": ["lowercase", "ru_stop", "ru_stemmer"]},
            },
        },
        # The haystack BM25 retriever's multi_match names no fields: search only `content`.
        "index.query.default_field": ["content"],
    }


def es_mapping(embedding_dim: int | None) -> dict:
    properties: dict[str, Any] = {
        "content": {"type": "text", "analyzer": "ru_terms"},
        "text": {"type": "text", "analyzer": "russian"},
        "section": {"type": "text", "analyzer": "russian", "fields": {"raw": {"type": "keyword"}}},
        "position": {"type": "integer"},
        "kind": {"type": "keyword"},
        "manifest": {"type": "object", "enabled": False},
    }
    if embedding_dim:
        properties["embedding"] = {"type": "dense_vector", "dims": embedding_dim, "index": True,
                                   "similarity": "cosine"}
    return {"properties": properties, "dynamic": False}


class ElasticStore:
    """ElasticsearchDocumentStore, one index per KB version."""

    backend = "elasticsearch"

    def __init__(self, url: str, prefix: str, name: str, embedding_dim: int | None = None):
        self.url = url
        self.name = name
        self.index = f"{prefix}-kb-{name}".lower()
        self.embedding_dim = embedding_dim
        self._store = None

    def _client(self):
        from elasticsearch import Elasticsearch

        return Elasticsearch(self.url, request_timeout=30)

    @property
    def store(self):
        if self._store is None:
            from haystack_integrations.document_stores.elasticsearch import ElasticsearchDocumentStore

            self._store = ElasticsearchDocumentStore(hosts=self.url, index=self.index,
                                                     custom_mapping=es_mapping(self.embedding_dim),
                                                     request_timeout=30)
        return self._store

    def exists(self) -> bool:
        return self.manifest() is not None

    def manifest(self) -> dict | None:
        from elasticsearch import NotFoundError

        try:
            hit = self._client().get(index=self.index, id=MANIFEST_ID)
        except NotFoundError:
            return None
        return (hit.get("_source") or {}).get("manifest")

    def write(self, documents: list[Document], manifest: dict, vectors: PassageVectors | None = None) -> None:
        client = self._client()
        client.indices.delete(index=self.index, ignore_unavailable=True)
        # Created here with settings (the analyzer); the haystack store finds it existing.
        client.indices.create(index=self.index, settings=es_index_settings(),
                              mappings=es_mapping(self.embedding_dim))
        self._store = None
        self.store.write_documents(documents, policy=DuplicatePolicy.OVERWRITE, refresh=True)
        # Unmapped fields (the mapping is not dynamic): kept in _source, not indexed; Kibana sees the kind.
        for i, chunk in enumerate(to_chunks(vectors) if vectors is not None else []):
            client.index(index=self.index, id=f"{VECTORS_ID}{i}", document={"kind": "vectors", **chunk})
        # Every shard refreshed before the manifest says the index is complete: a machine that sees the
        # manifest finds every chunk of vectors too (the manifest's own refresh covers its shard only).
        client.indices.refresh(index=self.index)
        # The manifest goes last: its presence marks the index complete.
        client.index(index=self.index, id=MANIFEST_ID, document={"kind": "manifest", "manifest": manifest},
                     refresh=True)

    def documents(self) -> list[Document]:
        """Every passage, read with the scroll API a thousand at a time.

        (The haystack store's filter_documents pages with from/size at
        Elasticsearch's default of 10 hits per request and stops at the
        10,000 hits Elasticsearch counts by default: a bigger KB would be cut.)"""
        from elasticsearch.helpers import scan

        hits = scan(self._client(), index=self.index, size=SCROLL_SIZE, scroll="2m",
                    query={"query": {"bool": {"filter": [{"term": {"kind": "passage"}}]}}})
        # _source is what the haystack store wrote: Document.to_dict() of each passage.
        return [Document.from_dict({**hit["_source"], "id": hit["_id"]}) for hit in hits]

    def vectors(self) -> PassageVectors:
        from elasticsearch.helpers import scan

        hits = scan(self._client(), index=self.index, size=10, scroll="2m",
                    query={"query": {"bool": {"filter": [{"term": {"kind": "vectors"}}]}}})
        return from_chunks(hit["_source"] for hit in hits)

    def count(self) -> int:
        return self.store.count_documents_by_filter({"field": "kind", "operator": "==", "value": "passage"})

    def bm25_retriever(self, top_k: int):
        from haystack_integrations.components.retrievers.elasticsearch import ElasticsearchBM25Retriever

        # Our terms are exact lemmas: no fuzzy matching. The manifest is no passage.
        return ElasticsearchBM25Retriever(document_store=self.store, top_k=top_k, fuzziness="0",
                                          filters={"field": "kind", "operator": "==", "value": "passage"})

    def embedding_retriever(self, top_k: int):
        from haystack_integrations.components.retrievers.elasticsearch import ElasticsearchEmbeddingRetriever

        return ElasticsearchEmbeddingRetriever(document_store=self.store, top_k=top_k,
                                               filters={"field": "kind", "operator": "==", "value": "passage"})

    def delete(self) -> None:
        self._client().indices.delete(index=self.index, ignore_unavailable=True)
        self._store = None


def open_store(config, name: str, embedding_dim: int | None = None) -> KBStore:
    """The store for KB index `name` on the configured backend."""
    url = config.get("ELASTICSEARCH_URL")
    if url:
        return ElasticStore(url, config["ELASTICSEARCH_PREFIX"], name, embedding_dim)
    return EmbeddedStore(Path(config["DATA_DIR"]), name)
