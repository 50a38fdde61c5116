"""LLM generation through any OpenAI-compatible chat API, streamed.

Phone-line rules: the first token must come within LLM_FIRST_TOKEN_TIMEOUT
seconds (the read timeout of the HTTP stream), the whole answer within
LLM_TOTAL_TIMEOUT, and nothing is retried (max_retries=0): on an error the
caller hears the offline answer instead.
"""
from __future__ import annotations

import threading

from .types import CallerContext, Passage

_clients: dict[tuple, object] = {}
_clients_lock = threading.Lock()


def llm_enabled(config) -> bool:
    return bool(config.get("OPENAI_API_KEY"))


def get_client(config):
    """One `openai.OpenAI` client per (key, URL, timeouts), shared: its connections are pooled
    in lanes (rag/llm_http.py), so opening and closing a stream costs the same with hundreds open."""
    from openai import OpenAI

    from .llm_http import httpx_module, lane_pool

    first = float(config["LLM_FIRST_TOKEN_TIMEOUT"])
    key = (config.get("OPENAI_API_KEY"), config.get("OPENAI_BASE_URL"), first)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            import openai

            httpx = httpx_module()
            # A worker streams hundreds of answers at once: as many connections kept alive as
            # it may open (openai's default keeps 100, so past that every answer connected anew).
            limits = openai.DEFAULT_CONNECTION_LIMITS
            client = OpenAI(
                api_key=key[0], base_url=key[1] or None, max_retries=0,
                # read= bounds the wait for the first token and every gap after it.
                timeout=httpx.Timeout(connect=min(first, 3.0), read=first, write=5.0, pool=first),
                http_client=openai.DefaultHttpxClient(
                    transport=lane_pool(limits.max_connections, limits.keepalive_expiry)),
            )
            _clients[key] = client
    return client


def caller_facts(caller: CallerContext | None) -> str:
    if caller is None:
        return ""
    facts = []
    if caller.name:
        facts.append(f"имя: {caller.name}")
    if caller.company:
        facts.append(f"компания: {caller.company}")
    if caller.manager:
        facts.append(f"персональный менеджер: {caller.manager}")
    for key, value in (caller.extra or {}).items():
        if value not in (None, "", [], {}):
            facts.append(f"{key}: {value}")
    return "; ".join(facts)


# The model's machine-readable "the KB has no answer": it must say this first and nothing else.
NO_ANSWER = "НЕТ_ОТВЕТА"
NO_ANSWER_RULE = (
    f"Если во фрагментах базы знаний нет ответа на вопрос звонящего (с учётом предыдущих реплик разговора), "
    f"ответь ровно одним словом {NO_ANSWER} и больше ничего не пиши. Не придумывай фактов, которых нет во "
    f"фрагментах. Иначе отвечай кратко, одним-тремя предложениями, для телефонного разговора.")


class NoAnswerDetector:
    """Reads the start of the model's stream for the NO_ANSWER marker, however the chunks split it.

    Text is held back only while it could still be the marker's beginning (a
    few characters), so an answer streams from its first token as before."""

    def __init__(self):
        self._held = ""
        self.decided = False
        self.no_answer = False

    def feed(self, delta: str) -> str:
        """Text that may be spoken now ("" while undecided or when the marker came)."""
        if self.decided:
            return "" if self.no_answer else delta
        self._held += delta
        head = self._held.lstrip(" \n\t\"'«*[(")
        if not head:
            return ""
        if _normal(head).startswith(_normal(NO_ANSWER)):
            self.decided = self.no_answer = True
            return ""
        if _normal(NO_ANSWER).startswith(_normal(head)):
            return ""  # still possibly the marker
        self.decided = True
        out, self._held = self._held, ""
        return out

    def finish(self) -> str:
        """End of stream: whatever was held back (a short answer that looked like the marker's start)."""
        if self.decided:
            return ""
        self.decided = True
        head = _normal(self._held.strip())
        if head and _normal(NO_ANSWER).startswith(head) and len(head) >= 3:
            self.no_answer = True  # the marker cut short («НЕТ_ОТВ»)
            return ""
        out, self._held = self._held, ""
        return out


def _normal(text: str) -> str:
    return text.upper().replace(" ", "_").replace("-", "_")


def build_messages(question: str, passages: list[Passage], system_prompt: str,
                   caller: CallerContext | None = None, history: list[dict] | None = None) -> list[dict]:
    """System prompt (admin's wording + the no-answer rule + passages + caller facts), the call so far, the question."""
    context = "\n".join(
        f"[{i}] {p.section + ': ' if p.section else ''}{p.text}" for i, p in enumerate(passages, 1))
    system = f"{system_prompt.strip()}\n\n{NO_ANSWER_RULE}\n\nФрагменты базы знаний:\n{context}"
    facts = caller_facts(caller)
    if facts:
        system += ("\n\nО звонящем (из CRM; обращайся по имени, если оно есть, "
                   f"но не зачитывай эти данные без надобности): {facts}")
    return [{"role": "system", "content": system}, *(history or []), {"role": "user", "content": question}]


