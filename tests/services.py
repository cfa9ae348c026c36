"""Real PostgreSQL and S3 for the tests: a throw-away cluster and moto's server.

Both start once per session; each test gets its own database (cloned from a template
migrated to head, which takes milliseconds) and its own key prefix in one bucket.

The cluster is made with Debian's ``initdb``/``pg_ctl`` in a temporary directory. It
listens on its Unix socket only, in that directory: no TCP port to pick, so nothing can
race for one. ``initdb`` refuses to run as root; as root, the directory is handed to
the ``postgres`` user and the binaries run through ``runuser``.
"""

from __future__ import annotations

import http.client
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

PG_BIN = Path(os.environ.get("DOCKYARD_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
PG_USER = "dockyard"
TEMPLATE = "dockyard_head"
BUCKET = "dockyard-test"
S3_KEYS = {"access_key_id": "testing", "secret_access_key": "testing", "region": "us-east-1"}


class PostgresCluster:
    """One PostgreSQL server in a private directory, reachable through its socket."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "data"
        self.log = root / "server.log"
        self._spare: queue.Queue[str] | None = None
        self._dropping: queue.Queue[str] | None = None

    def _run(self, *command: str | Path) -> subprocess.CompletedProcess[str]:
        argv = [str(c) for c in command]
        if os.geteuid() == 0:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        return subprocess.run(argv, check=True, capture_output=True, text=True, timeout=120)

    def start(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        self._run(
            PG_BIN / "initdb", "-D", self.data, "-U", PG_USER, "--auth=trust",
            "-E", "UTF8", "--no-sync", "--no-instructions",
        )  # fmt: skip
        options = " ".join(
            (
                "-c listen_addresses=''",
                f"-c unix_socket_directories={self.root}",
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off",
                "-c max_connections=400",
            )
        )
        self._run(PG_BIN / "pg_ctl", "-D", self.data, "-l", self.log, "-o", options, "-w", "start")

    def stop(self) -> None:
        self._run(PG_BIN / "pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")

    def url(self, database: str) -> str:
        """The ``postgresql://`` URL Dockyard is configured with for ``database``."""
        return f"postgresql://{PG_USER}@/{database}?host={self.root}"

    def sql(self, statement: str, database: str = "postgres") -> str:
        """Run one statement with psql; return its unaligned output."""
        command = [str(PG_BIN / "psql"), "-h", str(self.root), "-U", PG_USER, "-d", database,
                   "-v", "ON_ERROR_STOP=1", "-XAtqc", statement]  # fmt: skip
        for attempt in range(3):
            try:
                result = subprocess.run(
                    command, check=True, capture_output=True, text=True, timeout=60
                )
            except OSError:
                # Spawning from the background threads has been seen to fail once with
                # EFAULT under load; the statement never ran, so it is safe to retry.
                if attempt == 2:
                    raise
                continue
            return result.stdout
        raise AssertionError("unreachable")

    def create_database(self, template: str | None = None) -> str:
        """A new, uniquely named database (a copy of ``template`` when given)."""
        name = f"t_{uuid.uuid4().hex[:16]}"
        clause = f" TEMPLATE {template}" if template else ""
        self.sql(f"CREATE DATABASE {name}{clause}")
        return name

    def fresh_database(self) -> str:
        """A database at head, made ahead of time by a background thread."""
        if self._spare is None:
            self._spare = queue.Queue(maxsize=3)
            threading.Thread(target=self._make_spares, daemon=True).start()
        return self._spare.get(timeout=120)

    def _make_spares(self) -> None:
        assert self._spare is not None
        while True:
            try:
                name = self.create_database(TEMPLATE)
            except subprocess.CalledProcessError:
                return  # the cluster is stopping: fresh_database() times out, if called
            self._spare.put(name)

    def drop_database(self, name: str) -> None:
        """Drop ``name`` soon, in the background, closing whatever still connects to it."""
        if self._dropping is None:
            self._dropping = queue.Queue()
            threading.Thread(target=self._drop_all, daemon=True).start()
        self._dropping.put(name)

    def _drop_all(self) -> None:
        assert self._dropping is not None
        while True:
            name = self._dropping.get()
            try:
                self.sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            except subprocess.CalledProcessError:
                return  # the cluster is stopping; its directory goes with it


@dataclass(frozen=True)
class S3Server:
    """moto's S3 on loopback, with the test bucket created."""

    endpoint: str

    def storage(self, prefix: str | None = None) -> dict[str, Any]:
        """The ``[storage]`` settings of a fresh prefix in the test bucket."""
        return {
            "kind": "s3",
            "bucket": BUCKET,
            "prefix": prefix or f"t-{uuid.uuid4().hex[:16]}",
            "endpoint": self.endpoint,
            "path_style": True,
            **S3_KEYS,
        }


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """A PostgreSQL cluster for the session, with a template database at head."""
    if not (PG_BIN / "initdb").exists():
        pytest.fail(f"PostgreSQL server binaries not found in {PG_BIN}: apt install postgresql")
    # Not under pytest's tmp_path: its directories are private to root, and the
    # postgres user must reach the socket directory.
    root = Path(tempfile.mkdtemp(prefix="dockyard-pg-"))
    cluster = PostgresCluster(root)
    cluster.start()
    try:
        cluster.sql(f"CREATE DATABASE {TEMPLATE}")
        subprocess.run(
            [str(Path(sys.executable).with_name("dockyard")), "migrate"],
            env={**os.environ, "DOCKYARD_METADATA__URL": cluster.url(TEMPLATE)},
            check=True,
            capture_output=True,
            timeout=120,
        )
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def s3() -> Iterator[S3Server]:
    """moto's standalone S3 server on 127.0.0.1, on a port it picks."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        # moto accepts an unsigned CreateBucket: no AWS SDK needed for one request.
        conn = http.client.HTTPConnection(host, port, timeout=30)
        conn.request("PUT", f"/{BUCKET}")
        status = conn.getresponse().status
        conn.close()
        assert status == 200, f"moto refused to create the bucket: {status}"
        yield S3Server(endpoint)
    finally:
        server.stop()
