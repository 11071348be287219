"""A minimal HTTP/1.1 POST over a socket, for the one request push mode makes: to the node-local vmagent.

http.client and urllib cost the long-lived process more memory than the rest of the collector's imports, for one
request type to a loopback address; the C `_socket` module has all a blocking client needs (`socket` imports
selectors and enum on top).
"""

from __future__ import annotations

import _socket
import time

from edge_metrics.samples import Value

TYPE_CHECKING = False  # `typing` for the type checker only (see log.py)
if TYPE_CHECKING:
    from typing import Final

SEND_TIMEOUT = 5.0  # seconds for one whole POST to the loopback vmagent: connect, send and answer
ERROR_CAUSES = ("connect", "timeout", "http_4xx", "http_5xx", "protocol")


_monotonic = time.monotonic


class PushError(Exception):
    """A POST that did not get a 2xx; `cause` is one of ERROR_CAUSES."""

    def __init__(self, cause: str, detail: str, *, sent: bool = False) -> None:
        super().__init__(detail)
        self.cause = cause
        self.sent = sent  # the whole request went out: vmagent may have taken it (a re-send is a duplicate)


class Endpoint(Value):
    __slots__ = ("host", "path", "port")
    host: Final[str]
    port: Final[int]
    path: Final[str]

    def __init__(self, host: str, port: int, path: str) -> None:
        self.host = host
        self.port = port
        self.path = path


def parse_url(url: str) -> Endpoint:
    """`http://host[:port]/path`; ValueError naming what is wrong (https is for the centre, not the loopback hop)."""
    if not url.startswith("http://"):
        raise ValueError(f"{url!r}: only http://HOST:PORT/PATH (the node-local vmagent) is supported")
    rest = url[len("http://") :]
    authority, slash, path = rest.partition("/")
    host, colon, port_text = authority.rpartition(":") if ":" in authority else (authority, "", "80")
    host = host.strip("[]")
    if not host or not port_text.isdigit() or not 0 < int(port_text) < 65536 or (colon and not port_text):
        raise ValueError(f"{url!r}: expected http://HOST:PORT/PATH")
    return Endpoint(host, int(port_text), slash + path if slash else "/")


def post(endpoint: Endpoint, body: bytes, timeout: float = SEND_TIMEOUT) -> int:
    """POST `body` as Prometheus text; the HTTP status when 2xx, PushError otherwise.

    `timeout` bounds the whole request, connect, send and answer together: a vmagent that accepts and never
    answers, or trickles its answer a byte at a time, costs at most that (a per-call timeout would restart at
    every byte)."""
    deadline = _monotonic() + timeout
    family = _socket.AF_INET6 if ":" in endpoint.host else _socket.AF_INET
    sock = _socket.socket(family, _socket.SOCK_STREAM)
    sent = False
    try:
        try:
            sock.settimeout(timeout)
            sock.connect((endpoint.host, endpoint.port))
        except TimeoutError as error:
            raise PushError("timeout", f"connect: {error}") from None
        except OSError as error:
            raise PushError("connect", error.strerror or str(error)) from None
        head = (
            f"POST {endpoint.path} HTTP/1.1\r\nHost: {endpoint.host}:{endpoint.port}\r\n"
            f"Content-Type: text/plain; version=0.0.4\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        try:
            sock.settimeout(_remaining(deadline))
            sock.sendall(head.encode("ascii") + body)  # the timeout bounds the whole sendall (Python >= 3.5)
            sent = True
            status_line = _read_status_line(sock, deadline)
        except TimeoutError:
            raise PushError("timeout", f"no answer within {timeout:g}s", sent=sent) from None
        except OSError as error:
            raise PushError("connect", error.strerror or str(error), sent=sent) from None
    finally:
        sock.close()
    parts = status_line.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise PushError("protocol", f"unexpected answer {status_line[:80]!r}", sent=True)
    status = int(parts[1])
    if 200 <= status < 300:
        return status
    cause = "http_4xx" if 400 <= status < 500 else "http_5xx" if status >= 500 else "protocol"
    raise PushError(cause, status_line.decode("ascii", "replace").strip())


def _remaining(deadline: float) -> float:
    left = deadline - _monotonic()
    if left <= 0:
        raise TimeoutError
    return left


def _read_status_line(sock: _socket.socket, deadline: float) -> bytes:
    received = b""
    while b"\r\n" not in received and len(received) < 8192:
        sock.settimeout(_remaining(deadline))
        chunk = sock.recv(4096)
        if not chunk:
            break
        received += chunk
    return received.partition(b"\r\n")[0]
