"""One answer being produced: the AnswerStream of rag/types.py.

Retrieval has already run when an Answer is created. Iterating it yields
speakable pieces: from the LLM stream as tokens arrive, or from the offline
answerer, or the refusal phrase.

Who decides whether the KB answers: with an LLM configured, the LLM — it
reads the passages and the call so far and either answers or starts with
the NO_ANSWER marker, which is turned into the refusal phrase and
`answered = False` (only a plainly off-topic question is refused before it);
offline, the learned gate (rag/scoring.py). On an LLM error or timeout
before the first piece, the offline verdict and answer are used; the caller
never hears silence. close() (barge-in) closes the LLM's HTTP stream at once.
"""
from __future__ import annotations

import logging
import queue
import threading
import time

from . import generate
from .speakable import PieceSplitter, split_text
from .types import CallerContext, Timings

log = logging.getLogger(__name__)


class _Reader:
    """Pulls an LLM stream's text deltas into a queue from a thread, so the answer can wait on them
    with a deadline (without gevent: `flask ask`, tests). It ends when the stream ends or is closed."""

    _END = object()

    def open(self, opener, until: float):
        """The stream opener() returns, read from now on (opening is bounded by the HTTP timeouts)."""
        stream = opener()
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, args=(stream,), name="llm-reader", daemon=True)
        self._thread.start()
        return stream

    def _run(self, stream):
        try:
            for delta in stream.deltas():
                if delta:
                    self._queue.put(delta)
            self._queue.put(self._END)
        except BaseException as exc:  # closed under it, network error, bad chunk: the answer decides
            self._queue.put(exc)

    def next(self, until: float) -> str | None:
        """The next delta; None at the end of the stream; TimeoutError once `until` (monotonic) passes."""
        try:
            item = self._queue.get(timeout=max(0.0, until - time.monotonic()))
        except queue.Empty:
            raise TimeoutError("LLM deadline") from None
        if item is self._END:
            return None
        if isinstance(item, BaseException):
            raise item
        return item

    def pause(self) -> None:
        """Nothing to do: the thread's wait is bounded per call."""


