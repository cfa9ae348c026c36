"""Repository names, tags and references against the distribution-spec grammars."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dockyard.oci import (
    Digest,
    InvalidDigest,
    InvalidName,
    InvalidTag,
    parse_reference,
    referrers_tag,
    validate_name,
    validate_tag,
)

# Written out again from spec.md ("Pulling manifests") rather than imported, so the tests
# check the implementation against the spec and not against itself.
SPEC_NAME = r"[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*"
SPEC_TAG = r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}"
MAX_NAME = 255

_ALNUM = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=8)
_SEPARATOR = st.sampled_from([".", "_", "__", "-", "--", "---"])


@st.composite
def _components(draw: st.DrawFn) -> str:
    """``[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*``, built piece by piece (faster than from_regex)."""
    parts = [draw(_ALNUM)]
    for _ in range(draw(st.integers(0, 3))):
        parts += [draw(_SEPARATOR), draw(_ALNUM)]
    return "".join(parts)


names = (
    st.lists(_components(), min_size=1, max_size=5)
    .map("/".join)
    .filter(lambda n: len(n) <= MAX_NAME)
)
tags = st.from_regex(SPEC_TAG, fullmatch=True)


@given(st.from_regex(SPEC_NAME, fullmatch=True).filter(lambda n: len(n) <= MAX_NAME))
def test_names_from_the_spec_regex_are_accepted(name: str) -> None:
    assert validate_name(name) == name


@given(names)
def test_names_from_the_spec_grammar_are_accepted(name: str) -> None:
    assert re.fullmatch(SPEC_NAME, name)
    assert validate_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "a",
        "0",
        "library/ubuntu",
        "a-b--c---d",
        "a.b_c__d",
        "team-a/app/api.v2",
        "x/" * 126 + "yz",  # exactly 255 characters
    ],
)
def test_typical_names_are_accepted(name: str) -> None:
    assert len(name) <= MAX_NAME
    assert validate_name(name) == name


@st.composite
def mutated_names(draw: st.DrawFn) -> str:
    """A valid name with something the grammar forbids inserted somewhere."""
    name = draw(names)
    i = draw(st.integers(0, len(name)))
    bad = draw(
        st.sampled_from(
            # Upper case, empty components, doubled or mixed separators, characters
            # outside the alphabet: none of these can appear anywhere in a valid name.
            ["A", "Z", "..", "//", "___", ".-", "-.", "_.", "._", " ", ":", "@", "+", "~", "é"]
        )
    )
    return name[:i] + bad + name[i:]


@given(mutated_names())
def test_mutated_names_are_rejected(name: str) -> None:
    with pytest.raises(InvalidName):
        validate_name(name)


@given(names, st.sampled_from(["/", ".", "_", "__", "-"]), st.booleans())
def test_names_cannot_start_or_end_with_a_separator(name: str, sep: str, at_start: bool) -> None:
    bad = sep + name if at_start else name + sep
    with pytest.raises(InvalidName):
        validate_name(bad)


@given(st.lists(names, min_size=2, max_size=4), st.integers(1, 3))
def test_empty_path_components_are_rejected(parts: list[str], position: int) -> None:
    position = min(position, len(parts) - 1)
    name = "/".join([*parts[:position], "", *parts[position:]])
    with pytest.raises(InvalidName):
        validate_name(name)


@given(names)
def test_names_longer_than_255_characters_are_rejected(name: str) -> None:
    parts = name.split("/")
    while len(name) <= MAX_NAME:
        name = f"{name}/{parts[0]}"
    with pytest.raises(InvalidName, match="255"):
        validate_name(name)


@given(st.text(alphabet="abAB09._-/:", max_size=40))
def test_validate_name_agrees_with_the_spec(name: str) -> None:
    valid = re.fullmatch(SPEC_NAME, name) is not None
    try:
        validate_name(name)
    except InvalidName:
        assert not valid
    else:
        assert valid


def test_empty_name_is_rejected() -> None:
    with pytest.raises(InvalidName):
        validate_name("")


def test_name_error_message_names_the_value() -> None:
    with pytest.raises(InvalidName, match="'Library/ubuntu'"):
        validate_name("Library/ubuntu")


# -- tags -------------------------------------------------------------------------


@given(tags)
def test_tags_from_the_spec_grammar_are_accepted(tag: str) -> None:
    assert validate_tag(tag) == tag


@st.composite
def mutated_tags(draw: st.DrawFn) -> str:
    tag = draw(tags)
    kind = draw(st.sampled_from(["leading", "char", "long"]))
    if kind == "leading":
        return draw(st.sampled_from([".", "-"])) + tag[:127]
    if kind == "long":
        return tag + "a" * (129 - len(tag))
    i = draw(st.integers(0, len(tag)))
    bad = draw(st.sampled_from(["/", ":", "@", "+", " ", "\n", "é", "*", "~"]))
    return tag[:i] + bad + tag[i:]


@given(mutated_tags())
def test_mutated_tags_are_rejected(tag: str) -> None:
    with pytest.raises(InvalidTag):
        validate_tag(tag)


@given(st.text(alphabet="aZ9._-/:+", max_size=140))
def test_validate_tag_agrees_with_the_spec(tag: str) -> None:
    valid = re.fullmatch(SPEC_TAG, tag) is not None
    try:
        validate_tag(tag)
    except InvalidTag:
        assert not valid
    else:
        assert valid


@pytest.mark.parametrize("tag", ["", ".hidden", "-rc1", "a" * 129, "v1/2", "latest "])
def test_invalid_tags(tag: str) -> None:
    with pytest.raises(InvalidTag):
        validate_tag(tag)


def test_longest_tag_is_accepted() -> None:
    assert validate_tag("_" + "a" * 127) == "_" + "a" * 127


# -- references -------------------------------------------------------------------


@given(tags)
def test_a_reference_without_colon_is_a_tag(tag: str) -> None:
    assert parse_reference(tag) == tag


@given(st.binary(max_size=64), st.sampled_from(["sha256", "sha512"]))
def test_a_reference_with_colon_is_a_digest(data: bytes, algorithm: str) -> None:
    digest = Digest.of(data, algorithm)
    assert parse_reference(str(digest)) == digest


@pytest.mark.parametrize(
    ("reference", "error"),
    [
        ("sha256:abc", InvalidDigest),
        ("latest:tag", InvalidDigest),
        ("-bad", InvalidTag),
        ("", InvalidTag),
    ],
)
def test_invalid_references(reference: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        parse_reference(reference)


@given(st.binary(max_size=64), st.sampled_from(["sha256", "sha512"]))
def test_referrers_tag_is_a_valid_tag(data: bytes, algorithm: str) -> None:
    digest = Digest.of(data, algorithm)
    tag = referrers_tag(digest)
    assert validate_tag(tag) == tag
    # The referrers tag schema: <alg>-<ref>, ref truncated to 64 characters.
    assert tag == f"{algorithm}-{digest.encoded[:64]}"
