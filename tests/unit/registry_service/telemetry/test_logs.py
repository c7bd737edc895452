"""Log lines: ISO 8601 UTC timestamps, the request id, structured fields in JSON."""

from __future__ import annotations

import json
import logging
import re

from registry_service.telemetry.logs import (
    RequestIdFilter,
    TextFormatter,
    json_formatter,
    request_id,
)

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def _record(**extra: object) -> logging.LogRecord:
    record = logging.LogRecord("registry_service.x", logging.INFO, __file__, 1, "hello", (), None)
    record.created = 1_800_000_000.25  # 2027-01-15T08:00:00.250Z
    record.__dict__.update(extra)
    RequestIdFilter().filter(record)
    return record


def test_json_lines_have_iso_utc_time_request_id_and_extra_fields():
    token = request_id.set("r-42")
    try:
        line = json.loads(json_formatter().format(_record(datacenter="dc1", revision=7)))
    finally:
        request_id.reset(token)
    assert line["time"] == "2027-01-15T08:00:00.250Z"
    assert ISO_UTC.match(line["time"])
    assert line["level"] == "INFO" and line["message"] == "hello"
    assert line["request_id"] == "r-42"
    assert line["datacenter"] == "dc1" and line["revision"] == 7


def test_text_lines_start_with_iso_utc_time_and_show_the_request_id():
    text = TextFormatter().format(_record())
    stamp, rest = text.split(" ", 1)
    assert stamp == "2027-01-15T08:00:00.250Z"
    assert rest == "INFO registry_service.x [-]: hello"
