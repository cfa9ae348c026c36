"""A real ``dockyard serve`` process on an ephemeral port, and plain HTTP reads from it.

The clients under test talk to this process; the tests read back through the same
HTTP API, independently of any client, what the registry actually stores and serves.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

MANIFEST_TYPES = ", ".join(
    (
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
)
_LISTENING = re.compile(rb"dockyard listening on http://127\.0\.0\.1:(\d+)")
# A request the server could not handle: an ERROR record (the middleware logs every
# unhandled exception) or a 5xx in the access log.
_SERVER_ERROR = re.compile(r"^.* ERROR .*$|^.*\" 5\d\d .*$", re.MULTILINE)


def sha256(data: bytes) -> str:
    """``sha256:<hex>`` of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True, slots=True)
class Reply:
    """One HTTP answer, read whole."""

    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True, slots=True)
class Manifest:
    """A manifest as the registry serves it."""

    digest: str  # Docker-Content-Digest
    media_type: str  # Content-Type
    content: bytes

    @property
    def doc(self) -> dict[str, Any]:
        value = json.loads(self.content)
        assert isinstance(value, dict)
        return value


class Dockyard:
    """A running ``dockyard serve`` subprocess."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, log_path: Path) -> None:
        self.process = process
        self.port = port
        self.host = f"127.0.0.1:{port}"
        self.log_path = log_path

    @classmethod
    def start(
        cls, data_dir: Path, log_path: Path, *, timeout: float = 30.0, args: Sequence[str] = ()
    ) -> Dockyard:
        """Start the server on port 0 and wait, against a deadline, for the port it logs.

        ``args`` are added to ``dockyard serve`` (``--config``, ``--read-only`` ...).
        """
        script = Path(sys.executable).with_name("dockyard")
        command = [str(script)] if script.exists() else [sys.executable, "-m", "dockyard"]
        command += ["serve", "--port", "0", "--data-dir", str(data_dir), *args]
        with log_path.open("wb") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while True:
            match = _LISTENING.search(log_path.read_bytes())
            if match:
                return cls(process, int(match.group(1)), log_path)
            if process.poll() is not None or time.monotonic() > deadline:
                cls._halt(process)
                pytest.fail(f"dockyard serve did not start:\n{log_path.read_text()[-4000:]}")
            time.sleep(0.05)

    def stop(self) -> int:
        """SIGTERM, wait for a clean exit; return the exit code."""
        return self._halt(self.process)

    @staticmethod
    def _halt(process: subprocess.Popen[bytes]) -> int:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                return process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        return process.wait()

    # -- the log ---------------------------------------------------------------------

    def log_offset(self) -> int:
        """Where the log ends now; pass it to :meth:`log_since`."""
        return self.log_path.stat().st_size

    def log_since(self, offset: int) -> str:
        """What the server logged after ``offset``."""
        with self.log_path.open("rb") as log:
            log.seek(offset)
            return log.read().decode(errors="replace")

    @staticmethod
    def server_errors(log_text: str) -> list[str]:
        """Lines of ``log_text`` that record a server-side failure."""
        return _SERVER_ERROR.findall(log_text)

    def wait_for_log(self, offset: int, pattern: str, *, timeout: float = 10.0) -> list[str]:
        """Lines after ``offset`` matching ``pattern``, once there is one.

        The access log line is written just after the response, so a client may exit
        before the line lands: poll for it rather than read once.
        """
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            lines = [line for line in self.log_since(offset).splitlines() if regex.search(line)]
            if lines or time.monotonic() > deadline:
                return lines
            time.sleep(0.05)

    # -- HTTP ------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
    ) -> Reply:
        """One request on a fresh connection."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return Reply(response.status, response.headers, response.read())
        finally:
            conn.close()

    def manifest(self, repository: str, reference: str) -> Manifest:
        """GET a manifest; assert it is served and its bytes hash to its digest header."""
        r = self.request(
            "GET", f"/v2/{repository}/manifests/{reference}", headers={"Accept": MANIFEST_TYPES}
        )
        assert r.status == 200, f"{repository}:{reference}: {r.status} {r.body[:500]!r}"
        digest = r.headers["Docker-Content-Digest"]
        assert sha256(r.body) == digest, f"{repository}:{reference} served bytes != {digest}"
        if reference.startswith("sha256:"):
            assert digest == reference
        return Manifest(digest, r.headers["Content-Type"], r.body)

    def manifest_digest(self, repository: str, reference: str) -> str:
        """The digest a HEAD of the manifest reports."""
        r = self.request(
            "HEAD", f"/v2/{repository}/manifests/{reference}", headers={"Accept": MANIFEST_TYPES}
        )
        assert r.status == 200, f"HEAD {repository}:{reference}: {r.status}"
        return r.headers["Docker-Content-Digest"]

    def has_manifest(self, repository: str, reference: str) -> bool:
        r = self.request(
            "HEAD", f"/v2/{repository}/manifests/{reference}", headers={"Accept": MANIFEST_TYPES}
        )
        assert r.status in (200, 404), f"HEAD {repository}:{reference}: {r.status}"
        return r.status == 200

    def blob(self, repository: str, digest: str) -> bytes:
        """GET a blob through ``repository``; assert its bytes hash to ``digest``."""
        r = self.request("GET", f"/v2/{repository}/blobs/{digest}")
        assert r.status == 200, f"blob {digest} in {repository}: {r.status} {r.body[:300]!r}"
        assert r.headers["Docker-Content-Digest"] == digest
        assert sha256(r.body) == digest, f"{repository} served other bytes for {digest}"
        return r.body

    def tags(self, repository: str) -> list[str]:
        r = self.request("GET", f"/v2/{repository}/tags/list")
        assert r.status == 200, f"tags of {repository}: {r.status} {r.body[:300]!r}"
        tags = r.json()["tags"]
        assert isinstance(tags, list)
        return [str(t) for t in tags]

    def referrers(self, repository: str, digest: str, artifact_type: str | None = None) -> Reply:
        query = f"?artifactType={artifact_type}" if artifact_type else ""
        return self.request("GET", f"/v2/{repository}/referrers/{digest}{query}")
