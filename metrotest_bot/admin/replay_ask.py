"""Asking the replay's questions of two sides and diffing the answers (admin/replay.py runs it).

A side is a loaded index and the bot's settings: a KB candidate is a new index with the settings
in force; a prompt candidate (admin/prompt_replay.py) is the index in force with a new system
prompt. Offline (no LLM configured) each question is answered as a call would be offline, one
after another: milliseconds each. With an LLM configured the answers come from the model, as a
call's would — its «no answer» marker counts as a refusal, and on its error or timeout the
offline answer stands in, as on the phone — at most REPLAY_LLM_CONCURRENCY answers at once
(threads: greenlets under gunicorn's gevent worker), so a replay never floods the model.
"""
from __future__ import annotations

import re
import threading
import time

from flask import current_app, has_app_context

from ..rag.generate import llm_enabled

CHANGED = ("newly_refused", "newly_answered", "changed")


def offline_config(config) -> dict:
    return {**config, "OPENAI_API_KEY": None}


def retrieve(index, question: str):
    """The retrieval a call runs (no dialogue): rag.found.Found, or None when there is nothing to ask."""
    from ..rag.found import find

    return None if index is None else find(index.pipeline, question)


def answer(index, found, question: str, settings, config, started: float) -> dict:
    from ..rag.answer import Answer

    reply = Answer(question=question, found=found, retrieval_ms=(time.monotonic() - started) * 1000,
                   started=started, settings=settings, caller=None, config=config,
                   stats=index.stats if index is not None else None)
    text = reply.text()
    return {"answered": bool(reply.answered), "text": text, "passages": len(reply.passages),
            "sections": sorted({p.section for p in reply.passages if p.section})[:3],
            "source": reply.source, "llm_error": reply.error is not None}


def ask(index, question: str, settings, config) -> dict:
    """One question against a loaded index, as a call would get it (no dialogue)."""
    started = time.monotonic()
    return answer(index, retrieve(index, question), question, settings, config, started)


# Through the model, two answers from the same passages differ in wording run to run (it samples):
# such an answer counts as changed only if its passages' sections differ or less than this share of
# its words is shared.
LLM_SAME_WORDS = 0.5


def _words(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.lower()))


def kind_of(old: dict, new: dict, llm: bool = False) -> str:
    if old["answered"] and not new["answered"]:
        return "newly_refused"
    if new["answered"] and not old["answered"]:
        return "newly_answered"
    if not old["answered"] or old["text"] == new["text"]:
        return "same"
    if llm and old.get("sections") == new.get("sections"):
        a, b = _words(old["text"]), _words(new["text"])
        if len(a & b) >= LLM_SAME_WORDS * len(a | b):
            return "same"
    return "changed"


def _ask_all_offline(sides, questions, config, progress) -> list[tuple[dict, dict]]:
    out = []
    for i, (question, _) in enumerate(questions):
        out.append(tuple(ask(index, question, settings, config) for index, settings in sides))
        if progress is not None:
            progress(i + 1, len(questions))
    return out


def _ask_all_llm(sides, questions, config, progress, concurrency: int) -> list[tuple[dict, dict]]:
    """Both sides of every question through the model, at most `concurrency` answers at once."""
    tasks = [(i, s) for i in range(len(questions)) for s in range(len(sides))]
    answers: list[list] = [[None] * len(sides) for _ in questions]
    lock, retrieval = threading.Lock(), threading.Lock()
    state = {"next": 0, "done": 0, "error": None}
    app = current_app._get_current_object() if has_app_context() else None

    def worker():
        ctx = app.app_context() if app is not None else None
        if ctx is not None:
            ctx.push()
        try:
            while True:
                with lock:
                    if state["next"] >= len(tasks) or state["error"] is not None:
                        return
                    i, s = tasks[state["next"]]
                    state["next"] += 1
                index, settings = sides[s]
                question = questions[i][0]
                started = time.monotonic()
                with retrieval:  # CPU only, and the index's pipeline is not made for threads
                    found = retrieve(index, question)
                result = answer(index, found, question, settings, config, started)
                with lock:
                    answers[i][s] = result
                    state["done"] += 1
        except Exception as exc:  # a bug, not the model's failure (Answer falls back on its own)
            with lock:
                state["error"] = exc
        finally:
            if ctx is not None:
                ctx.pop()

    threads = [threading.Thread(target=worker, name=f"replay-llm-{n}", daemon=True)
               for n in range(max(1, min(concurrency, len(tasks))))]
    for t in threads:
        t.start()
    while alive := [t for t in threads if t.is_alive()]:
        alive[0].join(0.25)
        if progress is not None:
            progress(state["done"] // len(sides), len(questions))
    if state["error"] is not None:
        raise state["error"]
    return [tuple(pair) for pair in answers]


def compare(in_force, candidate, questions: list[tuple[str, bool]], settings, config, progress=None,
            candidate_settings=None) -> dict:
    """Ask every question of both sides; the diff as stored in ReplayRun.result."""
    started = time.monotonic()
    sides = ((in_force, settings), (candidate, candidate_settings or settings))
    llm = llm_enabled(config)
    concurrency = max(1, int(config["REPLAY_LLM_CONCURRENCY"]))
    if llm:
        pairs = _ask_all_llm(sides, questions, config, progress, concurrency)
    else:
        pairs = _ask_all_offline(sides, questions, offline_config(config), progress)
    counts = {k: 0 for k in (*CHANGED, "same")}
    refused = {"in_force": 0, "candidate": 0}
    rows = []
    for (question, is_test), (old, new) in zip(questions, pairs):
        refused["in_force"] += not old["answered"]
        refused["candidate"] += not new["answered"]
        kind = kind_of(old, new, llm)
        counts[kind] += 1
        if kind != "same":
            rows.append({"question": question, "test": is_test, "kind": kind, "old": old, "new": new})
    order = {k: i for i, k in enumerate(CHANGED)}
    rows.sort(key=lambda r: (order[r["kind"]], not r["test"]))
    return {"questions": len(questions), "tests": sum(1 for _, t in questions if t), "counts": counts,
            "refused": refused, "rows": rows, "seconds": round(time.monotonic() - started, 2),
            "llm": {"model": config["LLM_MODEL"], "concurrency": concurrency,
                    "errors": sum(a["llm_error"] for pair in pairs for a in pair)} if llm else None,
            "in_force": {"name": in_force.target.name if in_force else None,
                         "version_id": in_force.target.version_id if in_force else None,
                         "passages": in_force.count if in_force else 0},
            "candidate": {"name": candidate.target.name if candidate else None,
                          "version_id": candidate.target.version_id if candidate else None,
                          "passages": candidate.count if candidate else 0}}
