"""Repository names, tags and manifest references (distribution-spec, "Pulling manifests")."""

from __future__ import annotations

import functools
import re

from dockyard.oci.digest import Digest
from dockyard.oci.errors import InvalidName, InvalidTag

# spec.md: <name> MUST match this expression; the whole name is at most 255 characters.
_NAME = re.compile(
    r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*"
)
_TAG = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}")
MAX_NAME_LENGTH = 255


def validate_name(name: str) -> str:
    """Return ``name`` if it is a valid repository name, else raise :class:`InvalidName`."""
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidName(f"repository name is {len(name)} characters; at most 255 are allowed")
    if not _name_matches(name):
        raise InvalidName(
            f"invalid repository name {name!r}: lowercase path components of [a-z0-9] "
            "separated by '.', '_', '__' or '-', joined by '/'"
        )
    return name


@functools.lru_cache(maxsize=4096)
def _name_matches(name: str) -> bool:
    # Every request names its repository, usually one of a few: the grammar's regex
    # (nested groups, backtracking) runs once per name, not once per request.
    return _NAME.fullmatch(name) is not None


def validate_tag(tag: str) -> str:
    """Return ``tag`` if it matches ``[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}``, else raise."""
    if not _TAG.fullmatch(tag):
        raise InvalidTag(
            f"invalid tag {tag[:200]!r}: up to 128 characters of [a-zA-Z0-9._-], "
            "not starting with '.' or '-'"
        )
    return tag


def parse_reference(reference: str) -> str | Digest:
    """A manifest reference: a :class:`Digest` when it contains ``:``, else a tag.

    Raises :class:`~dockyard.oci.errors.InvalidDigest` or :class:`InvalidTag`.
    """
    if ":" in reference:
        return Digest.parse(reference)
    return validate_tag(reference)


def referrers_tag(digest: Digest) -> str:
    """The referrers tag schema's tag for ``digest`` (``sha256-<hex>``)."""
    encoded = re.sub(r"[^a-zA-Z0-9._-]", "-", digest.encoded[:64])
    algorithm = re.sub(r"[^a-zA-Z0-9._-]", "-", digest.algorithm[:32])
    return f"{algorithm}-{encoded}"
