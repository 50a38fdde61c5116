"""The threaded HTTP server under the local fakes of external services (CRM, Elasticsearch, OpenAI).

Each fake subclasses HTTPFake and gives its request handler class in
`_handler()`; handlers subclass QuietHandler. The server listens on
127.0.0.1 on a free port (other helpers run tests on this machine at the
same time), bound at construction so URLs are known before start().
"""
from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class QuietHandler(BaseHTTPRequestHandler):
    # HTTP/1.1 keeps connections alive, as the real services do; no request log on stderr.
    protocol_version = "HTTP/1.1"
    # As nginx and the real services do: the handler writes headers and body in several small
    # sends, which Nagle would hold for the client's delayed ACK (40 ms each on a kept-alive
    # connection, so a pooled client would look slow for the fake's sake, not its own).
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass


class HTTPFake:
    def __init__(self):
        self.port = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._bind()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        raise NotImplementedError

    def _bind(self):
        # Port 0 the first time: a free one; after stop(), the same port again.
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]

    def start(self):
        """Serve from a daemon thread (listening again on the same port after stop())."""
        if self._server is None:
            self._bind()
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        """Stop serving and close the listening socket: new connections are refused."""
        server, self._server = self._server, None
        if server is None:
            return
        if self._thread is not None:  # shutdown() waits for serve_forever, so only when it runs
            server.shutdown()
            self._thread = None
        server.server_close()

    def reset(self):
        """Back to the defaults a test starts from (modes, data, records)."""


def serve(fake: HTTPFake):
    """For a fixture: `yield from serve(Fake())` runs the fake for the fixture's scope."""
    fake.start()
    yield fake  # pytest resumes a fixture after its test, failed or not
    fake.stop()


def fresh(fake: HTTPFake):
    """For a per-test fixture over a running fake: `yield from fresh(server)` resets it before and after."""
    fake.reset()
    yield fake
    fake.reset()
