"""Digests: ``algorithm:encoded``, only the algorithms a registry can verify."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dockyard.oci import Digest, InvalidDigest, new_hasher
from dockyard.oci.digest import SUPPORTED_ALGORITHMS, is_digest

HEX_LENGTH = {"sha256": 64, "sha512": 128}


def hex_of(length: int) -> st.SearchStrategy[str]:
    return st.text(alphabet="0123456789abcdef", min_size=length, max_size=length)


@st.composite
def digests(draw: st.DrawFn) -> str:
    """Valid digest strings of every supported algorithm."""
    algorithm = draw(st.sampled_from(SUPPORTED_ALGORITHMS))
    return f"{algorithm}:{draw(hex_of(HEX_LENGTH[algorithm]))}"


@given(digests())
def test_valid_digests_round_trip(value: str) -> None:
    digest = Digest.parse(value)
    assert str(digest) == value
    assert f"{digest.algorithm}:{digest.encoded}" == value
    assert Digest.parse(str(digest)) == digest


@given(st.binary(max_size=4096), st.sampled_from(SUPPORTED_ALGORITHMS))
def test_of_matches_hashlib(data: bytes, algorithm: str) -> None:
    digest = Digest.of(data, algorithm)
    assert digest == Digest(algorithm, hashlib.new(algorithm, data).hexdigest())
    assert Digest.parse(str(digest)) == digest


@given(st.lists(st.binary(max_size=512), max_size=8), st.sampled_from(SUPPORTED_ALGORITHMS))
def test_hasher_in_pieces_matches_of(pieces: list[bytes], algorithm: str) -> None:
    hasher = new_hasher(algorithm)
    for piece in pieces:
        hasher.update(piece)
    assert Digest(algorithm, hasher.hexdigest()) == Digest.of(b"".join(pieces), algorithm)


def test_sha256_of_empty() -> None:
    assert str(Digest.of(b"")) == (
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )


@st.composite
def mutated_digests(draw: st.DrawFn) -> str:
    """A valid digest broken in one of the ways clients get it wrong."""
    value = draw(digests())
    algorithm, encoded = value.split(":")
    mutation = draw(
        st.sampled_from(
            ["upper", "short", "long", "no-colon", "bad-char", "space", "empty", "algorithm"]
        )
    )
    i = draw(st.integers(0, len(encoded) - 1))
    match mutation:
        case "upper":
            # Force a letter so upper-casing changes something.
            return f"{algorithm}:{encoded[:i]}{'ABCDEF'[i % 6]}{encoded[i + 1 :]}"
        case "short":
            return f"{algorithm}:{encoded[:i]}"
        case "long":
            return f"{value}{draw(hex_of(draw(st.integers(1, 64))))}"
        case "no-colon":
            return f"{algorithm}{encoded}"
        case "bad-char":
            bad = draw(st.sampled_from(list("g:z/+. \n")))
            return f"{algorithm}:{encoded[:i]}{bad}{encoded[i + 1 :]}"
        case "space":
            return draw(st.sampled_from([f" {value}", f"{value} ", f"{value}\n"]))
        case "empty":
            return f"{algorithm}:"
        case _:
            other = draw(st.sampled_from(["md5", "sha1", "sha384", "SHA256", "blake3", ""]))
            return f"{other}:{encoded}"


@given(mutated_digests())
def test_mutated_digests_are_rejected(value: str) -> None:
    with pytest.raises(InvalidDigest):
        Digest.parse(value)


@given(st.text(max_size=200))
def test_arbitrary_text_parses_or_raises_invalid_digest(value: str) -> None:
    try:
        digest = Digest.parse(value)
    except InvalidDigest:
        return
    assert str(digest) == value
    assert digest.algorithm in SUPPORTED_ALGORITHMS


def test_unsupported_algorithm_is_named() -> None:
    with pytest.raises(InvalidDigest, match="unsupported digest algorithm 'md5'"):
        Digest.parse("md5:" + "a" * 32)
    with pytest.raises(InvalidDigest, match="unsupported"):
        new_hasher("md5")


def test_digest_is_a_frozen_hashable_value() -> None:
    a = Digest.of(b"x")
    b = Digest.parse(str(a))
    assert a == b
    assert len({a, b}) == 1
    with pytest.raises(AttributeError):
        a.encoded = "0" * 64  # type: ignore[misc]


@pytest.mark.parametrize(
    ("value", "expected"),
    [("sha256:abc", True), ("latest", False), ("v1.2.3", False), (":", True)],
)
def test_is_digest_looks_only_for_the_separator(value: str, expected: bool) -> None:
    assert is_digest(value) is expected
