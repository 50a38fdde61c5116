"""The app served for real: gunicorn with the gevent worker, in a subprocess.

`live_server_factory(**env)` starts one (env overrides Config's variables) and
stops it at teardown; `LiveServer.app` is an in-process app on the same
DATA_DIR and database, for inspecting the call log.
"""
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from .apps import dispose, make_app
from .databases import fresh_database

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "live-test-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LiveServer:
    url: str
    ws_url: str
    token: str
    data_dir: Path
    database_url: str
    env: dict
    proc: subprocess.Popen
    log_path: Path
    _app: object = field(default=None, repr=False)

    @property
    def app(self):
        if self._app is None:
            self._app = make_app(self.data_dir, self.database_url)
        return self._app

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._app is not None:
            dispose(self._app)
            self._app = None


def start_live_server(data_dir: Path, database_url: str, workers: int = 1, **env) -> LiveServer:
    data_dir.mkdir(parents=True, exist_ok=True)
    # Tables first, as `make run` does before gunicorn starts.
    dispose(make_app(data_dir, database_url))
    port = free_port()
    full_env = {
        **os.environ,
        "DATA_DIR": str(data_dir),
        "DATABASE_URL": database_url,
        "VOICE_TOKEN": TOKEN,
        "SECRET_KEY": "live-test-secret",
        "HAYSTACK_TELEMETRY_ENABLED": "False",
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": str(workers),
        # A call a test left open must not hold the server's stop for the production 30 s.
        "GUNICORN_GRACEFUL_TIMEOUT": "3",
        # Tests make calls "in progress" that started long ago: no sweep closes them behind a test's back.
        "ABANDONED_SWEEP_S": "0",
    }
    # The shell's own services must not leak into a test's server.
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "ELASTICSEARCH_URL", "CRM_KIND"):
        full_env.pop(name, None)
    full_env.update({k: str(v) for k, v in env.items() if v is not None})
    for k, v in env.items():
        if v is None:
            full_env.pop(k, None)
    log_path = data_dir / "gunicorn.log"
    log = open(log_path, "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"), "wsgi:app"],
        cwd=ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT,
    )
    server = LiveServer(
        url=f"http://127.0.0.1:{port}", ws_url=f"ws://127.0.0.1:{port}/voice/ws", token=TOKEN,
        data_dir=data_dir, database_url=database_url, env=full_env, proc=proc, log_path=log_path,
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {proc.returncode}:\n{server.log()}")
        try:
            urllib.request.urlopen(server.url + "/healthz", timeout=5)
            return server
        except urllib.error.HTTPError:
            return server  # it answers; a 503 (degraded) is the test's business
        except OSError:
            time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"gunicorn did not answer in time:\n{server.log()}")


@contextlib.contextmanager
def serving(tmp_dir: Path, workers: int = 1, **env):
    """A live server on a database of its own, for fixtures of any scope (e.g. one per test module)."""
    with fresh_database(tmp_dir) as database_url:
        srv = start_live_server(tmp_dir / "data", database_url, workers=workers, **env)
        try:
            yield srv
        finally:
            srv.stop()


@pytest.fixture
def live_server_factory(tmp_path, database_url):
    servers = []

    def start(workers: int = 1, data_dir: Path | None = None, **env) -> LiveServer:
        srv = start_live_server(data_dir or tmp_path / f"live{len(servers)}", database_url, workers=workers, **env)
        servers.append(srv)
        return srv

    yield start
    for srv in servers:
        srv.stop()


@pytest.fixture
def live_server(live_server_factory):
    return live_server_factory()
