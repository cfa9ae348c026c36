"""Content digests: ``algorithm ":" encoded`` (OCI image-spec, descriptor.md "Digests")."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Protocol

from dockyard.oci.errors import InvalidDigest

# The grammar is open-ended, but a registry verifies content, so it accepts only the
# registered algorithms it can compute, each with its exact encoded form.
_ENCODED = {
    "sha256": re.compile(r"[a-f0-9]{64}"),
    "sha512": re.compile(r"[a-f0-9]{128}"),
}
_GRAMMAR = re.compile(r"[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")

SUPPORTED_ALGORITHMS = tuple(_ENCODED)


class Hasher(Protocol):
    """The part of a hashlib object Dockyard uses."""

    def update(self, data: bytes | memoryview, /) -> None: ...
    def hexdigest(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Digest:
    """A validated digest such as ``sha256:6c3c…``."""

    algorithm: str
    encoded: str

    @classmethod
    def parse(cls, value: str) -> Digest:
        """Parse ``value``; raise :class:`InvalidDigest` when it is malformed or unsupported."""
        if not _GRAMMAR.fullmatch(value):
            raise InvalidDigest(f"{value!r} is not a digest (algorithm:hex)")
        algorithm, encoded = value.split(":", 1)
        pattern = _ENCODED.get(algorithm)
        if pattern is None:
            raise InvalidDigest(
                f"unsupported digest algorithm {algorithm!r} "
                f"(supported: {', '.join(SUPPORTED_ALGORITHMS)})"
            )
        if not pattern.fullmatch(encoded):
            raise InvalidDigest(f"{value!r} is not a valid {algorithm} digest")
        return cls(algorithm, encoded)

    @classmethod
    def of(cls, data: bytes, algorithm: str = "sha256") -> Digest:
        """The digest of ``data``."""
        h = new_hasher(algorithm)
        h.update(data)
        return cls(algorithm, h.hexdigest())

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.encoded}"


def new_hasher(algorithm: str) -> Hasher:
    """A fresh hash object for a supported ``algorithm``."""
    if algorithm not in _ENCODED:
        raise InvalidDigest(f"unsupported digest algorithm {algorithm!r}")
    return hashlib.new(algorithm)


def is_digest(value: str) -> bool:
    """Whether ``value`` has the shape of a digest (contains the ``:`` separator)."""
    return ":" in value
