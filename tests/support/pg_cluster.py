"""A throwaway PostgreSQL server that a test (or the fault bench) may stop and start.

The shared server behind TEST_DATABASE_URL serves every other test, so an outage is
played on a cluster of our own: initdb into a temporary directory, a free port on
127.0.0.1, trust authentication. PostgreSQL refuses to run as root; as root the
cluster is owned by and run as the `postgres` system user.
"""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def binaries() -> Path | None:
    """The newest installed server's bin directory, or None (the caller skips, saying why)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: [int(x) for x in p.split("/")[4].split(".") if x.isdigit()])
    if found:
        return Path(found[-1]).parent
    pg_ctl = shutil.which("pg_ctl")
    return Path(pg_ctl).parent if pg_ctl else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgCluster:
    """`with PgCluster() as pg:` → pg.url (SQLAlchemy URL), pg.stop(), pg.start()."""

    def __init__(self, database: str = "metrotest"):
        self.bin = binaries()
        if self.bin is None:
            raise RuntimeError("no PostgreSQL server installed (apt-get install postgresql)")
        self.database = database
        self.port = _free_port()
        self.root = Path(tempfile.mkdtemp(prefix="mt-pg-"))
        self.data = self.root / "data"
        self.user = None
        if os.geteuid() == 0:
            self.user = pwd.getpwnam("postgres")
            os.chown(self.root, self.user.pw_uid, self.user.pw_gid)

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{self.database}"

    def _run(self, *args, check=True, timeout=60):
        cmd = [str(a) for a in args]
        if self.user is not None:
            cmd = ["runuser", "-u", "postgres", "--"] + cmd
        return subprocess.run(cmd, check=check, timeout=timeout, cwd="/tmp",
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def __enter__(self):
        self._run(self.bin / "initdb", "-D", self.data, "-A", "trust", "-U", "postgres",
                  "-E", "UTF8", "--locale=C.UTF-8", "--no-sync")
        self.start()
        self._run(self.bin / "psql", "-qX", "-h", "127.0.0.1", "-p", self.port, "-U", "postgres",
                  "-c", f'CREATE DATABASE "{self.database}"')
        return self

    def __exit__(self, *exc):
        self.stop(mode="immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def start(self, timeout: float = 30.0) -> None:
        # No fsync: the test is about the client seeing the server go away, not the server's own durability.
        opts = f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.root} -c fsync=off"
        self._run(self.bin / "pg_ctl", "-D", self.data, "-l", self.root / "log", "-o", opts, "-w",
                  "-t", int(timeout), "start", timeout=timeout + 10)

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: open connections are cut, new ones refused until start()."""
        self._run(self.bin / "pg_ctl", "-D", self.data, "-m", mode, "-w", "stop", check=False)

    def running(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False


def wait_until(predicate, timeout: float = 30.0, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
