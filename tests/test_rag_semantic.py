"""The gate's semantic side (rag/semantic.py): the real model in its wheel, passages embedded when their
index is built and stored with it, one embedding per question on the call path."""
import numpy as np
import pytest
from haystack import Document

from config import DEFAULTS
from metrotest_bot.rag import analysis, semantic
from metrotest_bot.rag.engine import LoadedIndex, Target
from metrotest_bot.rag.indexer import build_index
from metrotest_bot.rag.query import analyze_question
from metrotest_bot.rag.scoring import FEATURES, features, load_gate
from metrotest_bot.rag.stats import KBStats
from metrotest_bot.rag.stores import open_store
from tests.support.kb_samples import THREE_SECTIONS as KB


@pytest.fixture
def built(tmp_path):
    path = tmp_path / "kb.txt"
    path.write_text(KB, encoding="utf-8")
    config = {**DEFAULTS, "DATA_DIR": tmp_path, "ELASTICSEARCH_URL": None}
    build_index(config, path, "v1")
    return config, path


def test_vectors_are_unit_length_and_nearer_for_the_same_meaning():
    v = semantic.embed(["сколько стоит доставка в другой город",
                        "цена отправки транспортной компанией в регионы",
                        "какая завтра погода", ""])
    assert v.shape == (4, semantic.DIM) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v[:3], axis=1), 1.0, atol=1e-4)
    assert not v[3].any()  # an empty text: a zero row, not a model error
    assert v[0] @ v[1] > v[0] @ v[2] + 0.1


def test_the_index_stores_every_passages_vector(built):
    config, _ = built
    store = open_store(config, "v1")
    docs = store.documents()
    stored = store.vectors()
    assert len(stored) == len(docs) == 3
    assert set(stored.rows) == {d.id for d in docs}
    fresh = semantic.embed([d.meta["text"] for d in docs])
    for doc, vector in zip(docs, fresh):
        assert np.allclose(stored.of(doc).astype(np.float32), vector, atol=2e-3)  # float16 on disk
    assert not stored._late  # every one read from the index, none embedded now


def test_a_damaged_vectors_file_fails_the_load_not_the_questions(built):
    config, path = built
    store = open_store(config, "v1")
    with np.load(store.dir / "vectors.npz") as stored:
        ids, vectors = stored["ids"], stored["vectors"]
    with (store.dir / "vectors.npz").open("wb") as f:
        np.savez(f, ids=ids, vectors=vectors[:-1])  # a row short
    with pytest.raises(ValueError, match="stored passage vectors"):
        LoadedIndex(Target("v1", path, None), store, store.manifest())


def test_a_question_costs_one_embedding_on_the_call_path(built, monkeypatch):
    config, path = built
    store = open_store(config, "v1")
    loaded = LoadedIndex(Target("v1", path, None), store, store.manifest())
    embedded = []
    real = semantic.embed
    monkeypatch.setattr(semantic, "embed", lambda texts: embedded.append(list(texts)) or real(texts))
    from metrotest_bot.rag.pipeline import run_pipeline

    found = run_pipeline(loaded.pipeline, "почём пресс на две тысячи килоньютон")
    assert found.answered and "920 000" in found.documents[0].meta["text"]
    assert embedded == [["почём пресс на 2000 килоньютон"]]  # the passages' vectors were stored


def test_an_index_built_before_vectors_still_answers(built):
    config, path = built
    store = open_store(config, "v1")
    (store.dir / "vectors.npz").unlink()
    assert len(store.vectors()) == 0
    loaded = LoadedIndex(Target("v1", path, None), store, store.manifest())
    from metrotest_bot.rag.pipeline import run_pipeline

    found = run_pipeline(loaded.pipeline, "до скольки работает офис")
    assert found.answered and "17:30" in found.documents[0].meta["text"]
    row = features(found.query, found.documents, loaded.stats)
    assert row["sem_top"] > 0.2  # the passage was embedded when first needed


