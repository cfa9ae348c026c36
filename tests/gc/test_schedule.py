"""GC and retention on a schedule inside the server (``[gc] interval``)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from dockyard.app import build_app
from dockyard.config import load_settings
from tests.helpers import Client, blob_status, push_blob, push_image, tags_of

DEADLINE = 30.0


async def test_scheduled_runs_apply_retention_and_collect(
    aiohttp_client: object, data_dir: Path
) -> None:
    plain = load_settings(overrides={"server": {"data_dir": data_dir}})
    pusher: Client = await aiohttp_client(build_app(plain))  # type: ignore[operator]
    await push_image(pusher, "sched/app", "v1", layers=[b"kept"])
    await push_image(pusher, "sched/app", "pr-1", layers=[b"pr layer"])
    orphan = await push_blob(pusher, "sched/app", b"scheduled orphan")
    await pusher.close()
    # The same data, now served with the schedule on (and no grace: collect at once).
    settings = load_settings(
        overrides={
            "server": {"data_dir": data_dir},
            "gc": {"grace": "0s", "interval": "50ms"},
            "retention": [
                {"repositories": "sched/**", "delete_tags": {"pattern": "pr-*", "older_than": "0s"}}
            ],
        }
    )
    client: Client = await aiohttp_client(build_app(settings))  # type: ignore[operator]

    async def collected() -> bool:
        gone = await blob_status(client, "sched/app", orphan) == 404
        return gone and await tags_of(client, "sched/app") == ["v1"]

    async with asyncio.timeout(DEADLINE):  # poll: the schedule runs on its own
        while True:
            if await collected():
                break
            await asyncio.sleep(0.02)
    r = await client.get("/v2/sched/app/manifests/v1")
    assert r.status == 200
