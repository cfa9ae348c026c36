"""Logging set-up and the one access-log line per request (text or JSON)."""

from __future__ import annotations

import asyncio
import atexit
import json
import logging
import sys
import time
from typing import Any, TextIO

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

_JSON = False
_HANDLER: logging.StreamHandler[TextIO] | None = None
# Access lines wait at most this long to be written, with every other line meanwhile.
_ACCESS_FLUSH = 0.05


class _AccessLines:
    """Access-log lines waiting to be written to the log handler's stream together."""

    def __init__(self) -> None:
        self._lines: list[str] = []
        self._timer: asyncio.TimerHandle | None = None
        self._handler: logging.StreamHandler[TextIO] | None = None
        self._stamps: dict[str, tuple[int, str]] = {}

    def stamp(self, now: float, datefmt: str) -> str:
        """``now`` formatted as the log formatter does (local time), once per second."""
        second = int(now)
        cached = self._stamps.get(datefmt)
        if cached is None or cached[0] != second:
            cached = (second, time.strftime(datefmt, time.localtime(now)))
            self._stamps[datefmt] = cached
        return cached[1]

    def add(self, handler: logging.StreamHandler[TextIO], line: str) -> None:
        self._lines.append(line)
        self._handler = handler
        if self._timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self.flush()
                return
            self._timer = loop.call_later(_ACCESS_FLUSH, self.flush)

    def flush(self) -> None:
        """Write the waiting lines now, in one write under the handler's lock."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        lines, self._lines = self._lines, []
        handler = self._handler
        if not lines or handler is None:
            return
        handler.acquire()
        try:
            handler.stream.write("\n".join(lines) + "\n")
            handler.flush()
        except (OSError, ValueError):
            pass  # stderr gone: nothing to tell it to
        finally:
            handler.release()


_ACCESS = _AccessLines()


def flush_access_log() -> None:
    """Write the access-log lines still waiting (on shutdown)."""
    _ACCESS.flush()


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


atexit.register(flush_access_log)


def configure(log_format: str = "text", level: int = logging.INFO) -> None:
    """Send Dockyard's logs to stderr as text or one JSON object per line."""
    global _JSON, _HANDLER
    _JSON = log_format == "json"
    handler = logging.StreamHandler(sys.stderr)
    if _JSON:
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    _HANDLER = handler


def sent_bytes(request: web.BaseRequest, response: web.StreamResponse) -> int:
    """Body bytes a response carries: Content-Length when declared (sendfile bypasses
    aiohttp's own count), else what was streamed; none for HEAD."""
    if request.method == "HEAD":
        return 0
    return response.content_length or response.body_length


class AccessLogger(AbstractAccessLogger):
    """One line per request: method, path, status, bytes, duration, request id.

    The line is formatted here, exactly as the configured handler would format it, and
    written with the others of the same moment (:class:`_AccessLines`): building a
    ``LogRecord`` and flushing the stream once per request was a tenth of the server's
    Python time on small pushes.
    """

    def log(self, request: web.BaseRequest, response: web.StreamResponse, duration: float) -> None:
        fields = {
            "method": request.method,
            "path": request.path,
            "status": response.status,
            "bytes": sent_bytes(request, response),
            "duration_ms": round(duration * 1000, 2),
            "request_id": response.headers.get("X-Request-Id", ""),
            "remote": request.remote,
        }
        if _HANDLER is None:
            self._log_record(fields)
            return
        now = time.time()
        if _JSON:
            entry: dict[str, Any] = {
                "time": _ACCESS.stamp(now, "%Y-%m-%dT%H:%M:%S"),
                "level": "info",
                "logger": self.logger.name,
                "message": "request",
            }
            entry.update(fields)
            line = json.dumps(entry)
        else:
            line = (
                f"{_ACCESS.stamp(now, '%Y-%m-%d %H:%M:%S')},{int((now - int(now)) * 1000):03d}"
                f" INFO {self.logger.name}: {fields['remote']}"
                f' "{fields["method"]} {fields["path"]}" {fields["status"]} {fields["bytes"]}'
                f" {fields['duration_ms']:.1f}ms {fields['request_id']}"
            )
        _ACCESS.add(_HANDLER, line)

    def _log_record(self, fields: dict[str, Any]) -> None:
        if _JSON:
            self.logger.info("request", extra={"fields": fields})
        else:
            self.logger.info(
                '%s "%s %s" %s %s %.1fms %s',
                fields["remote"],
                fields["method"],
                fields["path"],
                fields["status"],
                fields["bytes"],
                fields["duration_ms"],
                fields["request_id"],
            )

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)
