"""Logging setup: text or JSON lines, with the request id of the RPC being served."""

from __future__ import annotations

import contextvars
import logging
import secrets
import sys

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


def configure_logging(level: str = "INFO", log_format: str = "text") -> None:
    """`text` for people, `json` (one object a line) for log pipelines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RequestIdFilter())
    if log_format == "json":
        from pythonjsonlogger.json import JsonFormatter

        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            )
        )
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s")
        )
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
