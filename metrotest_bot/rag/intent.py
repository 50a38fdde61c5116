"""Which kind of fact a question asks for (price, term, hours, address, phone, e-mail): a learned model.

These kinds used to be found by hand-written patterns and word lists («сколько стоит», «как
долго», «через сколько»…), which missed most ways callers ask for a term («а изготавливать её
сколько», «инженер через сколько приедет»: 0.34 of them). Now a logistic model per kind reads the
question's lemmas and lemma pairs, trained on the labelled questions, whose answers show the kind
asked (`python -m bench train-gate`, bench/train_intent.py), and shipped as data
(intent_model.json). Numbers and model codes are read as placeholders, so the model learns how
callers ask, not which items this KB sells. A follow-up that names only an item («а ПИ-3000?»)
takes the previous question's kinds in query.resolve(); giving the model the previous question's
kinds as inputs was measured and did not help.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from .analysis import M_ADDRESS, M_EMAIL, M_HOURS, M_PHONE, M_PRICE, M_TERM, Code, items

INTENT_MODEL = Path(__file__).with_name("intent_model.json")
KINDS = (M_PRICE, M_TERM, M_HOURS, M_ADDRESS, M_PHONE, M_EMAIL)
THRESHOLD = 0.5  # a kind is asked when the model gives it at least this probability
UNSURE = (0.25, 0.75)  # a probability in this band is a guess (the gate is told)
# Training only (bench/train_intent.py): the model questions are analysed with instead of the shipped one
# (each labelled question by a model that never saw its set). Not per-call state: no call sets it.
override: "IntentModel | None" = None


def _words(said: list) -> list[str]:
    out = []
    for alts in said:
        word = alts[0]
        if isinstance(alts, Code):
            out.append("<code>")
        elif word.isdigit():
            out.append("<num>")
        else:
            out.append(word)
    return out


def features(question: str, said: list | None = None) -> set[str]:
    """The model's inputs: the question's words and word pairs (`said`: analysis.items(question), when the
    caller has them already)."""
    words = _words(items(question) if said is None else said)
    return {f"w:{w}" for w in words} | {f"b:{a}_{b}" for a, b in zip(words, words[1:])}


@dataclass(frozen=True)
class IntentModel:
    kinds: tuple[str, ...]
    intercepts: tuple[float, ...]
    weights: dict  # feature → one weight per kind
    threshold: float = THRESHOLD

    @classmethod
    def from_dict(cls, data: dict) -> "IntentModel":
        return cls(tuple(data["kinds"]), tuple(data["intercepts"]),
                   {f: tuple(w) for f, w in data["weights"].items()}, data.get("threshold", THRESHOLD))

    def probabilities(self, question: str, said: list | None = None) -> dict[str, float]:
        z = list(self.intercepts)
        for f in features(question, said):
            w = self.weights.get(f)
            if w:
                for i, v in enumerate(w):
                    z[i] += v
        return {k: 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, v)))) for k, v in zip(self.kinds, z)}

    def read(self, question: str, said: list | None = None) -> tuple[list[str], bool]:
        """(the kinds asked: probability at least the threshold, whether some kind's probability is in UNSURE)."""
        p = self.probabilities(question, said)
        return [k for k, v in p.items() if v >= self.threshold], any(UNSURE[0] <= v <= UNSURE[1] for v in p.values())

    def kinds_asked(self, question: str) -> list[str]:
        return self.read(question)[0]


def read(question: str, said: list | None = None) -> tuple[list[str], bool]:
    """The kinds asked and whether the model was unsure, by the model in use (the shipped one, or a trainer's)."""
    return (override or load_intents()).read(question, said)


@lru_cache(maxsize=4)
def load_intents(path: str = str(INTENT_MODEL)) -> IntentModel:
    """The shipped model, read once per process."""
    return IntentModel.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
