"""``mode = "token"``: the Docker token flow, and every way a bad token must fail."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.auth.conftest import AuthFiles, auth_settings, start
from tests.auth.sessions import (
    basic,
    bearer,
    claims,
    fetch_token,
    push_image_as,
    token_for,
)
from tests.helpers import OCI_MANIFEST, Client, assert_error


def challenge(r: Any) -> str:
    value: str = r.headers["WWW-Authenticate"]
    return value


def realm(client: Client) -> str:
    return f"http://{client.host}:{client.port}/auth/token"


async def server_key(data_dir: Path) -> ec.EllipticCurvePrivateKey:
    """The key the server generated on its first start."""
    pem = await asyncio.to_thread((data_dir / "auth" / "signing-key.pem").read_bytes)
    key = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


def forge(key: Any, algorithm: str = "ES256", **overrides: Any) -> str:
    """A token granting alice everything on team-b/app, with ``overrides`` in its claims."""
    now = int(time.time())
    doc = {
        "iss": "dockyard",
        "sub": "alice",
        "aud": "dockyard",
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "access": [{"type": "repository", "name": "team-b/app", "actions": ["pull", "push"]}],
    }
    doc.update(overrides)
    return jwt.encode(doc, key, algorithm=algorithm)


def b64(data: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


async def test_challenges_name_the_realm_service_and_scope(token_registry: Client) -> None:
    base = f'Bearer realm="{realm(token_registry)}",service="dockyard"'
    r = await token_registry.get("/v2/")
    await assert_error(r, 401, "UNAUTHORIZED")
    assert challenge(r) == base
    for method, path, scope in [
        ("GET", "/v2/team-a/app/manifests/v1", "repository:team-a/app:pull"),
        ("HEAD", "/v2/team-a/app/blobs/sha256:" + "0" * 64, "repository:team-a/app:pull"),
        ("POST", "/v2/team-a/app/blobs/uploads/", "repository:team-a/app:pull,push"),
        ("PUT", "/v2/team-a/app/manifests/v1", "repository:team-a/app:pull,push"),
        ("DELETE", "/v2/team-a/app/manifests/v1", "repository:team-a/app:delete"),
    ]:
        r = await token_registry.request(method, path)
        assert r.status == 401, (method, path)
        assert challenge(r) == f'{base},scope="{scope}"', (method, path)
        if method != "HEAD":
            await assert_error(r, 401, "UNAUTHORIZED")


async def test_the_token_flow_pushes_and_pulls(token_registry: Client) -> None:
    doc = await fetch_token(token_registry, basic("alice"), "repository:team-a/app:pull,push")
    assert set(doc) == {"token", "access_token", "expires_in", "issued_at"}
    assert doc["token"] == doc["access_token"]
    assert doc["expires_in"] == 300
    assert doc["issued_at"].endswith("Z")
    token = claims(doc["token"])
    assert token["sub"] == "alice"
    assert token["aud"] == "dockyard"
    assert token["iss"] == "dockyard"
    assert token["exp"] - token["iat"] == 300
    assert token["access"] == [
        {"type": "repository", "name": "team-a/app", "actions": ["pull", "push"]}
    ]
    alice = bearer(doc["token"])
    assert (await token_registry.get("/v2/", headers=alice)).status == 200
    digest, manifest, _ = await push_image_as(token_registry, alice, "team-a/app")
    r = await token_registry.get(f"/v2/team-a/app/manifests/{digest}", headers=alice)
    assert await r.read() == manifest


async def test_wrong_password_at_the_token_endpoint_gets_401(token_registry: Client) -> None:
    for headers in (basic("alice", "wrong"), basic("nobody", "x")):
        r = await token_registry.get("/auth/token", params={"service": "dockyard"}, headers=headers)
        await assert_error(r, 401, "UNAUTHORIZED")
        assert challenge(r).startswith("Basic realm=")


async def test_a_token_for_repository_a_is_denied_on_repository_b(token_registry: Client) -> None:
    await push_image_as(
        token_registry,
        bearer(await token_for(token_registry, "bob", "repository:team-b/app:pull,push")),
        "team-b/app",
    )
    token = await token_for(token_registry, "alice", "repository:team-a/app:pull,push")
    for method, path in [
        ("GET", "/v2/team-b/app/manifests/v1"),
        ("GET", "/v2/team-b/app/tags/list"),
        ("POST", "/v2/team-b/app/blobs/uploads/"),
        ("DELETE", "/v2/team-b/app/manifests/v1"),
    ]:
        r = await token_registry.request(method, path, headers=bearer(token))
        error = await assert_error(r, 403, "DENIED")
        assert error["detail"][0]["Name"] == "team-b/app"
        assert 'error="insufficient_scope"' in challenge(r)
        assert 'scope="repository:team-b/app:' in challenge(r)


async def test_a_pull_only_token_cannot_push_or_delete(token_registry: Client) -> None:
    admin = bearer(await token_for(token_registry, "admin", "repository:prod/api:*"))
    digest, manifest, _ = await push_image_as(token_registry, admin, "prod/api")
    # admin may do everything, but this token was asked for pull only.
    pull = bearer(await token_for(token_registry, "admin", "repository:prod/api:pull"))
    r = await token_registry.get("/v2/prod/api/manifests/v1", headers=pull)
    assert await r.read() == manifest
    r = await token_registry.post("/v2/prod/api/blobs/uploads/", headers=pull)
    await assert_error(r, 403, "DENIED")
    r = await token_registry.put(
        "/v2/prod/api/manifests/v2", data=manifest, headers={**pull, "Content-Type": OCI_MANIFEST}
    )
    await assert_error(r, 403, "DENIED")
    r = await token_registry.delete(f"/v2/prod/api/manifests/{digest}", headers=pull)
    await assert_error(r, 403, "DENIED")
    assert (await token_registry.head("/v2/prod/api/manifests/v1", headers=pull)).status == 200


async def test_requested_actions_are_trimmed_to_what_the_policy_grants(
    token_registry: Client,
) -> None:
    doc = await fetch_token(
        token_registry,
        basic("alice"),
        "repository:team-a/app:pull,push,delete",
        "repository:team-b/app:pull",
        "repository:team-a/db:*",
        "registry:catalog:*",
        "repository:Team-A/app:pull",
        "bogus",
    )
    assert claims(doc["token"])["access"] == [
        {"type": "repository", "name": "team-a/app", "actions": ["pull", "push"]},
        {"type": "repository", "name": "team-a/db", "actions": ["pull", "push"]},
        {"type": "registry", "name": "catalog", "actions": ["*"]},
    ]
    # A worker asking for push gets a pull-only token, not an error.
    doc = await fetch_token(token_registry, basic("worker"), "repository:prod/api:pull,push")
    assert claims(doc["token"])["access"] == [
        {"type": "repository", "name": "prod/api", "actions": ["pull"]}
    ]


async def test_the_oauth2_post_form_containerd_uses(token_registry: Client) -> None:
    form = {
        "grant_type": "password",
        "username": "alice",
        "password": "alice-password",
        "service": "dockyard",
        "client_id": "containerd-client",
        "scope": "repository:team-a/app:pull,push repository:team-b/app:pull",
    }
    r = await token_registry.post("/auth/token", data=form)
    assert r.status == 200, await r.text()
    doc = await r.json()
    assert doc["scope"] == "repository:team-a/app:pull,push"
    assert doc["expires_in"] == 300
    assert claims(doc["access_token"])["sub"] == "alice"
    r = await token_registry.post("/auth/token", data={**form, "password": "wrong"})
    await assert_error(r, 401, "UNAUTHORIZED")
    r = await token_registry.post("/auth/token", data={**form, "grant_type": "refresh_token"})
    await assert_error(r, 400, "UNSUPPORTED")


async def test_anonymous_tokens_grant_only_anonymous_pulls(token_registry: Client) -> None:
    admin = bearer(await token_for(token_registry, "admin", "repository:public/base:push,pull"))
    _, manifest, _ = await push_image_as(token_registry, admin, "public/base")
    doc = await fetch_token(
        token_registry, None, "repository:public/base:pull,push", "repository:team-a/app:pull"
    )
    token = claims(doc["token"])
    assert token["sub"] == ""
    assert token["access"] == [{"type": "repository", "name": "public/base", "actions": ["pull"]}]
    r = await token_registry.get("/v2/public/base/manifests/v1", headers=bearer(doc["token"]))
    assert await r.read() == manifest
    # Even without any token: anonymous pulls need no round trip.
    r = await token_registry.get("/v2/public/base/manifests/v1")
    assert await r.read() == manifest
    r = await token_registry.get("/v2/team-a/app/manifests/v1", headers=bearer(doc["token"]))
    await assert_error(r, 401, "UNAUTHORIZED")


async def test_an_expired_token_is_rejected(token_registry: Client, data_dir: Path) -> None:
    key = await server_key(data_dir)
    now = int(time.time())
    r = await token_registry.get(
        "/v2/team-b/app/tags/list",
        headers=bearer(forge(key, iat=now - 600, nbf=now - 600, exp=now - 300)),
    )
    error = await assert_error(r, 401, "UNAUTHORIZED")
    assert "expired" in error["message"]
    assert 'error="invalid_token"' in challenge(r)
    # The same token, unexpired, is accepted: only the expiry differs.
    r = await token_registry.get("/v2/team-b/app/tags/list", headers=bearer(forge(key)))
    await assert_error(r, 404, "NAME_UNKNOWN")


async def test_a_token_signed_with_another_key_is_rejected(token_registry: Client) -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    r = await token_registry.get("/v2/team-b/app/tags/list", headers=bearer(forge(other)))
    error = await assert_error(r, 401, "UNAUTHORIZED")
    assert "signature" in error["message"]


async def test_alg_none_is_rejected(token_registry: Client, data_dir: Path) -> None:
    await server_key(data_dir)
    unsigned = forge(None, algorithm="none")
    assert unsigned.endswith(".")
    r = await token_registry.get("/v2/team-b/app/tags/list", headers=bearer(unsigned))
    await assert_error(r, 401, "UNAUTHORIZED")
    # Hand-made, with the header's alg in other spellings.
    body = b64(json.dumps(claims(unsigned)).encode())
    for alg in ("none", "None", "NONE"):
        header = b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
        r = await token_registry.get(
            "/v2/team-b/app/tags/list", headers=bearer(f"{header}.{body}.")
        )
        await assert_error(r, 401, "UNAUTHORIZED")


async def test_hs256_signed_with_the_public_key_is_rejected(
    token_registry: Client, data_dir: Path
) -> None:
    public = (await server_key(data_dir)).public_key()
    for encoding, fmt in [
        (serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
        (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo),
    ]:
        secret = public.public_bytes(encoding, fmt)
        # PyJWT itself refuses to HMAC with a PEM key: sign by hand, as an attacker would.
        header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        body = b64(json.dumps(claims(forge(ec.generate_private_key(ec.SECP256R1())))).encode())
        import hashlib
        import hmac

        signature = hmac.new(secret, f"{header}.{body}".encode(), hashlib.sha256).digest()
        token = f"{header}.{body}.{b64(signature)}"
        r = await token_registry.get("/v2/team-b/app/tags/list", headers=bearer(token))
        await assert_error(r, 401, "UNAUTHORIZED")


async def test_a_token_for_another_service_is_rejected(
    token_registry: Client, data_dir: Path
) -> None:
    key = await server_key(data_dir)
    r = await token_registry.get(
        "/v2/team-b/app/tags/list", headers=bearer(forge(key, aud="registry.example.com"))
    )
    error = await assert_error(r, 401, "UNAUTHORIZED")
    assert "service" in error["message"]
    # Nor does the token endpoint issue tokens for another service.
    r = await token_registry.get(
        "/auth/token", params={"service": "registry.example.com"}, headers=basic("alice")
    )
    await assert_error(r, 400, "DENIED")


async def test_tokens_from_an_unknown_issuer_are_rejected(
    token_registry: Client, data_dir: Path
) -> None:
    key = await server_key(data_dir)  # the right key, but not the right issuer
    r = await token_registry.get(
        "/v2/team-b/app/tags/list", headers=bearer(forge(key, iss="someone-else"))
    )
    error = await assert_error(r, 401, "UNAUTHORIZED")
    assert "issuer" in error["message"]
    for garbage in ("not-a-token", "a.b.c", ""):
        r = await token_registry.get("/v2/", headers=bearer(garbage))
        await assert_error(r, 401, "UNAUTHORIZED")


async def test_catalog_with_a_token_lists_what_its_subject_may_pull(
    token_registry: Client,
) -> None:
    admin = bearer(
        await token_for(
            token_registry,
            "admin",
            "repository:team-a/app:push,pull",
            "repository:team-b/app:push,pull",
            "repository:public/base:push,pull",
        )
    )
    for repo in ("team-a/app", "team-b/app", "public/base"):
        await push_image_as(token_registry, admin, repo)
    r = await token_registry.get("/v2/_catalog", headers=admin)
    await assert_error(r, 403, "DENIED")  # no registry:catalog:* in that token
    assert 'scope="registry:catalog:*",error="insufficient_scope"' in challenge(r)
    catalog = bearer(await token_for(token_registry, "alice", "registry:catalog:*"))
    r = await token_registry.get("/v2/_catalog", headers=catalog)
    assert (await r.json())["repositories"] == ["public/base", "team-a/app"]
    anonymous = bearer(await token_for(token_registry, None, "registry:catalog:*"))
    r = await token_registry.get("/v2/_catalog", headers=anonymous)
    assert (await r.json())["repositories"] == ["public/base"]


@pytest.mark.parametrize("kind", ["public_key", "jwks"])
async def test_tokens_of_a_trusted_external_issuer(
    aiohttp_client: Any, data_dir: Path, auth_files: AuthFiles, tmp_path: Path, kind: str
) -> None:
    idp = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = idp.public_key()
    if kind == "public_key":
        path = tmp_path / "idp.pem"
        path.write_bytes(
            public.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
    else:
        path = tmp_path / "jwks.json"
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(public))
        path.write_text(json.dumps({"keys": [{**jwk, "kid": "idp-1", "use": "sig"}]}))
    trusted = [{"issuer": "https://idp.example", kind: str(path)}]
    settings = auth_settings(data_dir, auth_files, "token", trusted_issuers=trusted)
    registry = await start(aiohttp_client, settings)
    now = int(time.time())
    doc = {
        "iss": "https://idp.example",
        "sub": "ci-pipeline",
        "aud": "dockyard",
        "iat": now,
        "exp": now + 60,
        "access": [{"type": "repository", "name": "ext/app", "actions": ["pull", "push"]}],
    }
    token = jwt.encode(doc, idp, algorithm="RS256", headers={"kid": "idp-1"})
    digest, manifest, _ = await push_image_as(registry, bearer(token), "ext/app")
    r = await registry.get(f"/v2/ext/app/manifests/{digest}", headers=bearer(token))
    assert await r.read() == manifest
    # Its access claim is all it grants.
    r = await registry.get("/v2/team-a/app/tags/list", headers=bearer(token))
    await assert_error(r, 403, "DENIED")
    # Signed by another key under the same issuer name: refused.
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode(doc, other, algorithm="RS256", headers={"kid": "idp-1"})
    r = await registry.get("/v2/ext/app/tags/list", headers=bearer(forged))
    await assert_error(r, 401, "UNAUTHORIZED")
