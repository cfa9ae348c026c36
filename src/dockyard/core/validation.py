"""Turn raw strings from a request into validated protocol values, or a RegistryError."""

from __future__ import annotations

from dockyard.oci import (
    Digest,
    ErrorCode,
    InvalidDigest,
    InvalidName,
    InvalidTag,
    RegistryError,
    validate_name,
    validate_tag,
)


def repository_name(raw: str) -> str:
    """A valid repository name, or NAME_INVALID naming what is wrong."""
    try:
        return validate_name(raw)
    except InvalidName as e:
        raise RegistryError(ErrorCode.NAME_INVALID, str(e), detail={"name": raw[:300]}) from None


def digest(raw: str) -> Digest:
    """A valid, supported digest, or DIGEST_INVALID naming what is wrong."""
    try:
        return Digest.parse(raw)
    except InvalidDigest as e:
        raise RegistryError(
            ErrorCode.DIGEST_INVALID, str(e), detail={"digest": raw[:300]}
        ) from None


def tag(raw: str, code: ErrorCode = ErrorCode.MANIFEST_INVALID) -> str:
    """A valid tag, or ``code`` (MANIFEST_INVALID by default) naming what is wrong."""
    try:
        return validate_tag(raw)
    except InvalidTag as e:
        raise RegistryError(code, str(e), detail={"tag": raw[:300]}) from None


def reference(raw: str, code: ErrorCode = ErrorCode.MANIFEST_INVALID) -> str | Digest:
    """A manifest reference: a Digest when it contains ':', else a tag."""
    if ":" in raw:
        return digest(raw)
    return tag(raw, code)
