"""rag/llm_http.post_stream: an answer's streamed completion request is the one the openai client
builds (URL, headers, auth, body), sent without the client's per-request machinery, and fails with
openai's errors: a status error from the client's own mapping, a timeout, a connection error."""
import json
import socket
import threading

import openai
import pytest

from config import DEFAULTS
from metrotest_bot.rag import generate
from metrotest_bot.rag.llm_http import httpx_module, post_stream

SSE = 'data: {"choices":[{"delta":{"content":"Да."}}]}\n\ndata: [DONE]\n\n'.encode()


class RawServer:
    """Answers each request with the next canned response and keeps what it was sent."""

    def __init__(self, responses):
        self.responses = list(responses)
        self.requests = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while self.responses:
            conn, _ = self.sock.accept()
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            head, _, body = data.partition(b"\r\n\r\n")
            lines = head.decode().split("\r\n")
            headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
            while len(body) < int(headers.get("content-length", 0)):
                body += conn.recv(65536)
            self.requests.append({"line": lines[0], "headers": headers, "body": json.loads(body)})
            response = self.responses.pop(0)
            if response is not None:
                conn.sendall(response)
            conn.close()


def reply(status: str, body: bytes, kind="text/event-stream") -> bytes:
    return (f"HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n").encode() + body


def client_for(port, timeout=5.0):
    generate._clients.clear()
    cfg = {**DEFAULTS, "OPENAI_API_KEY": "sk-test-key", "OPENAI_BASE_URL": f"http://127.0.0.1:{port}/v1",
           "LLM_FIRST_TOKEN_TIMEOUT": timeout}
    return generate.get_client(cfg)


def test_the_request_is_the_one_the_openai_client_builds():
    server = RawServer([reply("200 OK", SSE), reply("200 OK", SSE)])
    client = client_for(server.port)
    body = {"model": "m", "messages": [{"role": "user", "content": "сколько стоит доставка"}], "stream": True}
    from openai._constants import RAW_RESPONSE_HEADER

    theirs = client.post("/chat/completions", cast_to=httpx_module().Response, body=body,
                         options={"headers": {RAW_RESPONSE_HEADER: "stream"}})
    theirs.read()
    ours = post_stream(client, "/chat/completions", body)
    assert ours.read() == SSE
    via_openai, direct = server.requests
    assert direct["line"] == via_openai["line"] == "POST /v1/chat/completions HTTP/1.1"
    assert direct["body"] == via_openai["body"] == body
    skip = {"content-length"}  # the same JSON, spaced differently
    assert {k: v for k, v in direct["headers"].items() if k not in skip} == \
        {k: v for k, v in via_openai["headers"].items() if k not in skip}
    assert direct["headers"]["authorization"] == "Bearer sk-test-key"


@pytest.mark.parametrize("status, error", [("401 Unauthorized", openai.AuthenticationError),
                                           ("429 Too Many Requests", openai.RateLimitError),
                                           ("500 Internal Server Error", openai.InternalServerError)])
def test_an_error_status_is_openais_status_error(status, error):
    payload = json.dumps({"error": {"message": "нельзя", "type": "x"}}).encode()
    server = RawServer([reply(status, payload, "application/json")])
    with pytest.raises(error) as raised:
        post_stream(client_for(server.port), "/chat/completions", {"model": "m", "messages": []})
    assert "нельзя" in str(raised.value)


def test_a_silent_server_is_an_openai_timeout_and_a_closed_port_a_connection_error():
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()  # accepts, never answers
    with pytest.raises(openai.APITimeoutError):
        post_stream(client_for(silent.getsockname()[1], timeout=0.3), "/chat/completions", {"model": "m"})
    port = silent.getsockname()[1]
    silent.close()
    with pytest.raises(openai.APIConnectionError):
        post_stream(client_for(port), "/chat/completions", {"model": "m"})
    generate._clients.clear()


def test_an_answer_opens_its_stream_without_openais_request_machinery(monkeypatch):
    """Issue #16: per answer, no option models, copies and retry wrappers (SyncAPIClient.request)."""
    from openai._base_client import SyncAPIClient

    server = RawServer([reply("200 OK", SSE)])
    client_for(server.port)
    cfg = {**DEFAULTS, "OPENAI_API_KEY": "sk-test-key", "OPENAI_BASE_URL": f"http://127.0.0.1:{server.port}/v1"}
    generate.get_client(cfg)  # built (and its request template) before the machinery is taken away

    def refused(*args, **kwargs):
        raise AssertionError("SyncAPIClient.request called")

    monkeypatch.setattr(SyncAPIClient, "request", refused)
    stream = generate.open_stream(cfg, [{"role": "user", "content": "x"}])
    assert [d for d in stream.deltas()] == ["Да."]
    generate._clients.clear()


def test_a_client_whose_key_is_a_callable_is_never_served_a_cached_request():
    """openai keeps such a key as `api_key == ""` and asks the callable per request: a prepared
    request would send the first token forever."""
    import openai

    from metrotest_bot.rag.llm_http import _template

    rotating = openai.OpenAI(api_key=lambda: "tok", base_url="http://127.0.0.1:9/v1")
    plain = openai.OpenAI(api_key="k", base_url="http://127.0.0.1:9/v1")
    assert _template(rotating, "/chat/completions") is None
    assert _template(plain, "/chat/completions") is not None