class _GreenletReader:
    """Under gevent (gunicorn's worker): the stream is read in the answer's own greenlet, with
    no reader greenlet, queue or hop per chunk; the deadline is one gevent timer, armed again
    only when the deadline moves (a spoken piece), not for every chunk.

    The timer may fire only while this greenlet waits inside next(): `pause()` stops it before
    the answer yields a piece, so it can never land in the caller's code (a socket send)."""

    def __init__(self):
        self._deltas = None
        self._timer = None
        self._until = None

    def open(self, opener, until: float):
        """The stream opener() returns, under the deadline too: a model that never even sends its
        response headers is given up at `until`, not after the HTTP read timeout."""
        self._arm(until)
        stream = self._bounded(opener)
        stream.bounded = True  # every read waits under this reader's timer: no socket timeout needed
        self._deltas = stream.deltas()
        return stream

    def next(self, until: float) -> str | None:
        self._arm(until)
        return self._bounded(self._next_delta)

    def _next_delta(self) -> str | None:
        for delta in self._deltas:
            if delta:
                return delta
        return None

    def _arm(self, until: float) -> None:
        from gevent import Timeout

        if self._timer is None or until != self._until:
            self.pause()
            remaining = until - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("LLM deadline")
            self._timer, self._until = Timeout.start_new(remaining), until

    def _bounded(self, fn):
        from gevent import Timeout

        try:
            return fn()
        except Timeout as exc:
            if exc is not self._timer:
                raise
            self._timer = None
            raise TimeoutError("LLM deadline") from None

    def pause(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.close()


def _reader():
    """A reader of the LLM stream: in this greenlet under gevent, else from a thread."""
    try:
        from gevent import monkey
    except ImportError:
        return _Reader()
    return _GreenletReader() if monkey.is_module_patched("socket") else _Reader()


class Answer:
    def __init__(self, *, question: str, found, retrieval_ms: float, started: float, settings,
                 caller: CallerContext | None, config: dict, stats=None, dialogue=None):
        self.question = question
        self.found = found
        self.query = found.query if found else None  # the analysed question, follow-up resolved
        self.passages = found.context if found else []
        self.timings = Timings(retrieval_ms=round(retrieval_ms, 1))
        self.planned_text = ""
        self.error: str | None = None  # why the LLM was not used, when it failed
        self._settings = settings
        self._caller = caller
        self._config = config
        self._stats = stats
        self._dialogue = dialogue
        self._started = started
        self._closed = False
        self._lock = threading.Lock()
        self._http = None  # the open LLM stream, for close()
        self._gen = None
        offline_answered = bool(found and found.answered)
        self.use_llm = bool(found) and not found.screened and generate.llm_enabled(config)
        if self.use_llm and dialogue is not None:
            self.passages = dialogue.context(found.query, self.passages)  # what the model reads, as logged
        # With an LLM it is provisional: the model may still say the KB has no answer.
        self.answered = self.use_llm or offline_answered
        self.source = "llm" if self.use_llm else ("offline" if offline_answered else "refusal")

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
            if self.use_llm:
                yield from self._llm_pieces()
            elif self.answered:
                yield from self._offline_pieces()
            else:
                yield from self._refusal_pieces()
        finally:
            self.timings.total_ms = round((time.monotonic() - self._started) * 1000, 1)
            self._close_http()

    def _refusal_pieces(self):
        self.answered, self.source = False, "refusal"
        for piece in split_text(self._settings.refusal):
            yield self._emit(piece)

    def offline_text(self) -> str:
        if not self.found:
            return self._settings.refusal
        # A follow-up's reply does not say again what the caller just heard (rag/offline.py).
        heard = self._dialogue.last_answer if self._dialogue is not None and self.found.query.carried else ""
        return self.found.compose(self._stats, heard) or self._settings.refusal

    def _offline_pieces(self):
        for piece in split_text(self.offline_text()):
            if self._closed:
                return
            yield self._emit(piece)

    def _llm_pieces(self):
        """The model's answer as pieces, under deadlines kept by a timer, not by chunk arrival.

        A reader (under gevent: this greenlet, else a thread and a queue) gives the next text
        delta or a timeout once the deadline passes: nothing spoken within FIRST_SPEECH_DEADLINE → the
        offline answer (or the refusal) instead; silence of LLM_STALL_TIMEOUT after a spoken piece,
        or LLM_TOTAL_TIMEOUT overall → the stream is closed and the cut-short phrase ends the
        answer (never a stray half-sentence). SSE keep-alives reset no deadline."""
        cfg = self._config
        total_deadline = self._started + float(cfg["LLM_TOTAL_TIMEOUT"])
        first_deadline = self._started + float(cfg["FIRST_SPEECH_DEADLINE"])
        stall = float(cfg["LLM_STALL_TIMEOUT"])
        # Once a piece is spoken the stream is read at this pace (rag/llm_http.py): a read may come that
        # much after the model's words, so the stall deadline allows for it — it times the model's silence.
        pace = float(cfg["LLM_READ_PACE_MS"]) / 1000
        splitter = PieceSplitter()
        verdict = generate.NoAnswerDetector()
        spoken_any = False
        last_piece_at = self._started
        chunks = None
        try:
            messages = generate.build_messages(self.question, self.passages, self._settings.system_prompt,
                                               self._caller, self._dialogue.messages() if self._dialogue else None)
            chunks = _reader()
            stream = chunks.open(lambda: generate.open_stream(cfg, messages), min(first_deadline, total_deadline))
            with self._lock:
                self._http = stream
                if self._closed:
                    return
            while True:
                if self._closed:
                    return
                until = total_deadline if spoken_any else min(first_deadline, total_deadline)
                if spoken_any:
                    until = min(until, last_piece_at + stall + pace)
                try:
                    delta = chunks.next(until)
                except TimeoutError:
                    if not spoken_any:
                        raise TimeoutError("no speech from the LLM within the first-speech deadline") from None
                    chunks.pause()
                    self.error = "LLM stalled mid-answer"
                    log.warning("LLM stalled after a spoken piece: closing the answer with a phrase")
                    self._close_http()
                    for piece in split_text(self._settings.cut_short_phrase):
                        yield self._emit(piece)
                    return
                if delta is None:  # end of stream
                    break
                if self.timings.llm_first_token_ms is None:
                    self.timings.llm_first_token_ms = round((time.monotonic() - self._started) * 1000, 1)
                text = verdict.feed(delta)
                if verdict.no_answer:
                    break
                pieces = splitter.feed(text)
                if pieces:
                    chunks.pause()  # the caller's code runs at a yield: no deadline may fire there
                for piece in pieces:
                    if not spoken_any:  # later pieces queue behind speech: read the rest in fewer gulps
                        stream.pace = pace
                    spoken_any = True
                    last_piece_at = time.monotonic()
                    yield self._emit(piece)
            chunks.pause()
            if verdict.no_answer:
                self._close_http()
                yield from self._refusal_pieces()
                return
            for piece in splitter.feed(verdict.finish()):
                spoken_any = True
                yield self._emit(piece)
            for piece in splitter.finish():
                spoken_any = True
                yield self._emit(piece)
            if not spoken_any:
                raise ValueError("LLM returned an empty answer")
        except GeneratorExit:
            raise
        except Exception as exc:  # network errors, deadlines, HTTP 5xx, bad chunks
            if chunks is not None:
                chunks.pause()
            if self._closed:
                return
            self.error = f"{exc.__class__.__name__}: {exc}"
            log.warning("LLM failed (%s), speaking the offline answer", self.error)
            self._close_http()
            if spoken_any:
                # The caller already hears the model's words: end gracefully, never with a stray word.
                for piece in split_text(self._settings.cut_short_phrase):
                    yield self._emit(piece)
                return
            # The offline gate's verdict stands in for the model's.
            if self.found and self.found.answered:
                self.source = "offline"
                yield from self._offline_pieces()
            else:
                yield from self._refusal_pieces()
        finally:  # also when killed inside a read (GreenletExit): the timer must not outlive it
            if chunks is not None:
                chunks.pause()

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
