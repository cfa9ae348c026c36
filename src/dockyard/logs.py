"""Logging set-up and the one access-log line per request (text or JSON)."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

_JSON = False


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


def configure(log_format: str = "text", level: int = logging.INFO) -> None:
    """Send Dockyard's logs to stderr as text or one JSON object per line."""
    global _JSON
    _JSON = log_format == "json"
    handler = logging.StreamHandler(sys.stderr)
    if _JSON:
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def sent_bytes(request: web.BaseRequest, response: web.StreamResponse) -> int:
    """Body bytes a response carries: Content-Length when declared (sendfile bypasses
    aiohttp's own count), else what was streamed; none for HEAD."""
    if request.method == "HEAD":
        return 0
    return response.content_length or response.body_length


class AccessLogger(AbstractAccessLogger):
    """One line per request: method, path, status, bytes, duration, request id."""

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
