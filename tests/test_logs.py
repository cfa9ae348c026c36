"""The access log: one line per request, as text or JSON, written in small batches."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any, cast

import pytest
from aiohttp import web

from dockyard import logs


@pytest.fixture
def stderr(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """What the log handler writes; tests call :func:`configure` to set it up."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    stream = io.StringIO()
    monkeypatch.setattr(logs, "configure", _configure_into(stream, logs.configure))
    yield stream
    logs.flush_access_log()
    root.handlers[:] = handlers
    root.setLevel(level)
    monkeypatch.setattr(logs, "_HANDLER", None)
    monkeypatch.setattr(logs, "_JSON", False)


def _configure_into(stream: io.StringIO, configure: Any) -> Any:
    def configure_here(log_format: str = "text", level: int = logging.INFO) -> None:
        configure(log_format, level)
        assert logs._HANDLER is not None
        logs._HANDLER.setStream(stream)

    return configure_here


def _log_one(status: int = 201, method: str = "PUT") -> None:
    request = cast(
        web.BaseRequest, SimpleNamespace(method=method, path="/v2/a/b/manifests/t", remote="::1")
    )
    response = web.Response(status=status, body=b"x" * 12, headers={"X-Request-Id": "rid-1"})
    access = logs.AccessLogger(logging.getLogger("aiohttp.access"), "")
    assert access.enabled
    access.log(request, response, 0.00234)


async def test_text_lines_look_like_every_other_log_line(stderr: io.StringIO) -> None:
    logs.configure("text")
    _log_one()
    _log_one(500, "GET")
    logs.flush_access_log()
    lines = stderr.getvalue().splitlines()
    pattern = (
        r'\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO aiohttp\.access: ::1 "%s /v2/a/b/manifests/t"'
        r" %d 12 2\.3ms rid-1"
    )
    assert re.fullmatch(pattern % ("PUT", 201), lines[0]), lines
    assert re.fullmatch(pattern % ("GET", 500), lines[1]), lines
    # The same stamp, level and logger layout as a line through the logging module.
    logging.getLogger("dockyard").warning("something else")
    other = stderr.getvalue().splitlines()[2]
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} WARNING dockyard: something else", other
    )


async def test_json_lines_carry_every_field(stderr: io.StringIO) -> None:
    logs.configure("json")
    _log_one()
    logs.flush_access_log()
    entry: dict[str, Any] = json.loads(stderr.getvalue())
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", entry.pop("time"))
    assert entry == {
        "level": "info",
        "logger": "aiohttp.access",
        "message": "request",
        "method": "PUT",
        "path": "/v2/a/b/manifests/t",
        "status": 201,
        "bytes": 12,
        "duration_ms": 2.34,
        "request_id": "rid-1",
        "remote": "::1",
    }


async def test_lines_are_written_within_moments_without_a_flush(stderr: io.StringIO) -> None:
    logs.configure("text")
    _log_one()
    _log_one()
    assert stderr.getvalue() == "", "written together, a moment later"
    await asyncio.sleep(logs._ACCESS_FLUSH * 3)
    assert len(stderr.getvalue().splitlines()) == 2


def test_outside_an_event_loop_a_line_is_written_at_once(stderr: io.StringIO) -> None:
    logs.configure("text")
    _log_one()
    assert "rid-1" in stderr.getvalue()


def test_the_access_log_follows_the_log_level(stderr: io.StringIO) -> None:
    logs.configure("text", level=logging.WARNING)
    access = logs.AccessLogger(logging.getLogger("aiohttp.access"), "")
    assert not access.enabled
