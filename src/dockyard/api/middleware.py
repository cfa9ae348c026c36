"""The one place an exception becomes a response.

A :class:`~dockyard.oci.RegistryError` becomes the spec's JSON envelope with its code's
status; aiohttp's own routing errors (unknown path, wrong method) get the same envelope;
anything else is a bug: logged with the request id, answered as UNKNOWN/500 without a
traceback. Every response carries the API version header and the request id.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Awaitable, Callable

from aiohttp import web

from dockyard.api.base import API_VERSION
from dockyard.api.socketbody import close_if_taken
from dockyard.oci import ErrorCode, RegistryError

log = logging.getLogger("dockyard.api")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
REQUEST_ID = "X-Request-Id"
_REQUEST_ID_KEY = web.RequestKey("request_id", str)


def error_response(error: RegistryError) -> web.Response:
    """The spec's error body for ``error``, with its status and extra headers."""
    return web.json_response(error.to_json(), status=error.status, headers=error.headers)


def _from_http(exc: web.HTTPException) -> RegistryError:
    if exc.status == 405:
        allow = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else {}
        return RegistryError(
            ErrorCode.UNSUPPORTED, f"{exc.reason}: this endpoint does not take it", headers=allow
        )
    if exc.status == 404:
        return RegistryError(ErrorCode.NOT_FOUND)
    if exc.status == 413:
        return RegistryError(ErrorCode.SIZE_INVALID, "request body too large", status=413)
    return RegistryError(ErrorCode.UNKNOWN, exc.reason, status=exc.status)


def request_id(request: web.BaseRequest) -> str:
    """The id of this request: the client's ``X-Request-Id``, or a fresh one."""
    rid = request.get(_REQUEST_ID_KEY)
    if rid is None:
        rid = request.headers.get(REQUEST_ID, "")[:64] or _new_id()
        request[_REQUEST_ID_KEY] = rid
    return rid


class _Ids:
    """Fresh request ids: 32 hex digits, a random prefix per process and a counter.

    Unique like a uuid4 without a ``getrandom`` call and a UUID object per request
    (a few percent of a manifest GET's time); a forked worker draws its own prefix.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._prefix = os.urandom(10).hex()
        self._count = itertools.count()

    def __call__(self) -> str:
        return f"{self._prefix}{next(self._count) & 0xFFFFFFFFFFFF:012x}"


_new_id = _Ids()
os.register_at_fork(after_in_child=_new_id.reset)


async def stamp_headers(request: web.BaseRequest, response: web.StreamResponse) -> None:
    """``on_response_prepare``: every answer, streamed or not, says who and what it is."""
    response.headers.update(API_VERSION)
    response.headers[REQUEST_ID] = request_id(request)
    close_if_taken(request, response)


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Render errors as OCI envelopes (see the module docstring)."""
    try:
        return await handler(request)
    except RegistryError as e:
        return error_response(e)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        return error_response(_from_http(e))
    except (ConnectionResetError, OSError) as e:
        log.info("%s %s: connection lost: %s", request.method, request.path, e)
        raise
    except Exception:
        log.exception(
            "unhandled error in %s %s (request %s)",
            request.method,
            request.path,
            request_id(request),
        )
        return error_response(RegistryError(ErrorCode.UNKNOWN))
