"""One contract for both document stores: embedded (InMemoryDocumentStore persisted under
DATA_DIR) and Elasticsearch. The Elasticsearch run needs a server at ELASTICSEARCH_URL."""
import os
import uuid

import numpy as np
import pytest

from config import DEFAULTS
from metrotest_bot.bot_settings import BotSettings
from metrotest_bot.rag import get_engine, semantic
from metrotest_bot.rag.indexer import build_index
from metrotest_bot.rag.pipeline import build_pipeline, run_pipeline
from metrotest_bot.rag.stats import KBStats
from metrotest_bot.rag.stores import open_store
from tests.support.apps import dispose, make_app
from tests.support.kb_samples import THREE_SECTIONS as KB


@pytest.fixture(params=["embedded", "elasticsearch"])
def backend(request, tmp_path):
    """Config overrides selecting the backend, and cleanup of what the test created."""
    if request.param == "elasticsearch":
        url = os.environ.get("ELASTICSEARCH_URL")
        if not url:
            pytest.skip("ELASTICSEARCH_URL is not set")
        prefix = f"mt-test-{uuid.uuid4().hex[:8]}"
        yield {"ELASTICSEARCH_URL": url, "ELASTICSEARCH_PREFIX": prefix}
        from elasticsearch import Elasticsearch

        Elasticsearch(url).indices.delete(index=f"{prefix}-*", ignore_unavailable=True, allow_no_indices=True)
    else:
        yield {"ELASTICSEARCH_URL": None}


@pytest.fixture
def kb_file(tmp_path):
    path = tmp_path / "kb.txt"
    path.write_text(KB, encoding="utf-8")
    return path


def config_for(tmp_path, backend):
    """The declared defaults, as an app's config has them, with this test's DATA_DIR and backend."""
    return {**DEFAULTS, "DATA_DIR": tmp_path, **backend}


def test_write_read_count_delete(tmp_path, backend, kb_file, monkeypatch):
    monkeypatch.setattr(semantic, "CHUNK", 2)  # the vectors stored in more than one chunk
    config = config_for(tmp_path, backend)
    store = open_store(config, "v1")
    assert not store.exists() and store.manifest() is None
    result = build_index(config, kb_file, "v1")
    assert result.n_passages == 3

    store = open_store(config, "v1")  # a fresh handle, as another process would open it
    assert store.exists()
    manifest = store.manifest()
    assert manifest["n_passages"] == 3 and manifest["filename"] == "kb.txt"
    assert store.count() == 3
    docs = sorted(store.documents(), key=lambda d: d.meta["position"])
    assert [d.meta["section"] for d in docs] == ["Доставка", "Прессы", "Режим работы"]
    assert docs[1].meta["text"].startswith("Пресс ПИ-2000")

    # Each passage's embedding is stored beside it (not in it: retrieval never carries it back).
    vectors = store.vectors()
    assert set(vectors.rows) == {d.id for d in docs}
    expected = semantic.embed([d.meta["text"] for d in docs])
    assert all(np.allclose(vectors.of(d).astype(np.float32), e, atol=2e-3) for d, e in zip(docs, expected))
    assert not vectors._late  # every one read from the store, none embedded now

    store.delete()
    assert not open_store(config, "v1").exists()


def test_indexes_of_versions_are_separate(tmp_path, backend, kb_file):
    config = config_for(tmp_path, backend)
    other = tmp_path / "other.txt"
    other.write_text("=== Гарантия ===\nГарантия на прессы — 24 месяца.\n", encoding="utf-8")
    build_index(config, kb_file, "v1")
    build_index(config, other, "v2")
    assert open_store(config, "v1").count() == 3
    assert open_store(config, "v2").count() == 1
    build_index(config, other, "v1")  # rebuilding replaces, never appends
    assert open_store(config, "v1").count() == 1


@pytest.mark.parametrize("question,expected", [
    ("доставку в другой город", "транспортной компанией"),
    ("сколько стоит пресс на две тысячи килоньютон", "920 000"),
    ("до скольки вы работаете", "17:30"),
])
def test_retrieval_pipeline_handles_word_forms(tmp_path, backend, kb_file, question, expected):
    config = config_for(tmp_path, backend)
    build_index(config, kb_file, "v1")
    store = open_store(config, "v1")
    pipe = build_pipeline(store, KBStats(store.documents(), store.vectors()))
    found = run_pipeline(pipe, question)
    docs, answered = found.documents, found.answered
    assert answered
    assert all(d.meta["kind"] == "passage" for d in docs)  # never the manifest or a chunk of vectors
    assert expected in docs[0].meta["text"]


def test_engine_serves_from_the_backend(tmp_path, database_url, backend, kb_file):
    app = make_app(tmp_path / "data", database_url, KB_PATH=kb_file, **backend)
    try:
        with app.app_context():
            engine = get_engine()
            assert engine.backend_name() == ("elasticsearch" if backend.get("ELASTICSEARCH_URL") else "embedded")
            assert engine.passage_count() == 3
            stream = engine.answer("почём доставка по екатеринбургу", BotSettings())
            assert "бесплатная" in stream.text()
            refusal = engine.answer("какая погода на марсе", BotSettings())
            assert refusal.text() and refusal.answered is False
    finally:
        dispose(app)
