"""Retrieval and offline answers over the demo KB and its dev questions.

KB: ../shared/kb/Метротест_САЙТ.txt; questions: ../shared/kb/eval_dev.jsonl
(each answerable one lists `any_of` strings, one of which must appear).
Offline (no API key), embedded store, in a fresh DATA_DIR.

Measured:
- recall@3: an answerable question counts when one of its `any_of` strings is
  in one of the top three passages;
- answer holds the fact: the offline answer contains one of them;
- false refusals: answerable questions the relevance gate refused;
- unanswerable refused: questions without an answer that were refused;
- p50/p95 retrieval time per question (engine.retrieve, warm);
- index time (parse + analyse + write) and the process's resident memory.

`python -m bench retrieval` runs only this section; `--compare` (direct run:
`python -m bench.retrieval --compare`) adds the alternatives measured while
choosing the design (plain Haystack BM25 over sections, without colloquial
expansions, etc.).
"""
from __future__ import annotations

import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO / ".." / "shared"
KB = SHARED / "kb" / "Метротест_САЙТ.txt"
EVAL = SHARED / "kb" / "eval_dev.jsonl"
# Our own paraphrases of the same kind (written before measuring, never tuned on):
# a stand-in for the held-out set.
PARAPHRASES = Path(__file__).resolve().parent / "retrieval_paraphrases.jsonl"

TITLE = "Retrieval and offline answers (eval_dev over Метротест_САЙТ.txt)"

TARGETS = {"recall@3": 0.95, "answer holds the fact": 0.85, "false refusals": 0.05, "unanswerable refused": 0.9}


def load_eval(path: Path = EVAL) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _hit(strings, texts) -> bool:
    return any(s in t for s in strings for t in texts)


def _pct(values, q):
    values = sorted(values)
    if not values:
        return 0.0
    k = max(0, min(len(values) - 1, round(q / 100 * (len(values) - 1))))
    return values[k]


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_app(data_dir: Path, **overrides):
    os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")
    sys.path.insert(0, str(REPO))
    from config import TestConfig
    from metrotest_bot import create_app
    from metrotest_bot.extensions import db

    app = create_app(TestConfig(DATA_DIR=data_dir, KB_PATH=KB, SQLALCHEMY_DATABASE_URI=f"sqlite:///{data_dir}/b.db",
                                **overrides))
    with app.app_context():
        db.create_all()
    return app


def evaluate(retrieve, answer=None, questions=None) -> dict:
    """retrieve(q) -> (passage texts best first, answered); answer(q) -> offline text."""
    questions = questions or load_eval()
    answerable = [q for q in questions if q.get("answerable")]
    unanswerable = [q for q in questions if not q.get("answerable")]
    recall = holds = false_ref = refused = 0
    times = []
    misses = []
    for q in questions:
        t0 = time.perf_counter()
        texts, answered = retrieve(q["question"])
        times.append((time.perf_counter() - t0) * 1000)
        if q.get("answerable"):
            if _hit(q["any_of"], texts[:3]):
                recall += 1
            else:
                misses.append(("recall", q["question"]))
            if not answered:
                false_ref += 1
                misses.append(("refused", q["question"]))
            if answer is not None:
                text = answer(q["question"])
                if _hit(q["any_of"], [text]):
                    holds += 1
                else:
                    misses.append(("answer", q["question"]))
        elif not answered:
            refused += 1
        else:
            misses.append(("not refused", q["question"]))
    n = len(answerable) or 1
    return {
        "recall@3": recall / n,
        "answer holds the fact": holds / n if answer else None,
        "false refusals": false_ref / n,
        "unanswerable refused": refused / (len(unanswerable) or 1),
        "p50 ms": _pct(times, 50),
        "p95 ms": _pct(times, 95),
        "n": len(questions),
        "misses": misses,
    }


def engine_eval(questions=None, **overrides):
    """Our engine, as the service runs it."""
    with tempfile.TemporaryDirectory() as tmp:
        rss_before = rss_mb()
        app = make_app(Path(tmp), **overrides)
        with app.app_context():
            from metrotest_bot.bot_settings import BotSettings
            from metrotest_bot.rag import get_engine

            engine = get_engine()
            t0 = time.perf_counter()
            index, _ = engine.reindex()
            index_s = time.perf_counter() - t0
            settings = BotSettings()
            engine.retrieve("прогрев")  # warm caches (first pipeline run)

            def retrieve(q):
                passages, answered, _ = engine.retrieve(q)
                return [p.text for p in passages], answered

            def answer(q):
                return engine.answer(q, settings).text()

            result = evaluate(retrieve, answer, questions)
            result.update(index_s=index_s, passages=index.count, rss_mb=rss_mb(), rss_before=rss_before)
            return result


def baseline_eval():
    """Reference: Haystack's InMemoryBM25Retriever, default settings, section-sized passages."""
    from haystack import Document
    from haystack.components.retrievers.in_memory import InMemoryBM25Retriever
    from haystack.document_stores.in_memory import InMemoryDocumentStore

    sys.path.insert(0, str(REPO))
    from metrotest_bot.rag.ingest import parse_file

    parsed = parse_file(KB)
    store = InMemoryDocumentStore(shared=False)
    store.write_documents([Document(content=f"{s.title}\n" + "\n".join(s.paragraphs)) for s in parsed.sections])
    retriever = InMemoryBM25Retriever(document_store=store, top_k=3)

    def retrieve(q):
        docs = retriever.run(query=q)["documents"]
        return [d.content for d in docs], bool(docs)

    return evaluate(retrieve)


def _fmt(v):
    if v is None:
        return "—"
    return f"{v:.2f}" if isinstance(v, float) else str(v)


def run(compare: bool = False) -> str:
    if not KB.exists() or not EVAL.exists():
        return f"Skipped: {KB} or {EVAL} is not here."
    ours = engine_eval()
    rows = [("recall@3", "≥ 0.95"), ("answer holds the fact", "≥ 0.85"), ("false refusals", "≤ 0.05"),
            ("unanswerable refused", "≥ 0.9")]
    base = baseline_eval()
    out = [
        f"{ours['n']} questions ({sum(1 for q in load_eval() if q.get('answerable'))} answerable), "
        f"{ours['passages']} passages; offline, embedded store, one process.",
        "",
        "| measure | target | this engine | Haystack BM25 default, section passages |",
        "|---|---|---|---|",
    ]
    for key, target in rows:
        out.append(f"| {key} | {target} | {_fmt(ours[key])} | {_fmt(base[key])} |")
    out += [
        f"| retrieval p50 / p95, ms | — | {ours['p50 ms']:.1f} / {ours['p95 ms']:.1f} | "
        f"{base['p50 ms']:.1f} / {base['p95 ms']:.1f} |",
        "",
        f"- Index build (parse, analyse, persist): {ours['index_s']:.2f} s for {ours['passages']} passages.",
        f"- Resident memory (max RSS of the bench process after loading the engine): {ours['rss_mb']:.0f} MB "
        f"(before creating the app: {ours['rss_before']:.0f} MB).",
        "- The baseline has no relevance gate (it always answers), so its refusal figures are not meaningful.",
    ]
    if ours["misses"]:
        out += ["", "Misses of this engine (kind: question):", ""]
        out += [f"- {kind}: {q}" for kind, q in ours["misses"]]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    print(run(compare="--compare" in sys.argv))
