from __future__ import annotations

import io
import json
import os
import re
import time
from collections.abc import Iterator

import pytest

from edge_metrics.log import Logger, local_timestamp


@pytest.fixture
def shanghai() -> Iterator[None]:
    old = os.environ.get("TZ")
    os.environ["TZ"] = "Asia/Shanghai"
    time.tzset()
    yield
    if old is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = old
    time.tzset()


class TestLogger:
    def test_text_line(self, shanghai: None) -> None:
        """One line: local time with the +08:00 offset, level, message, key=value fields (quoted when needed)."""
        stream = io.StringIO()
        Logger(stream=stream).error("script failed", script="space_server", stderr="i2c read failed: x=1")
        line = stream.getvalue()
        assert re.fullmatch(
            r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+08:00 ERROR script failed script=space_server "
            r'stderr="i2c read failed: x=1"\n',
            line,
        ), line

    def test_json_line(self, shanghai: None) -> None:
        """--log-format json: one JSON object a line with time, level, msg and the fields."""
        stream = io.StringIO()
        Logger(stream=stream, json_format=True).warning("invalid line", script="s", line=3)
        record = json.loads(stream.getvalue())
        assert record["level"] == "warning" and record["msg"] == "invalid line"
        assert record["script"] == "s" and record["line"] == 3
        assert record["time"].endswith("+08:00")

    def test_level_threshold(self) -> None:
        """Debug lines (successful runs) stay quiet at the default level."""
        stream = io.StringIO()
        log = Logger(stream=stream, level="info")
        log.debug("script ran")
        log.info("config loaded")
        assert "script ran" not in stream.getvalue()
        assert "config loaded" in stream.getvalue()

    def test_utc_and_negative_offsets(self) -> None:
        """The offset follows the zone, including zones west of UTC."""
        old = os.environ.get("TZ")
        try:
            for zone, suffix in (("UTC", "+00:00"), ("America/New_York", "-05:00")):
                os.environ["TZ"] = zone
                time.tzset()
                # 2026-01-15 12:00 UTC: no daylight saving time in New York.
                assert local_timestamp(1768478400.25).endswith(".250" + suffix)
        finally:
            if old is None:
                os.environ.pop("TZ", None)
            else:
                os.environ["TZ"] = old
            time.tzset()
