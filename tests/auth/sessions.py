"""Talking to a guarded registry as somebody: credentials, tokens, authenticated pushes."""

from __future__ import annotations

import base64
import json
from typing import Any

from aiohttp import encode_basic_auth

from tests.helpers import OCI_MANIFEST, Client, image_manifest, sha256

Headers = dict[str, str]

USERS = {
    "alice": "alice-password",
    "bob": "bob-password",
    "worker": "worker-password",
    "admin": "admin-password",
}


def basic(user: str, password: str | None = None) -> Headers:
    """Basic credentials of ``user`` (their right password unless one is given)."""
    secret = USERS[user] if password is None else password
    return {"Authorization": encode_basic_auth(user, secret)}


def bearer(token: str) -> Headers:
    return {"Authorization": f"Bearer {token}"}


async def fetch_token(client: Client, headers: Headers | None, *scopes: str) -> dict[str, Any]:
    """The token endpoint's answer for ``scopes``; asserts it is a 200."""
    query = [("service", "dockyard"), *(("scope", s) for s in scopes)]
    r = await client.get("/auth/token", params=query, headers=headers or {})
    assert r.status == 200, await r.text()
    doc: dict[str, Any] = await r.json()
    return doc


async def token_for(client: Client, user: str | None, *scopes: str) -> str:
    """A token of ``user`` (anonymous when None) for ``scopes``."""
    doc = await fetch_token(client, basic(user) if user else None, *scopes)
    token: str = doc["token"]
    return token


def claims(token: str) -> dict[str, Any]:
    """A token's claims, read without checking (the server checks)."""
    payload = token.split(".")[1]
    doc: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return doc


async def push_blob_as(client: Client, headers: Headers, repo: str, data: bytes) -> str:
    digest = sha256(data)
    r = await client.post(f"/v2/{repo}/blobs/uploads/?digest={digest}", data=data, headers=headers)
    assert r.status == 201, await r.text()
    return digest


async def push_image_as(
    client: Client, headers: Headers, repo: str, tag: str = "v1"
) -> tuple[str, bytes, bytes]:
    """Push a small image as the owner of ``headers``; its manifest digest, manifest and
    layer bytes (unique to ``repo:tag``)."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "repo": repo}).encode()
    layer = f"layer of {repo}:{tag}".encode()
    for blob in (config, layer):
        await push_blob_as(client, headers, repo, blob)
    manifest = image_manifest(config, [layer])
    r = await client.put(
        f"/v2/{repo}/manifests/{tag}",
        data=manifest,
        headers={**headers, "Content-Type": OCI_MANIFEST},
    )
    assert r.status == 201, await r.text()
    return sha256(manifest), manifest, layer
