"""A local HTTP server holding call recordings, as Voximplant's record storage does.

Serves one generated WAV (silence, `seconds` long) with byte-range support:
a browser can only seek in audio whose server answers Range requests.
"""
from __future__ import annotations

import io
import re
import wave

import pytest

from .http_fake import HTTPFake, QuietHandler, serve

RATE = 8000


def silent_wav(seconds: float) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(b"\0\0" * int(RATE * seconds))
    return buf.getvalue()


class MediaServer(HTTPFake):
    SECONDS = 60.0

    def __init__(self):
        self.data = silent_wav(self.SECONDS)
        self.hits = 0
        super().__init__()

    def recording_url(self, name: str = "call.wav") -> str:
        return f"{self.url}/records/{name}"

    def _handler(self):
        fake = self

        class Handler(QuietHandler):
            def do_GET(self):
                fake.hits += 1
                data = fake.data
                match = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", ""))
                if match:
                    start = int(match.group(1) or 0)
                    end = int(match.group(2)) if match.group(2) else len(data) - 1
                    end = min(end, len(data) - 1)
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
                    part = data[start:end + 1]
                else:
                    self.send_response(200)
                    part = data
                self.send_header("Content-Type", "audio/wav")
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Length", str(len(part)))
                self.end_headers()
                try:
                    self.wfile.write(part)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the browser had what it needed

        return Handler


@pytest.fixture(scope="session")
def media_server():
    yield from serve(MediaServer())
