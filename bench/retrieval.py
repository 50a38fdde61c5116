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
                    ranked = wide.run(documents=docs, parsed=parsed_q["parsed"])["documents"]
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


def run(compare: bool = True) -> str:
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
        f"- Resident memory of the bench process with the engine loaded and the questions answered: "
        f"{ours['rss_mb']:.0f} MB; before creating the app: {ours['rss_before']:.0f} MB "
        "(pymorphy3 dictionaries, Haystack, Flask, SQLAlchemy and the index; navec is not loaded).",
        "- The baseline has no relevance gate (it always answers), so its refusal figures are not meaningful.",
    ]
    para = engine_eval(load_eval(PARAPHRASES)) if PARAPHRASES.exists() else None
    probe = engine_eval(load_eval(PROBE)) if PROBE.exists() else None
    if para:
        out += [
            "",
            f"Own paraphrase set ({para['n']} questions in `bench/retrieval_paraphrases.jsonl`, other wordings of "
            "the same kinds of questions, written as a stand-in for the held-out set) and own probe set "
            f"({probe['n'] if probe else 0} questions in `bench/retrieval_probe.jsonl`, written before the section-title, "
            "list-item and topic-gate changes: questions about the company, items of price lists, off-topic calls):",
            "",
            "| measure | target | paraphrases | probe |",
            "|---|---|---|---|",
        ]
        for key, target in rows:
            out.append(f"| {key} | {target} | {_fmt(para[key])} | {_fmt(probe[key] if probe else None)} |")
        out += ["", "First measurements, before any change each set prompted:", "",
                "- paraphrases (before the generic-word and colloquial-map changes): recall@3 0.96, answer holds "
                "the fact 0.76, false refusals 0.16, unanswerable refused 0.90; before the section-title / "
                "derived-word / topic-gate changes: 1.00, 0.92, 0.00, 0.90;",
                "- probe (before the section-title / list-item / derived-word / topic-gate changes): recall@3 0.96, "
                "answer holds the fact 0.72, false refusals 0.20, unanswerable refused 1.00.",
                "",
                "Neither is fully held out any more: the hours phrasing «до какого часа … открыты» and the "
                "«бесплатно» price fact came from the paraphrase set's misses, the quantity→unit words "
                "(температура → °) from the probe's."]
    holds = [(name, path, engine_eval(load_eval(path))) for name, path in
             (("held-out 1", HOLDOUT), ("held-out 2", HOLDOUT2), ("held-out 3", HOLDOUT3), ("held-out 4", HOLDOUT4))
             if path.exists()]
    if holds:
        # Each set's first measurement, taken as it was written, before any change it prompted.
        first = {
            "held-out 1": {"recall@3": 0.96, "answer holds the fact": 0.66, "false refusals": 0.32,
                           "unanswerable refused": 0.67},
            "held-out 2": {"recall@3": 1.00, "answer holds the fact": 0.73, "false refusals": 0.20,
                           "unanswerable refused": 0.75},
            "held-out 3": {"recall@3": 0.98, "answer holds the fact": 0.76, "false refusals": 0.18,
                           "unanswerable refused": 0.69},
            "held-out 4": {"recall@3": 0.98, "answer holds the fact": 0.79, "false refusals": 0.17,
                           "unanswerable refused": 0.58},
        }
        out += ["", "Held-out sets, each written from the KB alone by a helper who had not read the engine, as "
                "phone callers speak (`bench/retrieval_holdout*.jsonl`; set 3 is ASR-style, half of it without "
                "punctuation). Each was measured once as written (\"first\"), then changes were made for the "
                "kinds of misses it showed, and the next set was written. **The first measurement of the newest "
                "set is the honest estimate for unseen questions.**", "",
                "| measure | target | " + " | ".join(f"{n} first | {n} now" for n, _, _ in holds) + " |",
                "|---|---|" + "---|---|" * len(holds)]
        for key, target in rows:
            cells = " | ".join(f"{_fmt(first[n][key])} | {_fmt(r[key])}" for n, _, r in holds)
            out.append(f"| {key} | {target} | {cells} |")
        out += ["", "Changes prompted by held-out 1: callers' filler words (чтоб, вообще, скока, самый…) are stop "
                "words; a verb or adverb the KB never uses («сидит», «продиктуйте») counts half in the gate's "
                "coverage, while unknown nouns still count fully («зарплата», «пицца»); a passage lacking the "
                "measurable quantity asked for («сколько весит…»: neither the word nor its unit) gets half its "
                "coverage; a few words of the trade (разрывная, рвать → растяжение; поверить → поверка; вызвать → "
                "выезд; самый большой → максимальный). By held-out 2: what callers say of their own side in words "
                "the KB never uses («у нас лаборантка новая», «мы бюджетное учреждение»; parts found by punctuation "
                "or, in ASR text, before a question word) does not count against a passage; nouns made from a verb "
                "(обучить ~ обучение, изготавливать ~ изготовление); hesitations (э-э) are stop words. By held-out "
                "3: a price question («сколько стоит…», «почём…», not «картой можно заплатить») is answered only "
                "when a passage given holds a price and covers the question itself («сколько стоит копёр на "
                "450 Дж» over the price of КМ-300 is refused and offered a person; «сколько стоит поверка копра» "
                "still gets the impact tester's own price: that passage covers the question well enough), «я …» is context only "
                "as an introduction without a verb («я инженер с завода», «это лаборатория …»; «я пиццу заказывал, "
                "где мой заказ» was answered), tons of force are kilonewtons («пресс на двести тонн» → 2000 кН), "
                "clock phrases ask for hours («до полшестого», «с девяти утра»), weekdays ~ будни, and more "
                "everyday words (breakdown and damage slang: накрылся, помятый; «по деньгам»; кубик ~ куб; чужой ~ "
                "другой, любой; мощный ~ максимальный; «какой лучше» is phrasing). By held-out 4: «в какие часы» asks for "
                "hours; «добрый день, я …» and «… нам нужен …» split an introduction from the question; груз ~ "
                "доставка, вмятина ~ повреждение, «берут чаще всего» ~ популярный; «куда … отправить/писать» asks "
                "for an e-mail or postal address.",
                "", "Tried and dropped: unknown nouns weighted 0.7 or 0.5 in coverage (fewer false refusals, but "
                "unanswerable refused fell to 0.42–0.75); the best passage itself must hold a price (the price "
                "often sits in the next passage of the same section: probe false refusals 0.04 → 0.12).",
                "", "What is still missed: near-topic questions the KB does not answer but whose words it holds — renting "
                "a press (the KB has leasing), an office in a city it names for delivery, delivery to a country, "
                "the price of a model or service it lists without one (the price of the neighbouring model is "
                "given instead); every off-topic question of every set is refused, like eval_dev's. Answerable "
                "questions are lost mostly on a place or trade the KB never names (рудник в Красноярском крае) "
                "and on a price kept in the passage after the one that names the model. With an LLM the top three "
                "passages are given to it; the offline answer speaks the best sentences."]
        for name, _, result in holds:
            if result["misses"]:
                out += ["", f"Misses on {name} (kind: question):", ""]
                out += [f"- {kind}: {q}" for kind, q in result["misses"]]
    sets = ([("eval_dev", ours)] + ([("paraphrases", para)] if para else []) + ([("probe", probe)] if probe else [])
            + [(name, result) for name, _, result in holds])
    out += ["", "Relevance gate: gate score = the best passage's coverage (rarity-weighted share of the question's "
            "content words it holds), 0 when the topic check fails (the passage holds none of the question's nouns "
            "and one of them is a word the KB never uses: «заказать пиццу»). Threshold 0.5.", "",
            "| set | lowest answerable | highest unanswerable | gate errors at 0.5 | borderline (0.4–0.6) |",
            "|---|---|---|---|---|"]
    for name, result in sets:
        g = result["gate"]
        out.append(f"| {name} | {g['min answerable']:.2f} | {g['max unanswerable']:.2f} | {g['errors']} | "
                   f"{g['borderline']} |")
    out += ["", "Before the topic check, derived-word matching, phrase-implied coverage and company/section-title "
            "handling (same sets, same threshold 0.5, measured with this function on the previous engine): "
            "eval_dev 0.53 / 0.44 / 0 errors / 3 borderline; paraphrases 0.50 / 0.54 / 1 / 10; "
            "probe 0.00 / 0.44 / 5 / 5. The probe's lowest answerable, «во сколько у вас обеденный перерыв», "
            "is still 0: the KB says «обед с 12:30», and «перерыв» is a word it never uses.",
            "", "Tried for the gate and not kept: verbs weighted 0.5 in coverage (the paraphrase set's margin "
            "shrank; «вы продаете бетон», «вы принимаете металлолом» rose to 0.48); generic words or the asked kind "
            "of fact (price, phone…) counted in coverage (more errors on every set); navec similarity for unmatched "
            "words (обеденный ~ обед 0.35, врач ~ инженер 0.35, телевизор ~ компьютер 0.52: no separation)."]
    if compare:
        out += ["", "Alternatives measured (recall@3 on eval_dev / on the paraphrase set; always answering):", "",
                "| retrieval | recall@3 dev | recall@3 paraphrases |", "|---|---|---|"]
        dev_v = variants_eval(load_eval())
        para_v = variants_eval(load_eval(PARAPHRASES))
        for name in dev_v:
            out.append(f"| {name} | {_fmt(dev_v[name]['recall@3'])} | {_fmt(para_v[name]['recall@3'])} |")
        out.append(f"| This engine (as served) | {_fmt(ours['recall@3'])} | {_fmt(para['recall@3'] if para else None)} |")
    if ours["misses"]:
        out += ["", "Misses of this engine (kind: question):", ""]
        out += [f"- {kind}: {q}" for kind, q in ours["misses"]]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    print(run(compare="--quick" not in sys.argv))
