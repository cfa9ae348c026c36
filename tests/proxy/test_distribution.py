"""Pull through Dockyard from a real CNCF Distribution with skopeo: same digests as a
direct pull, still served when the upstream is gone, a clear error for what is not."""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import os
import random
import shutil
import tarfile
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dockyard.api import REGISTRY
from tests.helpers import Client, assert_error, sha256
from tests.proxy.conftest import CacheFactory
from tests.proxy.distribution import OCI_INDEX, OCI_MANIFEST, Distribution

TOOL_TIMEOUT = 120.0
LAYERS = [random.Random(i).randbytes(size) for i, size in enumerate((1 << 20, 40_000, 7))]


async def skopeo(*args: str) -> str:
    """Run skopeo without blocking the loop (Dockyard serves from this very loop)."""
    process = await asyncio.create_subprocess_exec(
        "skopeo",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), TOOL_TIMEOUT)
    except TimeoutError:
        process.kill()
        await process.wait()
        pytest.fail(f"skopeo {' '.join(args)} timed out")
    assert process.returncode == 0, f"skopeo {' '.join(args)}:\n{err.decode()[-3000:]}"
    return out.decode()


async def raw_manifest(reference: str) -> bytes:
    return (
        await skopeo("inspect", "--tls-verify=false", "--raw", f"docker://{reference}")
    ).encode()


async def digest_of(reference: str) -> str:
    doc = json.loads(await skopeo("inspect", "--tls-verify=false", f"docker://{reference}"))
    digest: str = doc["Digest"]
    return digest


@pytest.fixture
async def upstream(tmp_path: Path) -> AsyncIterator[Distribution]:
    root = tmp_path / "distribution"
    await asyncio.to_thread(root.mkdir)
    registry = await Distribution.create(root)
    yield registry
    await registry.stop()


async def _cache(make_cache: CacheFactory, upstream: Distribution, **extra: object) -> Client:
    return await make_cache({"name": "dist", "url": upstream.url, "prefix": "dist/", **extra})


def _here(client: Client) -> str:
    return f"{client.host}:{client.port}"


async def test_skopeo_pulls_through_the_cache_with_upstream_digests(
    make_cache: CacheFactory, upstream: Distribution, tmp_path: Path
) -> None:
    image = await upstream.push_image("team/app", "v1", LAYERS)
    client = await _cache(make_cache, upstream)
    through = f"{_here(client)}/dist/team/app"
    direct = f"{upstream.host}/team/app"
    assert await raw_manifest(f"{through}:v1") == await raw_manifest(f"{direct}:v1")
    assert await digest_of(f"{through}:v1") == image
    layout = tmp_path / "layout"
    await skopeo(
        "copy",
        "--preserve-digests",
        "--src-tls-verify=false",
        f"docker://{through}:v1",
        f"oci:{layout}:v1",
    )
    await skopeo(
        "copy",
        "--preserve-digests",
        "--src-tls-verify=false",
        f"docker://{through}@{image}",
        f"oci:{layout}:bydigest",
    )
    index = json.loads(await asyncio.to_thread((layout / "index.json").read_text))
    assert {m["digest"] for m in index["manifests"]} == {image}
    # The layers skopeo stored are the upstream's bytes (skopeo verified each digest).
    for layer in LAYERS:
        path = layout / "blobs" / "sha256" / sha256(layer).removeprefix("sha256:")
        assert await asyncio.to_thread(path.read_bytes) == layer


async def test_multi_platform_index_pulls_through(
    make_cache: CacheFactory, upstream: Distribution, tmp_path: Path
) -> None:
    amd = await upstream.push_image("team/multi", "amd", [b"amd64 layer"], arch="amd64")
    arm = await upstream.push_image("team/multi", "arm", [b"arm64 layer"], arch="arm64")
    index = await upstream.push_index("team/multi", "v1", {"amd64": amd, "arm64": arm})
    client = await _cache(make_cache, upstream)
    through = f"{_here(client)}/dist/team/multi"
    await skopeo(
        "copy",
        "--all",
        "--src-tls-verify=false",
        f"docker://{through}:v1",
        f"oci:{tmp_path / 'l'}:v1",
    )
    r = await client.get("/v2/dist/team/multi/manifests/v1", headers={"Accept": OCI_INDEX})
    assert r.headers["Docker-Content-Digest"] == index
    assert r.headers["Content-Type"] == OCI_INDEX
    for child in (amd, arm):
        r = await client.get(
            f"/v2/dist/team/multi/manifests/{child}", headers={"Accept": OCI_MANIFEST}
        )
        assert r.status == 200


