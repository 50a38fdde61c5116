"""LLM mode: does the fact reach the model?

With an LLM configured the model judges and words the answer; what the server decides is which
passages it reads (`Found.context`, up to eight; a follow-up adds those read for the turn before,
`Dialogue.context`) and which questions never reach it (`Found.screened`: plainly off-topic and not a
follow-up carrying the call's topic). No model runs here: what it would make of the passages needs one,
and none can be installed on this machine. Measured per KB, over every labelled set:

- lone questions: the fact is among the passages the model reads; answerable ones screened out before it;
  unanswerable ones screened out (the rest cost a model's «no answer»);
- follow-ups (dialogue turns marked so), answerable: the fact among the passages the model reads — before
  (its own passages; any plainly off-topic question screened out), with the screen as it is (a follow-up
  carrying the call's topic reaches the model), and with the last turn's passages too (as it is) — and the
  share screened out before and now.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from . import dialogue as dlg
from . import retrieval as r

TITLE = "LLM mode: what reaches the model"

# First measurements of this section's figures on sets never run before (bench/sealed/ moved in):
# (set, engine, lone: the model reads the fact / answerable screened / unanswerable screened,
#  answerable follow-ups: reads the fact before / screened as now / with the last turn's passages too).
FIRST_LLM: list[tuple[str, str, tuple, tuple]] = [
    ("demo held-out 45", "v12.4", (0.980, 0.020, 0.158), (None, None, None)),
    ("defektoskan (NDT devices), 90 lone + 22 dialogues", "v12.4", (0.788, 0.030, 0.000), (0.887, 0.903, 0.919)),
    ("demo held-out 46 + dialogues 21", "v12.5", (0.961, 0.020, 0.105), (0.939, 0.980, 0.980)),
    ("demo held-out 47 + dialogues 22", "v12.7", (0.961, 0.020, 0.000), (0.925, 0.950, 0.975)),
    ("kalibrlab (metrology), 90 lone + 22 dialogues", "v12.7", (0.846, 0.000, 0.200), (0.787, 0.803, 0.852)),
    ("tiny_d (hardness testers), 36 lone", "v12.7", (0.962, 0.038, 0.200), (None, None, None)),
    ("tiny_e (soil lab), 36 lone", "v12.7", (0.923, 0.000, 0.400), (None, None, None)),
    ("tiny_f (test fixtures), 36 lone", "v12.7", (0.846, 0.115, 0.200), (None, None, None)),
    ("demo held-out 48 + dialogues 23", "v12.8", (0.923, 0.019, 0.000), (0.898, 0.959, 0.980)),
    ("gidropress (hydraulic presses), 90 lone + 22 dialogues", "v12.8", (0.877, 0.062, 0.120), (0.860, 0.860, 0.860)),
    ("demo held-out 49 + dialogues 24", "v12.9", (0.923, 0.000, 0.056), (0.869, 0.869, 0.918)),
    ("demo held-out 49 + dialogues 24", "v12.8, paired", (0.923, 0.019, 0.056), (0.820, 0.869, 0.918)),
    ("tiny_g (machine modernisation), 36 lone", "v12.9", (0.923, 0.077, 0.000), (None, None, None)),
    ("tiny_g (machine modernisation), 36 lone", "v12.8, paired", (0.885, 0.115, 0.100), (None, None, None)),
    ("demo held-out 50 + dialogues 25", "v12.10 (v12.9 alike)", (0.962, 0.000, 0.000), (0.897, 0.897, 0.948)),
    ("tiny_h (weld testing), 36 lone", "v12.10 (v12.9 alike)", (1.000, 0.000, 0.400), (None, None, None)),
    ("demo held-out 51 + dialogues 26", "v12.11 (v12.10 alike)", (1.000, 0.000, 0.167), (1.000, 1.000, 1.000)),
    ("tiny_i (repair service), 36 lone", "v12.11 (v12.10 alike)", (0.923, 0.000, 0.000), (None, None, None)),
    ("dorstroytest (road materials), 90 lone + 22 dialogues", "v12.11", (0.829, 0.000, 0.000), (0.694, 0.694, 0.790)),
    ("dorstroytest (road materials), 90 lone + 22 dialogues", "v12.10, paired", (0.843, 0.000, 0.000),
     (0.710, 0.710, 0.790)),
    ("demo held-out 52 + dialogues 27", "v12.12", (0.979, 0.000, 0.136), (0.917, 0.917, 0.958)),
    ("demo held-out 52 + dialogues 27", "v12.11, paired", (0.979, 0.000, 0.136), (0.931, 0.931, 0.958)),
    ("tiny_j (used machines rental), 36 lone", "v12.12 (v12.11 alike)", (0.846, 0.000, 0.200), (None, None, None)),
    ("demo held-out 53 + dialogues 28", "v12.13", (0.979, 0.000, 0.045), (0.949, 0.949, 0.987)),
    ("demo held-out 53 + dialogues 28", "v12.12, paired", (0.979, 0.000, 0.091), (0.936, 0.936, 0.987)),
    ("tiny_k (mobile building lab), 36 lone", "v12.13", (1.000, 0.000, 0.100), (None, None, None)),
    ("tiny_k (mobile building lab), 36 lone", "v12.12, paired", (0.962, 0.000, 0.100), (None, None, None)),
    ("dorgeopribor (geotechnical lab equipment), 90 lone + 22 dialogues", "v12.13", (0.828, 0.000, 0.000),
     (0.726, 0.726, 0.836)),
    ("dorgeopribor (geotechnical lab equipment), 90 lone + 22 dialogues", "v12.12, paired", (0.859, 0.000, 0.000),
     (0.753, 0.753, 0.849)),
    ("termomehtest (plastics and rubber), 90 lone + 22 dialogues", "v12.12 (v12.11 alike)", (0.875, 0.000, 0.000),
     (0.716, 0.716, 0.776)),
    ("demo held-out 54 + dialogues 29", "v12.14 (v12.13 alike)", (0.979, 0.000, 0.045), (0.896, 0.896, 0.948)),
    ("tiny_l (scales and manometers workshop), 36 lone", "v12.14 (v12.13 alike)", (0.962, 0.000, 0.100), (None, None, None)),
    ("tkanemetrika (textiles, paper, films), 90 lone + 22 dialogues", "v12.14", (0.859, 0.000, 0.038),
     (0.781, 0.781, 0.808)),
    ("tkanemetrika (textiles, paper, films), 90 lone + 22 dialogues", "v12.13, paired", (0.859, 0.000, 0.038),
     (0.795, 0.795, 0.808)),
    ("demo held-out 55 + dialogues 30", "v12.14", (1.000, 0.000, 0.000), (0.918, 0.918, 0.959)),
    ("demo held-out 55 + dialogues 30", "v12.15, paired, not shipped", (1.000, 0.000, 0.000), (0.932, 0.932, 0.973)),
    ("tiny_m (concrete and asphalt testing lab), 37 lone", "v12.14 (v12.15 alike)", (0.889, 0.037, 0.000), (None, None, None)),
    ("tverdomer (hardness testers), 90 lone + 20 dialogues", "v12.14", (0.831, 0.000, 0.000), (0.778, 0.778, 0.790)),
    ("tverdomer (hardness testers), 90 lone + 20 dialogues", "v12.15, paired, not shipped", (0.815, 0.000, 0.000),
     (0.778, 0.778, 0.790)),
    ("demo held-out 56 + dialogues 31", "v12.16 (v12.14 alike)", (1.000, 0.000, 0.050), (0.955, 0.955, 0.978)),
    ("tiny_n (lab ovens repair workshop), 38 lone", "v12.16 (v12.14 alike)", (0.929, 0.000, 0.000), (None, None, None)),
    ("asfaltpribor (asphalt and bitumen lab equipment), 92 lone + 20 dialogues", "v12.16", (0.881, 0.000, 0.040),
     (0.684, 0.684, 0.747)),
    ("asfaltpribor (asphalt and bitumen lab equipment), 92 lone + 20 dialogues", "v12.14, paired", (0.881, 0.000, 0.040),
     (0.684, 0.684, 0.734)),
    ("demo held-out 57 + dialogues 32", "v12.16 (v12.17 alike)", (1.000, 0.000, 0.050), (0.924, 0.924, 0.935)),
    ("tiny_o (torque wrenches and force gauges), 39 lone", "v12.16 (v12.17 alike)", (1.000, 0.000, 0.100), (None, None, None)),
    ("metallokontrol (metallography equipment), 91 lone + 20 dialogues", "v12.16 (v12.17 alike)", (0.909, 0.000, 0.040),
     (0.795, 0.795, 0.795)),
    ("demo held-out 58 + dialogues 33", "v12.17", (1.000, 0.000, 0.000), (0.937, 0.937, 0.979)),
    ("demo held-out 58 + dialogues 33", "v12.18, paired, not shipped", (1.000, 0.000, 0.000), (0.937, 0.937, 0.968)),
    ("tiny_p (lab-equipment rental), 38 lone", "v12.17 (v12.18 alike)", (0.786, 0.000, 0.100), (None, None, None)),
    ("laktest (paint and coatings testing), 90 lone + 20 dialogues", "v12.17", (0.769, 0.000, 0.000),
     (0.636, 0.636, 0.667)),
    ("laktest (paint and coatings testing), 90 lone + 20 dialogues", "v12.18, paired, not shipped", (0.785, 0.000, 0.000),
     (0.626, 0.626, 0.667)),
    ("demo held-out 59 + dialogues 34", "v12.19 (v12.17, v12.20 alike)", (0.981, 0.019, 0.100), (0.970, 0.970, 0.980)),
    ("tiny_q (calibration weights), 38 lone", "v12.19 (v12.17, v12.20 alike)", (0.964, 0.000, 0.100), (None, None, None)),
    ("neftelab (petroleum-products analysers), 90 lone + 20 dialogues", "v12.19", (0.908, 0.000, 0.000),
     (0.590, 0.590, 0.660)),
    ("neftelab (petroleum-products analysers), 90 lone + 20 dialogues", "v12.17, paired", (0.938, 0.000, 0.000),
     (0.660, 0.660, 0.730)),
    ("neftelab (petroleum-products analysers), 90 lone + 20 dialogues", "v12.20, after reading v12.19's misses",
     (0.985, 0.000, 0.000), (0.640, 0.640, 0.700)),
    ("demo held-out 60 + dialogues 35", "v12.21 (v12.23 alike)", (1.000, 0.000, 0.050), (0.910, 0.910, 0.950)),
    ("demo held-out 60 + dialogues 35", "v12.22, paired, not shipped", (1.000, 0.000, 0.050), (0.920, 0.920, 0.960)),
    ("tiny_r (laboratory sieves), 38 lone", "v12.21 (v12.22, v12.23 alike)", (0.929, 0.000, 0.000), (None, None, None)),
    ("kabeltest (cable and insulation testing), 90 lone + 20 dialogues", "v12.21 (v12.23 alike)", (0.908, 0.000, 0.000),
     (0.673, 0.673, 0.723)),
    ("kabeltest (cable and insulation testing), 90 lone + 20 dialogues", "v12.22, paired, not shipped",
     (0.908, 0.000, 0.000), (0.703, 0.703, 0.733)),
]


def _texts(passages) -> list[str]:
    return [p.text for p in passages]


def measure(kb: Path, lone: list[dict], conversations: list[dict]) -> dict:
    """The figures above for one KB's questions, its index built once. Each question goes through the engine's
    own answer with an LLM configured (never asked: the stream is not read), so what the model would read and
    whether it is asked at all are the service's decisions, not this bench's."""
    from metrotest_bot.bot_settings import BotSettings
    from metrotest_bot.rag import get_engine
    from metrotest_bot.rag.dialogue import Dialogue

    c = dict.fromkeys(["answerable", "reads", "screened", "unanswerable", "un_screened", "followups", "fu_reads",
                       "fu_reads_own", "fu_reads_before", "fu_screened_before", "fu_screened"], 0)
    # An address nothing listens on: the model is configured, and no request is ever sent to it.
    llm = {"OPENAI_API_KEY": "bench-not-sent", "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}
    with tempfile.TemporaryDirectory() as tmp, r.make_app(Path(tmp), KB_PATH=kb, **llm).app_context():
        engine = get_engine()
        engine.reindex()
        settings = BotSettings()

        def ask(question, memory=None):
            stream = engine.answer(question, settings, dialogue=memory)
            stream.close()
            return stream

        for q in lone:
            stream = ask(q["question"])
            if q.get("answerable"):
                c["answerable"] += 1
                c["screened"] += not stream.use_llm
                c["reads"] += stream.use_llm and r._hit(q["any_of"], _texts(stream.passages))
            else:
                c["unanswerable"] += 1
                c["un_screened"] += not stream.use_llm
        for conv in conversations:
            memory = Dialogue()
            for turn in conv["turns"]:
                stream = ask(turn["question"], memory)
                found = stream.found  # None: no words to search, refused before any model as in a call
                if turn.get("followup") and turn.get("answerable"):
                    c["followups"] += 1
                    c["fu_screened"] += not stream.use_llm
                    c["fu_screened_before"] += found is None or found.off_topic
                    c["fu_reads"] += stream.use_llm and r._hit(turn["any_of"], _texts(stream.passages))
                    own = found is not None and r._hit(turn["any_of"], _texts(found.context))
                    c["fu_reads_own"] += stream.use_llm and own
                    c["fu_reads_before"] += found is not None and not found.off_topic and own
                memory.add(turn["question"], "", stream.query, stream.passages)
    share = lambda a, b: c[a] / c[b] if c[b] else None  # noqa: E731
    return {"n": c["answerable"], "reads": share("reads", "answerable"), "screened": share("screened", "answerable"),
            "un_screened": share("un_screened", "unanswerable"), "followups": c["followups"],
            "fu_reads": share("fu_reads", "followups"), "fu_reads_own": share("fu_reads_own", "followups"),
            "fu_reads_before": share("fu_reads_before", "followups"),
            "fu_screened_before": share("fu_screened_before", "followups"),
            "fu_screened": share("fu_screened", "followups")}


def kb_sets() -> list[tuple[str, Path, list[dict], list[dict]]]:
    """(name, KB, lone questions, conversations): the demo's held-out sets and dialogues, and each other KB's."""
    out = [("demo (every held-out set and dialogue set)", r.KB,
            [q for name, path in r.OWN_SETS if name.startswith("held-out") for q in r.load_eval(path)],
            [c for _, path in dlg.SETS for c in dlg.load(path)])]
    folders: dict[Path, tuple[list, list]] = {}
    for kb, path in r.other_kb_sets():
        rows = r.load_eval(path)
        lone, conversations = folders.setdefault(kb, ([], []))
        (conversations if rows and "turns" in rows[0] else lone).extend(rows)
    for kb, (lone, conversations) in folders.items():
        name = kb.parent.name + (" (not trained on)" if kb.parent.name in r.NOT_TRAINED_KBS else "")
        out.append((name, kb, lone, conversations))
    return out


def run() -> str:
    out = ["With an LLM configured the model decides and words the answer; the server decides what it reads. "
           "Whether it then answers right needs a model, which cannot run here. Ranking is trained on these sets "
           "(but for the KBs marked): the figures are what the model is given, not a blind measurement of it.", "",
           "| KB | lone answerable | the model reads the fact | answerable screened out | unanswerable screened out "
           "| answerable follow-ups | reads the fact: before / now screened as now / now with the last turn's passages "
           "| screened out: before / now |",
           "|---|---|---|---|---|---|---|---|"]
    for name, kb, lone, conversations in kb_sets():
        m = measure(kb, lone, conversations)
        out.append(f"| {name} | {m['n']} | {r._fmt(m['reads'])} | {r._fmt(m['screened'])} | {r._fmt(m['un_screened'])} "
                   f"| {m['followups']} | {r._fmt(m['fu_reads_before'])} / {r._fmt(m['fu_reads_own'])} / {r._fmt(m['fu_reads'])} "
                   f"| {r._fmt(m['fu_screened_before'])} / {r._fmt(m['fu_screened'])} |")
    if FIRST_LLM:
        out += ["", "First measurements (sets never run before):", "",
                "| set | engine | lone: reads the fact / answerable screened / unanswerable screened "
                "| answerable follow-ups: reads the fact before / screened as now / with the last turn's passages |",
                "|---|---|---|---|"]
        for name, engine, lone, fu in FIRST_LLM:
            out.append(f"| {name} | {engine} | " + " / ".join(r._fmt(v) for v in lone) + " | "
                       + " / ".join(r._fmt(v) for v in fu) + " |")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    print(run())
