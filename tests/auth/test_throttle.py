"""Failed-login lockout: repeated failures lock out one user from one address, nobody else."""

from __future__ import annotations

from typing import Any

from dockyard.auth.throttle import LoginThrottle
from tests.auth.sessions import basic
from tests.helpers import Client, assert_error


async def test_repeated_failed_logins_are_locked_out_without_locking_out_others(
    basic_registry: Client,
) -> None:
    for _ in range(5):
        r = await basic_registry.get("/v2/", headers=basic("alice", "guess"))
        await assert_error(r, 401, "UNAUTHORIZED")
    r = await basic_registry.get("/v2/", headers=basic("alice", "guess"))
    await assert_error(r, 429, "TOOMANYREQUESTS")
    assert 0 < int(r.headers["Retry-After"]) <= 300
    # Locked means locked: the right password no longer helps, so guessing is over.
    r = await basic_registry.get("/v2/", headers=basic("alice"))
    await assert_error(r, 429, "TOOMANYREQUESTS")
    # Another user from the same address still gets in.
    assert (await basic_registry.get("/v2/", headers=basic("bob"))).status == 200
    assert (await basic_registry.get("/v2/team-b/x/tags/list", headers=basic("bob"))).status == 404


async def test_the_token_endpoint_is_throttled_too(token_registry: Client) -> None:
    async def token(user: str, password: str | None = None) -> Any:
        return await token_registry.get(
            "/auth/token", params={"service": "dockyard"}, headers=basic(user, password)
        )

    for _ in range(5):
        await assert_error(await token("bob", "guess"), 401, "UNAUTHORIZED")
    await assert_error(await token("bob"), 429, "TOOMANYREQUESTS")
    assert (await token("alice")).status == 200


async def test_a_success_clears_the_count(basic_registry: Client) -> None:
    for _ in range(3):
        for _ in range(4):
            await assert_error(
                await basic_registry.get("/v2/", headers=basic("worker", "typo")),
                401,
                "UNAUTHORIZED",
            )
        assert (await basic_registry.get("/v2/", headers=basic("worker"))).status == 200


def test_lockout_is_per_user_and_address_and_ends() -> None:
    now = [1000.0]
    throttle = LoginThrottle(limit=3, lockout=60, clock=lambda: now[0])
    for _ in range(3):
        assert throttle.locked("alice", "10.0.0.1") is None
        throttle.failed("alice", "10.0.0.1")
    assert throttle.locked("alice", "10.0.0.1") == 60
    assert throttle.locked("alice", "10.0.0.2") is None
    assert throttle.locked("bob", "10.0.0.1") is None
    now[0] += 59
    assert throttle.locked("alice", "10.0.0.1") == 1
    now[0] += 1
    assert throttle.locked("alice", "10.0.0.1") is None
    # Failures spread wider apart than the lockout period never add up.
    for _ in range(10):
        throttle.failed("carol", "10.0.0.1")
        now[0] += 61
    assert throttle.locked("carol", "10.0.0.1") is None
