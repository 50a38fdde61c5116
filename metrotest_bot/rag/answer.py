"""One answer being produced: the AnswerStream of rag/types.py.

Retrieval has already run when an Answer is created. Iterating it yields
speakable pieces: from the LLM stream as tokens arrive, or from the offline
answerer, or the refusal phrase. On an LLM error or timeout before the
first piece, the offline answer is spoken instead; the caller never hears
silence. close() (barge-in) closes the LLM's HTTP stream at once.
"""
from __future__ import annotations

import logging
import threading
import time

from . import generate, offline
from .speakable import PieceSplitter, split_text
from .types import CallerContext, Passage, Timings

log = logging.getLogger(__name__)


class Answer:
    def __init__(self, *, question: str, passages: list[Passage], answered: bool, retrieval_ms: float,
                 started: float, settings, caller: CallerContext | None, config: dict, stats=None):
        self.question = question
        self.passages = passages
        self.answered = answered
        self.timings = Timings(retrieval_ms=round(retrieval_ms, 1))
        self.planned_text = ""
        self.error: str | None = None  # why the LLM was not used, when it failed
        self._settings = settings
        self._caller = caller
        self._config = config
        self._stats = stats
        self._started = started
        self._closed = False
        self._lock = threading.Lock()
        self._http = None  # the open LLM stream, for close()
        self._gen = None
        self.use_llm = answered and generate.llm_enabled(config)
        self.source = "refusal" if not answered else ("llm" if self.use_llm else "offline")

    # --- the stream -----------------------------------------------------------

    def __iter__(self):
        if self._gen is None:
            self._gen = self._pieces()
        return self._gen

    def _emit(self, piece: str) -> str:
        now = time.monotonic()
        if self.timings.first_piece_ms is None:
            self.timings.first_piece_ms = round((now - self._started) * 1000, 1)
        self.planned_text = f"{self.planned_text} {piece}".strip()
        return piece

    def _pieces(self):
        try:
            if self._closed:
                return
            if not self.answered:
                for piece in split_text(self._settings.refusal):
                    yield self._emit(piece)
            elif self.use_llm:
                yield from self._llm_pieces()
            else:
                yield from self._offline_pieces()
        finally:
            self.timings.total_ms = round((time.monotonic() - self._started) * 1000, 1)
            self._close_http()

    def offline_text(self) -> str:
        return offline.compose(self.question, self.passages, self._stats) or self._settings.refusal

    def _offline_pieces(self):
        for piece in split_text(self.offline_text()):
            if self._closed:
                return
            yield self._emit(piece)

    def _llm_pieces(self):
        cfg = self._config
        total_timeout = float(cfg.get("LLM_TOTAL_TIMEOUT") or 20.0)
        splitter = PieceSplitter()
        spoken_any = False
        try:
            messages = generate.build_messages(self.question, self.passages, self._settings.system_prompt,
                                               self._caller)
            stream = generate.open_stream(cfg, messages)
            with self._lock:
                self._http = stream
                if self._closed:
                    return
            for chunk in stream:
                if self._closed:
                    return
                if self.timings.llm_first_token_ms is None:
                    self.timings.llm_first_token_ms = round((time.monotonic() - self._started) * 1000, 1)
                delta = chunk.choices[0].delta.content if chunk.choices else None
                if delta:
                    for piece in splitter.feed(delta):
                        spoken_any = True
                        yield self._emit(piece)
                if time.monotonic() - self._started > total_timeout:
                    raise TimeoutError(f"LLM answer exceeded {total_timeout:.0f} s")
            for piece in splitter.finish():
                spoken_any = True
                yield self._emit(piece)
            if not spoken_any:
                raise ValueError("LLM returned an empty answer")
        except GeneratorExit:
            raise
        except Exception as exc:  # network errors, timeouts, HTTP 5xx, bad chunks
            if self._closed:
                return
            self.error = f"{exc.__class__.__name__}: {exc}"
            log.warning("LLM failed (%s), speaking the offline answer", self.error)
            self._close_http()
            if spoken_any:
                # The caller already hears the LLM's words: finish what was begun, don't restart.
                for piece in splitter.finish():
                    yield self._emit(piece)
                return
            self.source = "offline"
            yield from self._offline_pieces()

    # --- cancelling ---------------------------------------------------------------

    def _close_http(self):
        with self._lock:
            http, self._http = self._http, None
        if http is not None:
            try:
                http.close()
            except Exception:  # closing a broken stream may itself fail; it is closed either way
                log.debug("closing the LLM stream failed", exc_info=True)

    def close(self) -> None:
        """Cancel now: no further pieces; the LLM HTTP stream is closed."""
        self._closed = True
        self._close_http()
        gen = self._gen
        if gen is not None:
            try:
                gen.close()
            except ValueError:
                pass  # being iterated in another greenlet/thread: it stops at its next step

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def text(self) -> str:
        """Consume the whole stream and return the answer text."""
        for _ in self:
            pass
        return self.planned_text
