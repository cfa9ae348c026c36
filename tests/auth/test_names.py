"""Repository-name tricks never reach another repository's permissions.

alice may pull and push ``team-a/**`` only; ``team-b/app`` holds bob's image. Each
request below tries to reach team-b through a name that mentions team-a, with raw
request targets (no client library normalises them first). Whatever the status, the
answer never carries team-b's manifest, and nothing is written to team-b.
"""

from __future__ import annotations

import pytest

from tests.auth.sessions import (
    Headers,
    basic,
    bearer,
    claims,
    fetch_token,
    push_image_as,
    token_for,
)
from tests.helpers import Client, raw_request

TRICKS = [
    "/v2/team-a/../team-b/app/manifests/v1",
    "/v2/team-a/%2E%2E/team-b/app/manifests/v1",
    "/v2/team-a%2F..%2Fteam-b/app/manifests/v1",
    "/v2/team-a/..%2Fteam-b/app/manifests/v1",
    "/v2/team-a/app/../../team-b/app/manifests/v1",
    "/v2/./team-b/app/manifests/v1",
    "/v2//team-b/app/manifests/v1",
    "/v2/team-a//team-b/app/manifests/v1",
    "/v2/Team-B/app/manifests/v1",
    "/v2/TEAM-B/APP/manifests/v1",
    "/v2/team-b%2Fapp/manifests/v1",
    "/v2/team-b/app%00/manifests/v1",
    "/v2/team-a/app%2F..%2F..%2Fteam-b%2Fapp/manifests/v1",
    "/v2/team-b/app/manifests/v1?name=team-a/app",
    "/v2/team-%61/../team-b/app/manifests/v1",
]


async def _attempts(client: Client, headers: Headers, team_b_manifest: bytes) -> None:
    for target in TRICKS:
        for method in ("GET", "HEAD"):
            r = await raw_request(client, method, target, headers=headers)
            assert r.status in (400, 401, 403, 404), (target, r.status)
            assert team_b_manifest not in r.body, target
            assert "Docker-Content-Digest" not in r.headers, target
        r = await raw_request(client, "PUT", target, headers=headers, body=b"{}")
        assert r.status in (400, 401, 403, 404, 405), (target, r.status)
        r = await raw_request(client, "DELETE", target, headers=headers)
        assert r.status in (400, 401, 403, 404, 405), (target, r.status)


@pytest.mark.parametrize("who", ["alice", "anonymous"])
async def test_name_tricks_in_basic_mode(basic_registry: Client, who: str) -> None:
    _, manifest, _ = await push_image_as(basic_registry, basic("bob"), "team-b/app")
    await _attempts(basic_registry, basic("alice") if who == "alice" else {}, manifest)
    r = await basic_registry.get("/v2/team-b/app/tags/list", headers=basic("bob"))
    assert (await r.json())["tags"] == ["v1"]


async def test_name_tricks_with_a_token_for_team_a(token_registry: Client) -> None:
    bob = bearer(await token_for(token_registry, "bob", "repository:team-b/app:pull,push"))
    _, manifest, _ = await push_image_as(token_registry, bob, "team-b/app")
    alice = bearer(await token_for(token_registry, "alice", "repository:team-a/app:pull,push"))
    await _attempts(token_registry, alice, manifest)


async def test_tricky_scopes_at_the_token_endpoint_grant_nothing(token_registry: Client) -> None:
    doc = await fetch_token(
        token_registry,
        basic("alice"),
        "repository:team-a/../team-b/app:pull",
        "repository:team-a/%2E%2E/team-b/app:pull",
        "repository:Team-A/app:pull",
        "repository:team-a/app/../../team-b/app:pull",
        "repository:team-a/app:pull:extra",
        "repository::pull",
        "repository:team-a/*:pull",
        "repository:team-a/**:pull",
    )
    assert claims(doc["token"])["access"] == []


async def test_a_valid_name_is_decided_on_as_is(basic_registry: Client) -> None:
    # Names that merely look like team-a are other repositories.
    alice = basic("alice")
    for name in ("team-ab/app", "team-a-b/app", "team-a.evil/app", "xteam-a/app", "team-a"):
        r = await basic_registry.get(f"/v2/{name}/tags/list", headers=alice)
        assert r.status == 403, name
