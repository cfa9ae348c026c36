"""The one table of registry error codes, and the exception that carries them.

Every error a client can see is a member of :class:`ErrorCode`. Each member knows
its spec message and HTTP status, so no handler ever picks a status inline; the
middleware renders a :class:`RegistryError` as the spec's JSON envelope::

    {"errors": [{"code": "BLOB_UNKNOWN", "message": "...", "detail": ...}]}

Exception tree::

    Exception
    └── RegistryError          raised by the core and the API; carries one ErrorCode
    ValueError
    ├── InvalidDigest          oci.digest: a string that is not a digest we accept
    ├── InvalidName            oci.reference: a repository name outside the grammar
    ├── InvalidTag             oci.reference: a tag outside the grammar
    └── InvalidManifest        oci.manifest: bytes that are not a manifest we accept

The ``ValueError`` subclasses know nothing of HTTP; the core maps them to codes.
"""

from __future__ import annotations

import enum
from typing import Any


class ErrorCode(enum.Enum):
    """OCI Distribution Spec v1.1 error codes (spec.md, "Error Codes", code-1..14), in order.

    ``value`` is the default message; ``status`` the HTTP status the spec's endpoint table
    gives the code. Codes marked Dockyard-only extend the table the way the spec allows
    ("the registry MAY add new error codes"); clients treat them as UNKNOWN.
    """

    BLOB_UNKNOWN = ("blob unknown to registry", 404)
    BLOB_UPLOAD_INVALID = ("blob upload invalid", 400)
    BLOB_UPLOAD_UNKNOWN = ("blob upload unknown to registry", 404)
    DIGEST_INVALID = ("provided digest did not match uploaded content", 400)
    MANIFEST_BLOB_UNKNOWN = ("manifest references a manifest or blob unknown to registry", 404)
    MANIFEST_INVALID = ("manifest invalid", 400)
    MANIFEST_UNKNOWN = ("manifest unknown to registry", 404)
    NAME_INVALID = ("invalid repository name", 400)
    NAME_UNKNOWN = ("repository name not known to registry", 404)
    SIZE_INVALID = ("provided length did not match content length", 400)
    UNAUTHORIZED = ("authentication required", 401)
    DENIED = ("requested access to the resource is denied", 403)
    UNSUPPORTED = ("the operation is unsupported", 405)
    TOOMANYREQUESTS = ("too many requests", 429)
    # Dockyard-only codes.
    RANGE_INVALID = ("requested range not satisfiable", 416)  # blob GET with a bad Range
    PAGINATION_NUMBER_INVALID = ("invalid number of results requested", 400)  # bad ?n=
    NOT_FOUND = ("no such endpoint", 404)  # a path outside the API
    # The pull-through cache cannot reach its upstream and holds no copy to serve.
    UNAVAILABLE = ("upstream registry unavailable", 503)
    UNKNOWN = ("unknown error", 500)

    def __init__(self, message: str, status: int) -> None:
        self.message = message
        self.status = status


class RegistryError(Exception):
    """An error the client should see, as one OCI error code.

    ``status`` defaults to the code's own; pass it only where the spec's endpoint table
    asks for another (416 for an out-of-order chunk, 413 for an oversize manifest).
    ``headers`` are added to the error response (for example ``Range`` on a 416).
    """

    def __init__(
        self,
        code: ErrorCode,
        message: str | None = None,
        *,
        detail: Any = None,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.code = code
        self.message = message or code.message
        self.detail = detail
        self.status = status or code.status
        self.headers = headers or {}
        super().__init__(f"{code.name}: {self.message}")

    def to_json(self) -> dict[str, Any]:
        """The spec's error envelope for this error."""
        entry: dict[str, Any] = {"code": self.code.name, "message": self.message}
        if self.detail is not None:
            entry["detail"] = self.detail
        return {"errors": [entry]}


class InvalidDigest(ValueError):
    """A string that is not a well-formed digest of a supported algorithm."""


class InvalidName(ValueError):
    """A repository name outside the spec's grammar."""


class InvalidTag(ValueError):
    """A tag outside the spec's grammar."""


class InvalidManifest(ValueError):
    """Bytes that are not a manifest Dockyard accepts; the message says why."""
