"""Quotas per top-level namespace: each blob counted once, DENIED with usage and limit."""

from __future__ import annotations

from dockyard.gc import namespace_usage
from tests.gc.conftest import QUOTA, core
from tests.helpers import Client, assert_error, push_blob, sha256


async def test_push_over_quota_is_denied_with_usage_and_limit(registry: Client) -> None:
    await push_blob(registry, "quota/a", b"x" * 3000)
    big = b"y" * 2000
    r = await registry.post(f"/v2/quota/a/blobs/uploads/?digest={sha256(big)}", data=big)
    error = await assert_error(r, 403, "DENIED")
    assert "3000 bytes used" in error["message"]
    assert f"limit of {QUOTA} bytes" in error["message"]
    assert error["detail"] == {"namespace": "quota", "usage": 3000, "size": 2000, "limit": QUOTA}
    assert (await registry.head(f"/v2/quota/a/blobs/{sha256(big)}")).status == 404


async def test_a_blob_counts_once_per_namespace(registry: Client) -> None:
    shared = b"s" * 3000
    await push_blob(registry, "quota/a", shared)
    await push_blob(registry, "quota/b", shared)  # same namespace: already paid for
    r = await registry.post(f"/v2/quota/c/blobs/uploads/?mount={sha256(shared)}&from=quota/a")
    assert r.status == 201
    await push_blob(registry, "free/a", b"f" * 10_000)  # no quota there
    usage = {u.namespace: u for u in await namespace_usage(core(registry))}
    assert (usage["quota"].size, usage["quota"].blobs, usage["quota"].limit) == (3000, 1, QUOTA)
    assert (usage["free"].size, usage["free"].limit) == (10_000, None)


async def test_mount_into_a_full_namespace_is_denied(registry: Client) -> None:
    await push_blob(registry, "quota/a", b"q" * 4000)
    outside = b"o" * 500
    await push_blob(registry, "free/a", outside)
    r = await registry.post(f"/v2/quota/a/blobs/uploads/?mount={sha256(outside)}&from=free/a")
    await assert_error(r, 403, "DENIED")


async def test_exactly_at_the_limit_is_allowed_and_then_uploads_are_refused(
    registry: Client,
) -> None:
    await push_blob(registry, "quota/a", b"e" * QUOTA)
    r = await registry.post("/v2/quota/a/blobs/uploads/")
    error = await assert_error(r, 403, "DENIED")
    assert f"{QUOTA} bytes used" in error["message"]
