"""rag.generate.ChunkStream: the SSE body of a streamed completion read into chunks, however it is cut."""
import openai
import pytest

from metrotest_bot.rag.generate import ChunkStream


class FakeResponse:
    def __init__(self, body: bytes, cut: int, encoding=None):
        self.parts = [body[i:i + cut] for i in range(0, len(body), cut)]
        self.headers = {"content-encoding": encoding} if encoding else {}
        self.closed = False
        self.request = None

    def iter_raw(self):
        yield from self.parts

    def iter_lines(self):  # what httpx gives for an encoded body (decoded already here)
        yield from b"".join(self.parts).decode().splitlines()

    def close(self):
        self.closed = True


BODY = ('data: {"choices":[{"delta":{"role":"assistant","content":""}}]}\r\n\r\n'
        ': keep-alive\n\n'
        'data: {"choices":[{"delta":{"content":" Доставка"}}]}\n\n'
        'data: {"choices":[{"delta":{"content":" бесплатная."}, "finish_reason": null}]}\n\n'
        'data: {"choices":[{"delta":{}, "finish_reason": "stop"}]}\n\n'
        'data: [DONE]\n\n'
        'data: {"choices":[{"delta":{"content":" after done"}}]}\n\n').encode()


@pytest.mark.parametrize("cut", [1, 2, 3, 7, 64, 10_000])
@pytest.mark.parametrize("encoding", [None, "gzip"])
def test_chunks_whatever_the_network_cuts(cut, encoding):
    response = FakeResponse(BODY, cut, encoding)
    contents = [c.choices[0].delta.content for c in ChunkStream(response)]
    assert contents == ["", " Доставка", " бесплатная.", None]
    assert response.closed


def test_an_error_event_raises_an_api_error():
    body = b'data: {"choices":[{"delta":{"content":"A"}}]}\n\ndata: {"error": {"message": "overloaded"}}\n\n'
    response = FakeResponse(body, 5)
    stream = iter(ChunkStream(response))
    assert next(stream).choices[0].delta.content == "A"
    with pytest.raises(openai.APIError, match="overloaded"):
        next(stream)
    assert response.closed
