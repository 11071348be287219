"""Loopback ports and plain HTTP GETs: how the testbed places and probes its servers."""

from __future__ import annotations

import socket
import ssl
import urllib.request
from collections.abc import Mapping


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_get(
    url: str, timeout: float = 5, *, context: ssl.SSLContext | None = None, headers: Mapping[str, str] | None = None
) -> bytes:
    request = urllib.request.Request(url, headers=dict(headers or {}))
    with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
        return bytes(response.read())
