"""Repository patterns, the policy file, and the settings of ``[auth]``."""

from __future__ import annotations

import pytest

from dockyard.auth.patterns import PatternError, RepositoryPattern, parse_actions, parse_rule
from dockyard.auth.policy import Policy, PolicyError
from dockyard.config import ConfigError, load_settings
from tests.auth.conftest import POLICY


@pytest.mark.parametrize(
    ("pattern", "matching", "not_matching"),
    [
        ("team-a/**", ["team-a/app", "team-a/x/y/z"], ["team-a", "team-ab/app", "xteam-a/app"]),
        ("prod/*", ["prod/api", "prod/db"], ["prod", "prod/api/v2", "production/api"]),
        ("**", ["a", "a/b", "team-a/app/x"], []),
        ("*/base", ["debian/base", "ubuntu/base"], ["base", "a/b/base", "debian/base2"]),
        ("team-*/app", ["team-a/app", "team-b/app"], ["team-a/b/app", "teamx/app"]),
        ("exact/name", ["exact/name"], ["exact/name2", "exact/nam", "exact"]),
        ("a.b/c", ["a.b/c"], ["axb/c"]),
    ],
)
def test_patterns(pattern: str, matching: list[str], not_matching: list[str]) -> None:
    compiled = RepositoryPattern.parse(pattern)
    for name in matching:
        assert compiled.matches(name), name
    for name in not_matching:
        assert not compiled.matches(name), name


@pytest.mark.parametrize("bad", ["", "Team-A/**", "team a/*", "a/***", "a/[b]", "a/b?"])
def test_bad_patterns_are_refused(bad: str) -> None:
    with pytest.raises(PatternError):
        RepositoryPattern.parse(bad)


def test_actions_and_command_line_rules() -> None:
    assert parse_actions(["*"]) == {"pull", "push", "delete"}
    assert parse_actions(["pull", " push"]) == {"pull", "push"}
    for bad in (["write"], [], ["pull", "admin"]):
        with pytest.raises(PatternError):
            parse_actions(bad)
    rule = parse_rule("team-a/**=pull,push")
    assert rule.applies_to("team-a/app")
    assert rule.actions == {"pull", "push"}
    with pytest.raises(PatternError):
        parse_rule("team-a/**")


def test_the_policy_grants_by_user_group_and_star() -> None:
    policy = Policy.parse(POLICY)
    assert policy.grants("alice").actions("team-a/app") == {"pull", "push"}
    assert policy.grants("alice").actions("team-b/app") == set()
    assert policy.grants("bob").actions("team-b") == {"pull", "push", "delete"}
    assert policy.grants("worker").actions("anything/at/all") == {"pull"}
    assert policy.grants("nobody").actions("team-a/app") == set()
    everyone = Policy.parse(
        b'[[rules]]\nrepositories = "shared/**"\nactions = ["pull"]\nusers = ["*"]\n'
    )
    assert everyone.grants("anyone").actions("shared/x") == {"pull"}


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        (b"[[rules]\n", "not valid TOML"),
        (b'[[rules]]\nrepositories = "a/**"\nactions = ["pull"]\n', "names no users or groups"),
        (b'[[rules]]\nrepositories = "a/**"\nactions = ["fly"]\nusers = ["x"]\n', "unknown action"),
        (
            b'[[rules]]\nrepositories = "a/**"\nactions = ["pull"]\ngroups = ["g"]\n',
            "unknown group",
        ),
        (b'[[rules]]\nrepository = "a/**"\nactions = ["pull"]\nusers = ["x"]\n', "unknown key"),
        (
            b'[[rules]]\nrepositories = []\nactions = ["pull"]\nusers = ["x"]\n',
            "rules.0.repositories",
        ),
        (b"robots = 1\n", "robots: unknown key"),
    ],
)
def test_bad_policy_files_name_the_problem(text: bytes, complaint: str) -> None:
    with pytest.raises(PolicyError, match=r"policy\.toml") as info:
        Policy.parse(text, "policy.toml")
    assert complaint in str(info.value)


def test_auth_settings_and_their_errors() -> None:
    settings = load_settings(
        overrides={
            "auth": {
                "mode": "token",
                "token_ttl": "15m",
                "anonymous_pull": ["public/**"],
                "trusted_issuers": [{"issuer": "https://idp", "jwks": "/etc/idp/jwks.json"}],
            }
        }
    )
    assert settings.auth.token_ttl == 900
    assert settings.auth.service == "dockyard"
    assert settings.signing_key_path.name == "signing-key.pem"
    bad = [
        ({"mode": "ldap"}, "auth.mode"),
        ({"token_ttl": "forever"}, "auth.token_ttl"),
        ({"trusted_issuers": [{"issuer": "x"}]}, "exactly one of public_key or jwks"),
        ({"trusted_issuers": [{"issuer": "dockyard", "jwks": "/j"}]}, "own issuer"),
        ({"passwords": "x"}, "auth.passwords: unknown key"),
    ]
    for keys, complaint in bad:
        with pytest.raises(ConfigError, match=complaint):
            load_settings(overrides={"auth": keys})