def open_stream(config, messages: list[dict]):
    """Start a streamed completion; returns a stream of chunks (iterate them, .close()).

    Through the shared openai client (its connection pool, timeouts, headers, auth and
    error mapping: a non-2xx answer raises openai.APIStatusError as before), but with the
    least work per answer: the request the client builds, prepared once and sent as it is
    (rag/llm_http.py post_stream), and each SSE event is read with json.loads into a small object with the
    shape the reader uses (`chunk.choices[0].delta.content`), not a pydantic model.
    """
    from .llm_http import post_stream

    client = get_client(config)
    body = {
        "model": config["LLM_MODEL"],
        "messages": messages,
        "stream": True,
        "temperature": 0.2,
        "max_tokens": int(config["LLM_MAX_TOKENS"]),
    }
    return ChunkStream(post_stream(client, "/chat/completions", body))


class _Delta:
    __slots__ = ("content", "role")

    def __init__(self, delta: dict):
        content = delta.get("content")
        self.content = content if isinstance(content, str) else None
        self.role = delta.get("role")


class _Choice:
    __slots__ = ("delta", "finish_reason", "index")

    def __init__(self, choice: dict):
        delta = choice.get("delta")
        self.delta = _Delta(delta if isinstance(delta, dict) else {})
        self.finish_reason = choice.get("finish_reason")
        self.index = choice.get("index", 0)


class Chunk:
    """One `chat.completion.chunk`, only what streaming reads: `choices[i].delta.content`."""

    __slots__ = ("choices",)

    def __init__(self, data: dict):
        choices = data.get("choices")
        self.choices = [_Choice(c) for c in choices if isinstance(c, dict)] if isinstance(choices, list) else []


DRAIN_S = 0.1


class ChunkStream:
    """The SSE events of a streamed chat completion as Chunks; `close()` closes the HTTP response.

    As openai's own Stream: `data: [DONE]` ends it, an `error` object or event raises
    openai.APIError, comments (keep-alives) and other fields are skipped."""

    def __init__(self, response):
        self.response = response
        self.bounded = False  # set by a reader that bounds every wait itself (rag/answer.py)
        self.pace = 0.0  # seconds between reads of a bounded stream (rag/answer.py sets it, llm_http reads it)

    def _raw(self):
        """The body's bytes: off the lane's connection directly when it can (rag/llm_http.py)."""
        from .llm_http import direct_body

        body = direct_body(self.response, self.bounded, lambda: self.pace)
        return self.response.iter_raw() if body is None else body

    def _lines(self):
        """The body's lines (str, without line ends). An unencoded body (what SSE streams are) is
        split on bytes as it comes off the connection, without httpx's text and line decoders."""
        response = self.response
        if response.headers.get("content-encoding", "identity").strip().lower() not in ("", "identity"):
            yield from response.iter_lines()  # gzip and the like: httpx decodes
            return
        rest = b""
        for raw in self._raw():
            if rest:
                raw = rest + raw
            *lines, rest = raw.split(b"\n")
            for line in lines:
                yield line.rstrip(b"\r").decode("utf-8")
        if rest:
            yield rest.rstrip(b"\r").decode("utf-8")

    def __iter__(self):
        for event in self._events():
            yield Chunk(event)

    def deltas(self):
        """Only what an answer reads: each event's `choices[0].delta.content` (None when it has none)."""
        for event in self._events():
            choices = event.get("choices")
            if choices and isinstance(choices, list) and isinstance(choices[0], dict):
                delta = choices[0].get("delta")
                content = delta.get("content") if isinstance(delta, dict) else None
                yield content if isinstance(content, str) else None
            else:
                yield None

    def _events(self):
        """Each SSE event's JSON object, up to [DONE]."""
        import json

        data: list[str] = []
        event = None
        lines = self._lines()
        try:
            for line in lines:
                if line:
                    if line.startswith("data:"):
                        data.append(line[6:] if line.startswith("data: ") else line[5:])
                    elif line.startswith("event:"):
                        event = line[6:].strip()
                    continue  # comments (":"), id:, retry: and the rest
                if not data:
                    event = None
                    continue
                payload = data[0] if len(data) == 1 else "\n".join(data)
                data = []
                kind, event = event, None
                if payload.startswith("[DONE]"):
                    self._drain(lines)
                    break
                chunk = json.loads(payload)
                if not isinstance(chunk, dict):
                    continue
                if kind == "error" or chunk.get("error"):
                    self._raise(chunk)
                yield chunk
        finally:
            self.close()

    def _drain(self, lines) -> None:
        """After [DONE], on HTTP/1.1: read the body's end (its last, empty chunk, right behind),
        so the connection goes back to the pool instead of being closed and opened anew (a TLS
        handshake with a hosted model) for the next answer. For at most DRAIN_S, and only under
        gevent, where that wait can be bounded; never an error: the answer is complete."""
        if getattr(self.response, "http_version", "HTTP/1.1") != "HTTP/1.1":
            return
        try:
            from gevent import Timeout, monkey
        except ImportError:
            return
        if not monkey.is_module_patched("socket"):
            return
        try:
            with Timeout(DRAIN_S, False):
                for _ in lines:
                    pass
        except Exception:  # a broken connection after [DONE] is no failure of the answer
            pass

    def _raise(self, body: dict):
        import openai

        error = body.get("error") if isinstance(body.get("error"), dict) else body
        message = (error.get("message") if isinstance(error, dict) else None) or "An error occurred during streaming"
        raise openai.APIError(message=message, request=self.response.request, body=error)

    def close(self) -> None:
        self.response.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
