"""A real upstream: Debian's ``docker-registry`` (CNCF Distribution 2.8) on loopback.

Distribution cannot listen on port 0 and report the port it got, so the fixture binds
port 0 itself, closes the socket and hands the number over: racy in principle, and
acceptable only for this third-party binary (our own servers always take port 0).
"""

from __future__ import annotations

import asyncio
import io
import json
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from tests.helpers import sha256

BINARY = "/usr/bin/docker-registry"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
START_DEADLINE = 30.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Distribution:
    """One ``docker-registry`` process with its own config and storage."""

    root: Path
    port: int
    process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @classmethod
    async def create(cls, root: Path) -> Distribution:
        if shutil.which(BINARY) is None or shutil.which("skopeo") is None:
            pytest.skip("docker-registry and skopeo (Debian packages) are needed")
        registry = cls(root, _free_port())
        config = (
            "version: 0.1\n"
            "log:\n  level: warn\n"
            f"storage:\n  filesystem:\n    rootdirectory: {root / 'storage'}\n"
            "  delete:\n    enabled: true\n"
            f"http:\n  addr: 127.0.0.1:{registry.port}\n"
        )
        await asyncio.to_thread((root / "config.yml").write_text, config)
        await registry.start()
        return registry

    async def start(self) -> None:
        """Start (or restart) the process; wait for ``/v2/`` against a deadline."""
        log = await asyncio.to_thread((self.root / "registry.log").open, "ab")
        try:
            self.process = await asyncio.create_subprocess_exec(
                BINARY, "serve", str(self.root / "config.yml"), stdout=log, stderr=log
            )
        finally:
            log.close()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_DEADLINE
        async with aiohttp.ClientSession() as session:
            while True:
                try:
                    async with session.get(f"{self.url}/v2/") as r:
                        if r.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                if self.process.returncode is not None or loop.time() > deadline:
                    text = await asyncio.to_thread((self.root / "registry.log").read_text)
                    pytest.fail(f"docker-registry did not start:\n{text[-3000:]}")
                await asyncio.sleep(0.05)

    async def stop(self) -> None:
        """Stop the process (SIGKILL: an upstream vanishing, not shutting down nicely)."""
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
        self.process = None

    # -- content ------------------------------------------------------------------

    async def push_blob(self, session: aiohttp.ClientSession, repo: str, data: bytes) -> str:
        digest = sha256(data)
        async with session.post(f"{self.url}/v2/{repo}/blobs/uploads/") as r:
            assert r.status == 202, await r.text()
            location = r.headers["Location"]
        separator = "&" if "?" in location else "?"
        # A BytesIO: aiohttp warns (an error under -W error) about large raw byte bodies.
        body = io.BytesIO(data)
        async with session.put(f"{location}{separator}digest={digest}", data=body) as r:
            assert r.status == 201, await r.text()
        return digest

    async def push_manifest(
        self, session: aiohttp.ClientSession, repo: str, ref: str, body: bytes, media_type: str
    ) -> str:
        async with session.put(
            f"{self.url}/v2/{repo}/manifests/{ref}",
            data=body,
            headers={"Content-Type": media_type},
        ) as r:
            assert r.status == 201, await r.text()
            return r.headers["Docker-Content-Digest"]

    async def push_image(
        self,
        repo: str,
        tag: str,
        layers: list[bytes],
        arch: str = "amd64",
        config: bytes | None = None,
    ) -> str:
        """Push an OCI image; return its manifest digest."""
        config = config or json.dumps({"architecture": arch, "os": "linux", "rootfs": {}}).encode()
        async with aiohttp.ClientSession() as session:
            for blob in (config, *layers):
                await self.push_blob(session, repo, blob)
            manifest = json.dumps(
                {
                    "schemaVersion": 2,
                    "mediaType": OCI_MANIFEST,
                    "config": {
                        "mediaType": OCI_CONFIG,
                        "digest": sha256(config),
                        "size": len(config),
                    },
                    "layers": [
                        {"mediaType": OCI_LAYER, "digest": sha256(b), "size": len(b)}
                        for b in layers
                    ],
                }
            ).encode()
            return await self.push_manifest(session, repo, tag, manifest, OCI_MANIFEST)

    async def push_index(self, repo: str, tag: str, children: dict[str, str]) -> str:
        """Push an index over ``{arch: manifest digest}`` already in ``repo``."""
        async with aiohttp.ClientSession() as session:
            manifests = []
            for arch, digest in children.items():
                async with session.get(
                    f"{self.url}/v2/{repo}/manifests/{digest}", headers={"Accept": OCI_MANIFEST}
                ) as r:
                    size = len(await r.read())
                manifests.append(
                    {
                        "mediaType": OCI_MANIFEST,
                        "digest": digest,
                        "size": size,
                        "platform": {"architecture": arch, "os": "linux"},
                    }
                )
            index = json.dumps(
                {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}
            ).encode()
            return await self.push_manifest(session, repo, tag, index, OCI_INDEX)
