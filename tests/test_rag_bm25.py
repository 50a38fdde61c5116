"""The embedded store's inverted-index BM25 ranks and scores exactly as Haystack's InMemoryBM25Retriever."""
from pathlib import Path

import pytest
from haystack.components.retrievers.in_memory import InMemoryBM25Retriever
from haystack.document_stores.in_memory import InMemoryDocumentStore

from config import SAMPLE_KB
from metrotest_bot.rag.bm25 import IndexedBM25Retriever
from metrotest_bot.rag.indexer import to_documents
from metrotest_bot.rag.ingest import parse_file
from metrotest_bot.rag.query import analyze_question

SHARED_KB = Path(__file__).resolve().parents[1].parent / "shared" / "kb" / "Метротест_САЙТ.txt"
QUESTIONS = ["во сколько вы открываетесь", "почём пресс на двести тонн", "какая гарантия на оборудование",
             "дайте телефон сервисного отдела", "сколько стоит доставка в казань", "можно заказать пиццу",
             "как к вам проехать от вокзала", "ПИ-2000", "поверка твердомера цена"]


@pytest.mark.parametrize("kb", [SAMPLE_KB, SHARED_KB], ids=["sample", "demo"])
def test_same_documents_and_scores_as_haystack(kb):
    if not kb.exists():
        pytest.skip(f"{kb} is not here")
    docs = to_documents(parse_file(kb), "t")
    store = InMemoryDocumentStore(bm25_tokenization_regex=r"\S+", bm25_algorithm="BM25Plus", shared=False)
    store.write_documents(docs)
    theirs = InMemoryBM25Retriever(document_store=store, top_k=20)
    ours = IndexedBM25Retriever(docs, top_k=20)
    for question in QUESTIONS:
        query = analyze_question(question).search_text() or "∅"
        expected = theirs.run(query=query)["documents"]
        got = ours.run(query=query)["documents"]
        assert [d.id for d in got] == [d.id for d in expected], question
        assert [round(d.score, 9) for d in got] == [round(d.score, 9) for d in expected], question
