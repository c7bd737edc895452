"""Logging setup: text or JSON lines, ISO 8601 UTC timestamps, the request id of the call served.

Every line carries `request_id`: the RPC's or admin request's (the client's `x-request-id`, or a
new one), `-` outside a request. Structured fields passed as `extra=` (the membership transitions
carry datacenter, type, id, incarnation, revision, cause) become JSON fields; in text they are in
the message itself.
"""

from __future__ import annotations

import contextvars
import datetime
import logging
import secrets
import sys

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


class RequestIdFilter(logging.Filter):
    """Puts the request id of the call being served on each record (`-` outside one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Stamps `record.request_id`; never drops a record."""
        record.request_id = request_id.get()
        return True


def iso_utc(created: float) -> str:
    """`2026-11-22T08:15:02.123Z`: ISO 8601, UTC, milliseconds."""
    moment = datetime.datetime.fromtimestamp(created, tz=datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class TextFormatter(logging.Formatter):
    """Text lines: ISO 8601 UTC time, level, logger, request id, message."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        """ISO 8601 in UTC with milliseconds, whatever the host's time zone."""
        return iso_utc(record.created)


def json_formatter() -> logging.Formatter:
    """One JSON object a line. python-json-logger comes with the `server` extra: imported here, so
    that the SDK-only install's CLI can import this module without it."""
    from pythonjsonlogger.json import JsonFormatter

    class JsonLineFormatter(JsonFormatter):
        def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
            return iso_utc(record.created)

    return JsonLineFormatter(
        "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
    )


def configure_logging(level: str = "INFO", log_format: str = "text") -> None:
    """`text` for people, `json` (one object a line) for log pipelines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(json_formatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def ensure_request_id() -> str:
    """The request id of the RPC being served, given one now if it has none yet (an RPC that
    no interceptor saw), so that its log lines and its answer can name it."""
    current = request_id.get()
    if current == "-":
        current = secrets.token_hex(6)
        request_id.set(current)
    return current
