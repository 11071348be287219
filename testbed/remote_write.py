"""Remote write from outside a node's vmagent: what a node's vmagent, or a root on the node, sends the centre."""

from __future__ import annotations

import re
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Mapping

from edge_metrics.remotewrite import encode_write_request, snappy_encode

_IMPORT_LINE = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+(\d+))?")
_IMPORT_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="([^"]*)"')


def remote_write_body(text: bytes) -> bytes:
    """Lines of the import format (`name{a="b"} value [ms]`, labels without `"` or `,` in values, a name
    repeated kept) as a remote-write 1.0 body: what a node's vmagent, or a root on the node, sends the centre."""
    series = []
    for line in text.decode().splitlines():
        match = _IMPORT_LINE.fullmatch(line.strip())
        assert match, f"not an import line: {line!r}"
        name, inner, value, stamp = match.groups()
        labels = (("__name__", name), *_IMPORT_LABEL.findall(inner or ""))
        series.append((labels, [(int(stamp) if stamp else int(time.time() * 1000), float(value))]))
    return snappy_encode(encode_write_request(series))


def post_lines(url: str, text: bytes, *, context: ssl.SSLContext | None, headers: Mapping[str, str]) -> int:
    """POST import-format lines as remote write to `url` (vmauth's /api/v1/write); the HTTP status."""
    request = urllib.request.Request(
        url,
        data=remote_write_body(text),
        headers={"Content-Encoding": "snappy", "Content-Type": "application/x-protobuf", **headers},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30, context=context) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
