"""Blob bytes changed behind Dockyard's back, on disk or in the S3 bucket (through obstore
directly, as a failing disk or an operator with bucket access would)."""

from __future__ import annotations

import asyncio
import contextlib

import obstore
from obstore.store import S3Store

from dockyard.config import Settings
from tests.gc.conftest import blob_file


class RawBlobs:
    """Writes and deletes blob objects under the store's layout, bypassing the store."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        cfg = settings.storage
        self._s3: S3Store | None = None
        if cfg.kind == "s3":
            self._s3 = S3Store(
                cfg.bucket,
                prefix=cfg.prefix or None,
                config={
                    "endpoint": cfg.endpoint,
                    "region": cfg.region,
                    "access_key_id": cfg.access_key_id,
                    "secret_access_key": cfg.secret_access_key,
                    "virtual_hosted_style_request": False,
                },
                client_options={"allow_http": True},
            )

    async def put(self, digest: str, data: bytes) -> None:
        """Make ``digest``'s stored bytes ``data`` (a corruption, or a stray blob)."""
        if self._s3 is not None:
            await obstore.put_async(self._s3, _key(digest), data)
            return
        path = blob_file(self._settings.server.data_dir, digest)
        await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
        await asyncio.to_thread(path.write_bytes, data)

    async def delete(self, digest: str) -> None:
        """Lose ``digest``'s stored bytes."""
        if self._s3 is not None:
            with contextlib.suppress(FileNotFoundError):
                await obstore.delete_async(self._s3, _key(digest))
            return
        path = blob_file(self._settings.server.data_dir, digest)
        await asyncio.to_thread(path.unlink, missing_ok=True)


def _key(digest: str) -> str:
    algorithm, encoded = digest.split(":", 1)
    return f"blobs/{algorithm}/{encoded[:2]}/{encoded}"
