"""Which fixed phrase the bot says, for every moment of a call, chosen here and nowhere else.

The words themselves are the bot settings' (editable in the panel, bot_settings.py);
this module decides which of them a moment calls for:

| moment | phrase (BotSettings) | how it goes out |
|---|---|---|
| setup | `greeting`, addressed by name when the CRM knows the caller | `text` frames, answerId `greeting` |
| the caller asks for a person, or presses 0 | `transfer_phrase` | a `transfer` frame |
| … with no number to dial | `no_operator_phrase` | `text` frames |
| the caller says goodbye; a second silence | `goodbye` | an `end` frame |
| a first silence | `reprompt` | `text` frames |
| the answer engine broke before a word | `error_phrase` and a transfer; without a number `no_operator_phrase` | as above |
| the KB holds no answer | `refusal` | inside the answer's stream (rag/answer.py) |
| the LLM stalled mid-answer | `cut_short_phrase` | inside the answer's stream (rag/answer.py) |

The last two are spoken by the answer stream itself, which knows when they apply
(the LLM's "no answer" marker, a stall between two pieces); they are read from the
same settings object the session passes to it.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache

from .. import crm
from ..bot_settings import BotSettings
from ..rag.speakable import split_text
from ..rag.speech import speech_form
from .caller import CallerProfile

log = logging.getLogger(__name__)

TRANSFER = "transfer"
GOODBYE = "goodbye"
REPROMPT = "reprompt"
GREETING = "greeting"


@dataclass(frozen=True)
class Line:
    """A phrase for one moment: the bot turn's kind, the written words, and where the caller goes after."""

    kind: str
    text: str
    transfer_to: str | None = None  # a `transfer` frame to this number; None: spoken as an answer


def pieces(phrase: str) -> list[tuple[str, str]]:
    """A phrase said as an answer: its speakable pieces, (written, speech form) each. An empty phrase
    is one empty piece: it still closes its answer."""
    return list(_pieces(phrase))


@lru_cache(maxsize=512)
def _pieces(phrase: str) -> tuple[tuple[str, str], ...]:
    # Every call's greeting is the same few phrases: cut and worded once, not per call (issue #16).
    return tuple((p, speech_form(p)) for p in (split_text(phrase) or [""]))


class Phrases:
    """The phrases in force for one call at one moment: the settings just read, and who is calling."""

    def __init__(self, settings: BotSettings, profile: CallerProfile):
        self.settings = settings
        self.profile = profile

    def greeting(self) -> Line:
        """Addressed to a caller the CRM knows: «Здравствуйте, Иван Петрович! Вы позвонили…»."""
        try:
            text = crm.greeting_for(self.profile.info, self.settings.greeting)
        except Exception:  # a bug in the wording must not cost the caller the greeting
            log.exception("CRM greeting failed")
            text = None
        return Line(GREETING, text or self.settings.greeting)

    def reprompt(self) -> Line:
        return Line(REPROMPT, self.settings.reprompt)

    def goodbye(self) -> Line:
        return Line(GOODBYE, self.settings.goodbye)

    def transfer(self) -> Line:
        """A person is asked for: to the caller's manager or the operator; with no number, how to
        reach the office instead."""
        return self._to_a_person(self.settings.transfer_phrase)

    def engine_failed(self) -> Line:
        """The answer broke before a word of it was said: the caller must not hear silence."""
        return self._to_a_person(self.settings.error_phrase)

    def _to_a_person(self, phrase: str) -> Line:
        target = self.profile.transfer_target(self.settings)
        if not target:
            return Line(TRANSFER, self.settings.no_operator_phrase)
        return Line(TRANSFER, phrase, transfer_to=target)
