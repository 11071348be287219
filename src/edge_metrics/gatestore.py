"""The gate's hop to the store: one synchronous remote write, and the bisect that isolates refused samples.

Prometheus answers 400 to a whole request for one sample it refuses (too old, too far ahead, a duplicate
timestamp with another value) and appends nothing of it. So on a 400 the gate sends each half again, down to
single samples: what the store refuses is dropped and counted with the store's reason, everything else is
stored, and the node's answer waits for all of it. A 5xx, a 429 or a broken connection is StoreUnavailable: the
gate answers the node 503 and the node's vmagent keeps the block in its queue and sends it again; so is any other
status but 400 (a 413 splits the request first).
"""

from __future__ import annotations

import base64
import http.client
import ssl
import threading
import urllib.parse
from collections.abc import Callable, Sequence
from pathlib import Path

from edge_metrics.remotewrite import Labels, Point, encode_write_request, snappy_encode

Item = tuple[Labels, Point]
Send = Callable[[bytes], tuple[int, str]]
"""Remote-write one encoded WriteRequest (not yet compressed): the store's status and the start of its answer."""

TIMEOUT_SECONDS = 30.0
# The store's words for what it refuses (Prometheus' storage errors), as the `reason` label.
_REASONS = (
    ("too old", "too_old"),
    ("out of bounds", "out_of_bounds"),
    ("duplicate sample", "duplicate"),
    ("out of order", "out_of_order"),
)


class StoreUnavailable(Exception):
    """The store did not take the request (5xx, 429, no connection): nothing may be acknowledged."""


def store(items: Sequence[Item], send: Send) -> list[tuple[Item, str]]:
    """Write `items` (in order); the ones the store refused, each with its reason. Raises StoreUnavailable."""
    if not items:
        return []
    status, text = send(encode(items))
    if 200 <= status < 300:
        return []
    if status != 400 and not (status == 413 and len(items) > 1):
        # Only a 400 refuses samples; anything else (5xx, 429, 401 or 403 of a wrong password, 404) says nothing
        # about them, and refusing them for it would lose what the store takes once it is fixed.
        raise StoreUnavailable(f"store answered {status}: {text}")
    if len(items) == 1:
        return [(items[0], reason(text))]
    middle = len(items) // 2
    return store(items[:middle], send) + store(items[middle:], send)


def encode(items: Sequence[Item]) -> bytes:
    """One TimeSeries per run of items with the same labels."""
    series: list[tuple[Labels, list[Point]]] = []
    for labels, point in items:
        if series and series[-1][0] is labels:
            series[-1][1].append(point)
        else:
            series.append((labels, [point]))
    return encode_write_request(series)


def reason(text: str) -> str:
    lowered = text.lower()
    return next((name for words, name in _REASONS if words in lowered), "store_refused")


class HttpStore:
    """Remote write to the store over HTTP(S), one kept-alive connection per gate thread."""

    def __init__(self, url: str, *, ca_file: Path | None, username: str | None, password_file: Path | None) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{url!r}: expected http(s)://HOST:PORT/PATH")
        self.https = parts.scheme == "https"
        self.host, self.port = parts.hostname, parts.port
        self.path = parts.path or "/"
        self.context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None) if self.https else None
        self.username = username
        self.password_file = password_file
        self.local = threading.local()

    def headers(self) -> dict[str, str]:
        headers = {
            "Content-Encoding": "snappy",
            "Content-Type": "application/x-protobuf",
            "X-Prometheus-Remote-Write-Version": "0.1.0",
        }
        if self.username is not None and self.password_file is not None:
            # Read at each request: a rotated password takes effect without a restart.
            password = self.password_file.read_text().strip()
            token = base64.b64encode(f"{self.username}:{password}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        return headers

    def connection(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self.local, "conn", None)
        if conn is None:
            if self.https:
                conn = http.client.HTTPSConnection(self.host, self.port, timeout=TIMEOUT_SECONDS, context=self.context)
            else:
                conn = http.client.HTTPConnection(self.host, self.port, timeout=TIMEOUT_SECONDS)
            self.local.conn = conn
        return conn

    def send(self, body: bytes) -> tuple[int, str]:
        compressed = snappy_encode(body)
        for attempt in (0, 1):  # a kept-alive connection the store closed meanwhile: once more on a new one
            conn = self.connection()
            try:
                conn.request("POST", self.path, body=compressed, headers=self.headers())
                response = conn.getresponse()
                text = response.read().decode(errors="replace")[:4096]
                if response.will_close:
                    self.close()
                return response.status, text.strip()
            except (OSError, http.client.HTTPException) as error:
                self.close()
                if attempt:
                    raise StoreUnavailable(f"store unreachable: {error}") from None
        raise AssertionError("unreachable")

    def close(self) -> None:
        conn = getattr(self.local, "conn", None)
        if conn is not None:
            conn.close()
            self.local.conn = None