async def test_cached_image_pulls_with_upstream_stopped(
    make_cache: CacheFactory, upstream: Distribution, tmp_path: Path
) -> None:
    await upstream.push_image("team/app", "v1", LAYERS)
    await upstream.push_image("team/other", "v1", [b"never pulled"])
    client = await _cache(make_cache, upstream, tag_ttl="0s", connect_timeout="2s")
    through = f"{_here(client)}/dist/team/app"
    await skopeo(
        "copy",
        "--preserve-digests",
        "--src-tls-verify=false",
        f"docker://{through}:v1",
        f"oci:{tmp_path / 'a'}:v1",
    )
    await upstream.stop()
    await skopeo(
        "copy",
        "--preserve-digests",
        "--src-tls-verify=false",
        f"docker://{through}:v1",
        f"oci:{tmp_path / 'b'}:v1",
    )
    r = await client.get("/v2/dist/team/app/manifests/v1", headers={"Accept": OCI_MANIFEST})
    assert r.status == 200
    assert "dist" in r.headers["Warning"]
    r = await client.get("/v2/dist/team/other/manifests/v1", headers={"Accept": OCI_MANIFEST})
    error = await assert_error(r, 503, "UNAVAILABLE")
    assert "'dist'" in error["message"]
    assert upstream.url in error["message"]


async def test_tag_moved_upstream_moves_the_cached_tag(
    make_cache: CacheFactory, upstream: Distribution
) -> None:
    old = await upstream.push_image("team/app", "latest", [b"version 1"])
    client = await _cache(make_cache, upstream, tag_ttl="0s")
    through = f"{_here(client)}/dist/team/app"
    assert await digest_of(f"{through}:latest") == old
    new = await upstream.push_image("team/app", "latest", [b"version 2"])
    assert await digest_of(f"{through}:latest") == new
    history = await client.app[REGISTRY].discovery.history("dist/team/app", "latest")
    assert [(h.old_digest, h.new_digest, h.reason) for h in history] == [
        (None, old, "cache"),
        (old, new, "cache"),
    ]


def _tar_gz(files: dict[str, bytes]) -> tuple[bytes, str]:
    """A gzipped tar layer of ``files`` and its diff id (sha256 of the plain tar)."""
    plain = io.BytesIO()
    with tarfile.open(fileobj=plain, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    raw = plain.getvalue()
    return gzip.compress(raw, mtime=0), sha256(raw)


async def test_podman_pulls_through_a_registries_conf_mirror(
    make_cache: CacheFactory, upstream: Distribution, tmp_path: Path
) -> None:
    """The docs/cache.md set-up: the upstream as the registry, Dockyard as its mirror."""
    if shutil.which("podman") is None:
        pytest.skip("podman (Debian package) is needed")
    layer, diff_id = _tar_gz({"hello.txt": b"pulled through the cache\n"})
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            "config": {},
        }
    ).encode()
    image = await upstream.push_image("team/app", "v1", [layer], config=config)
    client = await _cache(make_cache, upstream)
    conf = tmp_path / "registries.conf"
    await asyncio.to_thread(
        conf.write_text,
        f'[[registry]]\nprefix = "{upstream.host}"\nlocation = "{upstream.host}"\n'
        "insecure = true\n\n"
        f'[[registry.mirror]]\nlocation = "{_here(client)}/dist"\ninsecure = true\n',
    )
    runroot = Path(tempfile.mkdtemp(prefix="dy-run-", dir="/tmp"))
    try:
        podman = [
            "podman",
            "--root",
            str(tmp_path / "root"),
            "--runroot",
            str(runroot),
            "--storage-driver",
            "vfs",
            "--tmpdir",
            str(tmp_path / "tmp"),
            "--events-backend",
            "none",
        ]
        env = {**os.environ, "CONTAINERS_REGISTRIES_CONF": str(conf)}
        process = await asyncio.create_subprocess_exec(
            *podman,
            "pull",
            f"{upstream.host}/team/app:v1",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        _, err = await asyncio.wait_for(process.communicate(), TOOL_TIMEOUT)
        assert process.returncode == 0, err.decode()[-3000:]
    finally:
        await asyncio.to_thread(shutil.rmtree, runroot, True)
    # Pulled through Dockyard, not around it: the cache holds the image.
    r = await client.get("/v2/dist/team/app/manifests/v1", headers={"Accept": OCI_MANIFEST})
    assert r.headers["Docker-Content-Digest"] == image
    assert await client.app[REGISTRY].meta.blob_size("dist/team/app", sha256(layer)) == len(layer)