@pytest.fixture
def office_hours(built):
    """The three-section KB's statistics, its passages in file order, a question about the office's hours and
    that question's cosine to each passage, computed afresh."""
    config, _ = built
    store = open_store(config, "v1")
    stats = KBStats(store.documents(), store.vectors())
    docs = sorted(store.documents(), key=lambda d: d.meta["position"])
    parsed = analyze_question("до которого часа открыт офис")
    cos = semantic.embed([parsed.question])[0] @ semantic.embed([d.meta["text"] for d in docs]).T
    return stats, docs, parsed, cos


def test_semantic_features_and_the_shipped_gate_uses_them(office_hours):
    stats, docs, parsed, cos = office_hours
    row = features(parsed, [docs[2], docs[0], docs[1]], stats)
    assert row["sem_top"] == pytest.approx(cos[2], abs=3e-3)
    assert row["sem_max3"] == pytest.approx(cos.max(), abs=3e-3)
    assert row["sem_gap"] == pytest.approx(cos[2] - max(cos[0], cos[1]), abs=3e-3)
    assert features(parsed, [], stats)["sem_top"] == 0.0
    assert {"sem_top", "sem_max3", "sem_gap"} <= set(FEATURES) and set(load_gate().features) == set(FEATURES)


def test_the_question_is_embedded_with_its_numbers_in_digits():
    assert analysis.written("Сколько стоит машина на пятьдесят килоньютон?") == "сколько стоит машина на 50 килоньютон"
    assert analysis.written("почём пресс на две тысячи кн") == "почём пресс на 2000 кн"
    assert analysis.written("а до какого часа вы открыты") == "а до какого часа вы открыты"
    parsed = analyze_question("сколько стоит машина на пятьдесят килоньютон")
    expected = semantic.embed(["сколько стоит машина на 50 килоньютон"])[0]
    assert np.allclose(semantic.question_vector(parsed), expected, atol=1e-6)


def test_the_question_is_embedded_once_and_equality_ignores_it():
    parsed = analyze_question("сколько стоит пресс")
    first = semantic.question_vector(parsed)
    assert semantic.question_vector(parsed) is first
    assert parsed == analyze_question("сколько стоит пресс")


def test_stored_chunks_round_trip_and_a_broken_one_is_refused():
    ids = [f"kb:{i}" for i in range(2500)]
    matrix = np.random.default_rng(1).standard_normal((2500, semantic.DIM)).astype(np.float16)
    chunks = semantic.to_chunks(semantic.PassageVectors(ids, matrix))
    assert len(chunks) == 3
    back = semantic.from_chunks(list(reversed(chunks)))  # Elasticsearch returns them in any order
    doc = Document(id="kb:1234", content="")
    assert np.array_equal(back.of(doc), matrix[1234])
    with pytest.raises(ValueError):
        semantic.from_chunks([{**chunks[0], "ids": chunks[0]["ids"][:-1]}])


def test_the_ranker_reads_each_candidates_cosine_and_its_gap_to_the_best(office_hours):
    from metrotest_bot.rag.ranking import RANK_FEATURES, candidates, rank_features

    stats, docs, parsed, cos = office_hours
    rows = rank_features(parsed, candidates(parsed, docs, stats), set(), stats)
    sem, gap = RANK_FEATURES.index("sem"), RANK_FEATURES.index("sem_gap")
    assert [row[sem] for row in rows] == pytest.approx(list(cos), abs=3e-3)
    assert [row[gap] for row in rows] == pytest.approx(list(cos - cos.max()), abs=3e-3)
    assert max(row[gap] for row in rows) == 0.0


def test_a_followup_is_compared_with_passages_together_with_the_topic_it_carried(built):
    from metrotest_bot.rag.query import resolve

    config, _ = built
    store = open_store(config, "v1")
    press = next(d for d in store.documents() if "920 000" in d.meta["text"])
    previous = analyze_question("почём пресс пи две тысячи")
    followup = resolve(analyze_question("а в другой город его отправите"), previous)
    assert followup.carried
    own, context = semantic.question_vector(followup), semantic.context_vector(followup)
    assert context is semantic.context_vector(followup)  # embedded once
    vector = semantic.embed([press.meta["text"]])[0]
    assert context @ vector > own @ vector + 0.05  # the topic's words bring the press passage nearer
    lone = analyze_question("до которого часа открыт офис")
    assert semantic.context_vector(lone) is semantic.question_vector(lone)  # no second embedding
