"""The post-call summary, extractive and offline: what was asked, whether it was answered, the outcome.

Built from the call log alone, so it needs no LLM and costs nothing at hang-up;
the LLM may word it later, from the same facts.
"""
from __future__ import annotations

import re

from ..models import ROLE_BOT
from ..outcomes import outcome_label

MAX_TOPICS = 5
TOPIC_CHARS = 80


def _topic(question: str) -> str:
    text = re.sub(r"\s+", " ", question or "").strip()
    return text if len(text) <= TOPIC_CHARS else text[:TOPIC_CHARS - 1].rstrip() + "…"


def _verdict(turn) -> str:
    if turn.answered is False:
        return "нет ответа в базе знаний"
    if turn.answered is None:
        return "ответ не прозвучал"
    return "ответ дан, абонент перебил" if turn.interrupted else "ответ дан"


def call_summary(outcome: str | None, turns) -> str:
    """«Вопросы: «…» — ответ дан; «…» — нет ответа в базе знаний. Итог: переведён на сотрудника.»"""
    asked = [t for t in turns if t.role == ROLE_BOT and t.kind == "answer" and (t.question or "").strip()]
    parts = [f"«{_topic(t.question)}» — {_verdict(t)}" for t in asked[:MAX_TOPICS]]
    if len(asked) > MAX_TOPICS:
        parts.append(f"и ещё {len(asked) - MAX_TOPICS}")
    head = f"Вопросы ({len(asked)}): " + "; ".join(parts) + "." if asked else "Вопросов не было."
    return f"{head} Итог: {outcome_label(outcome)}."
