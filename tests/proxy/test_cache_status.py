"""``dockyard cache status``: upstream reachability, rate limits, cached size, and the
rate-limit metrics the running server exports."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
from pathlib import Path
from typing import Any

from dockyard.proxy import CACHE
from tests.helpers import sha256
from tests.proxy.conftest import CacheFactory
from tests.proxy.fake_upstream import FakeUpstream
from tests.proxy.test_pull_through import ACCEPT

CLI_TIMEOUT = 60.0


async def cache_status(config: Path, *args: str) -> tuple[int, str, str]:
    """Run ``dockyard cache status`` without blocking the loop the fake upstream runs in."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "dockyard",
        "cache",
        "status",
        "--config",
        str(config),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), CLI_TIMEOUT)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def write_config(path: Path, data_dir: Path, upstreams: list[dict[str, Any]]) -> Path:
    tables = "".join(
        "\n[[upstreams]]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in u.items())
        for u in upstreams
    )
    path.write_text(f'[server]\ndata_dir = "{data_dir}"\n{tables}')
    return path


async def test_status_shows_rate_limit_size_and_an_unreachable_upstream(
    make_cache: CacheFactory, fake: FakeUpstream, tmp_path: Path
) -> None:
    fake.token_auth = True
    fake.credentials = ("cacher", "s3cret")
    image = fake.put_image("team/app", "latest", [b"a layer" * 1000])
    hub = {
        "name": "fake",
        "url": fake.url,
        "prefix": "cache/",
        "username": "cacher",
        "password": "s3cret",
        "max_size": "1MiB",
    }
    # A bound socket that never listens: connections to it are refused, and no other
    # process can take the port while the test runs.
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        down = {
            "name": "down",
            "url": f"http://127.0.0.1:{closed.getsockname()[1]}",
            "prefix": "down/",
            "connect_timeout": "2s",
        }
        client = await make_cache(hub, down)
        r = await client.get("/v2/cache/team/app/manifests/latest", headers=ACCEPT)
        assert r.status == 200, await r.text()
        layer = sha256(image.layers[0])
        r = await client.get(f"/v2/cache/team/app/blobs/{layer}")
        assert await r.read() == image.layers[0]
        await client.app[CACHE].pulls.flush()  # as the server does every few seconds

        # The server saw the rate limit on the manifest GET: exported as metrics.
        r = await client.get("/metrics")
        metrics = await r.text()
        assert 'dockyard_cache_upstream_ratelimit_limit{upstream="fake"} 100.0' in metrics
        assert 'dockyard_cache_upstream_ratelimit_remaining{upstream="fake"} 99.0' in metrics

        # make_cache's first server keeps its data in tmp_path / "dockyard-1".
        config = write_config(tmp_path / "dockyard.toml", tmp_path / "dockyard-1", [hub, down])
        tokens_before = fake.requests["token"]
        code, out, err = await cache_status(config, "--repository", "team/app", "--json")
    assert code == 1, err  # one upstream is unreachable
    report = {u["name"]: u for u in json.loads(out)["upstreams"]}
    fine, gone = report["fake"], report["down"]
    assert fine["reachable"] is True
    assert fine["url"] == fake.url
    assert fine["prefix"] == "cache/"
    assert (fine["ratelimit_limit"], fine["ratelimit_remaining"]) == (100, 99)
    assert fine["ratelimit_probe"] == "team/app: found"
    assert fake.requests["HEAD manifest team/app:latest"] >= 1
    assert fake.requests["token"] > tokens_before  # the CLI did the token dance itself
    assert fine["cached_bytes"] == len(image.layers[0])
    assert fine["max_size"] == 1 << 20
    assert gone["reachable"] is False
    assert "Connect" in gone["probe"], gone["probe"]
    assert gone["ratelimit_limit"] is None
    assert gone["cached_bytes"] == 0


async def test_status_prints_one_block_per_upstream(fake: FakeUpstream, tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "dockyard.toml",
        tmp_path / "data",
        [{"name": "fake", "url": fake.url, "prefix": "cache/", "max_size": "2GiB"}],
    )
    code, out, err = await cache_status(config)
    assert code == 0, err
    assert f"fake  {fake.url}  prefix cache/" in out
    assert "upstream:   reachable (HTTP 404" in out  # the fake has no /v2/ route
    assert "cached:     0 B of 2.0 GiB (0%)" in out


async def test_status_without_upstreams_exits_1(tmp_path: Path) -> None:
    config = write_config(tmp_path / "dockyard.toml", tmp_path / "data", [])
    code, _, err = await cache_status(config)
    assert code == 1
    assert "no [[upstreams]]" in err
