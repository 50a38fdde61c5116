"""rag/llm_http._chunks: the chunked framing of an LLM stream read by our own reader reads what h11
reads, however the network cuts the bytes, and fails where h11 fails."""
import h11
import pytest

from metrotest_bot.rag.llm_http import _chunks

EVENTS = ['data: {"choices":[{"delta":{"content":" Доставка"}}]}\n\n'.encode(),
          'data: {"choices":[{"delta":{"content":" бесплатная."}}]}\n\n'.encode(), b"data: [DONE]\n\n"]


def framed(parts, ext=False) -> bytes:
    out = b""
    for part in parts:
        out += f"{len(part):X}{';name=value' if ext else ''}\r\n".encode() + part + b"\r\n"
    return out + b"0\r\nX-Trailer: 1\r\n\r\n"


def read(wire: bytes, cut: int):
    pieces = [wire[i:i + cut] for i in range(0, len(wire), cut)]

    def recv(n):
        return pieces.pop(0) if pieces else b""

    gen = _chunks(recv)
    got = []
    while True:
        try:
            got.append(next(gen))
        except StopIteration as stop:
            return b"".join(got), stop.value + b"".join(pieces)


def h11_reads(wire: bytes) -> bytes:
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method="POST", target="/", headers=[("Host", "x"), ("Content-Length", "0")]))
    conn.send(h11.EndOfMessage())
    conn.receive_data(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + wire)
    data = b""
    while True:
        event = conn.next_event()
        if isinstance(event, h11.Data):
            data += bytes(event.data)
        elif isinstance(event, h11.EndOfMessage):
            return data


@pytest.mark.parametrize("cut", [1, 2, 3, 5, 17, 100_000])
@pytest.mark.parametrize("ext", [False, True])
def test_reads_what_h11_reads_however_the_bytes_are_cut(cut, ext):
    wire = framed(EVENTS, ext)
    data, end = read(wire, cut)
    assert data == h11_reads(wire) == b"".join(EVENTS)
    assert end == b"0\r\nX-Trailer: 1\r\n\r\n"  # the last chunk and its trailer are left to h11


@pytest.mark.parametrize("wire, message", [
    (b"zz\r\nabc\r\n0\r\n\r\n", "illegal chunk header"),
    (b"3\r\nabcXY0\r\n\r\n", "malformed chunk footer"),
    (b"5\r\nab", "incomplete chunked read"),
    (b"3\r\nabc\r\n", "incomplete chunked read"),
])
def test_broken_framing_fails_as_in_h11(wire, message):
    with pytest.raises(h11.RemoteProtocolError, match=message):
        read(wire, 4)
