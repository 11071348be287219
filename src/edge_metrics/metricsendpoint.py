"""--metrics-listen: the collector's metrics file served over loopback HTTP, for a node without node_exporter.

The node's vmagent scrapes GET /metrics here with the job name the rules select (deploy/mixin/config.yaml's
edgeSelector), so the collector's health reaches the centre without a node_exporter of our own on :9100. What it
serves is the very file the collector writes (read at each request, through a callback), so its meaning is
node_exporter's: a collector that hangs leaves the file, and its last-write time, unchanged.

A plain socket loop in one daemon thread rather than http.server: that module and its imports would cost the
long-lived process more resident memory than the rest of the collector (see httppost.py).
"""

from __future__ import annotations

import _thread
import contextlib
import socket

TYPE_CHECKING = False  # `typing` for the type checker only (see log.py)
if TYPE_CHECKING:
    from collections.abc import Callable

    from edge_metrics.log import Logger

PATH = b"/metrics"
REQUEST_MAX_BYTES = 8192  # a scraper's request line and headers; more is not a scrape
CLIENT_TIMEOUT_SECONDS = 5.0  # a client that sends nothing does not hold the one serving thread for long
CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"


class ListenError(ValueError):
    """A --metrics-listen value that is not a loopback HOST:PORT, or that cannot be bound."""


def parse_listen(text: str) -> tuple[str, int]:
    """`127.0.0.1:9101` or `[::1]:9101` -> (host, port). Loopback only: the endpoint is for the node's own vmagent."""
    host, sep, port_text = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not port_text.isdigit() or not 0 <= int(port_text) < 65536:
        raise ListenError(f"{text!r}: expected HOST:PORT, e.g. 127.0.0.1:9101")
    if not _is_address(host):
        raise ListenError(f"{text!r}: HOST must be an IP address (127.0.0.1 or ::1)")
    if not (host == "::1" or (":" not in host and host.split(".")[0] == "127")):
        raise ListenError(f"{text!r}: only a loopback address is allowed; the node's own vmagent scrapes it")
    return host, int(port_text)


def _is_address(host: str) -> bool:
    # socket rather than ipaddress: that module costs the long-lived process resident memory for one check.
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
    except OSError:
        return False
    return True


def start(listen: str, read: Callable[[], bytes], log: Logger) -> MetricsEndpoint:
    """Bind now (so a taken port is an error at start, not a silent gap), serve from a daemon thread."""
    host, port = parse_listen(listen)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(16)
    except OSError as error:
        sock.close()
        raise ListenError(f"{listen!r}: cannot listen: {error.strerror}") from None
    endpoint = MetricsEndpoint(sock, read, log)
    # _thread rather than threading: the one thread needs no join, no name and none of that module's imports.
    _thread.start_new_thread(endpoint.serve_forever, ())
    log.info("serving the metrics file for the node's vmagent", url=f"http://{listen}/metrics")
    return endpoint


class MetricsEndpoint:
    def __init__(self, sock: socket.socket, read: Callable[[], bytes], log: Logger) -> None:
        self.sock = sock
        self.read = read
        self.log = log

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def serve_forever(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:  # closed by close()
                return
            with client:
                try:
                    client.settimeout(CLIENT_TIMEOUT_SECONDS)
                    client.sendall(self.answer(_read_request(client)))
                except OSError:
                    pass  # the scraper went away or was too slow: its next scrape is a new connection

    def answer(self, request: bytes) -> bytes:
        """The whole HTTP/1.0 response to one request head."""
        method, _, rest = request.partition(b" ")
        target = rest.partition(b" ")[0].partition(b"?")[0]
        if method not in (b"GET", b"HEAD"):
            return _response(405, b"Method Not Allowed", b"only GET /metrics\n")
        if target != PATH:
            return _response(404, b"Not Found", b"only GET /metrics\n")
        try:
            body = self.read()
        except OSError as error:
            # Before the first write, or the file removed: the scrape fails (`up` 0), as node_exporter's would not.
            return _response(503, b"Service Unavailable", f"metrics file not readable: {error.strerror}\n".encode())
        return _response(200, b"OK", body, head_only=method == b"HEAD")

    def close(self) -> None:
        with contextlib.suppress(OSError):  # already shut down
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
        self.sock.close()


def _read_request(client: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data and b"\n\n" not in data and len(data) < REQUEST_MAX_BYTES:
        chunk = client.recv(REQUEST_MAX_BYTES - len(data))
        if not chunk:
            break
        data += chunk
    return data


def _response(code: int, reason: bytes, body: bytes, *, head_only: bool = False) -> bytes:
    content_type = CONTENT_TYPE if code == 200 else b"text/plain; charset=utf-8"
    head = b"HTTP/1.0 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % (
        code, reason, content_type, len(body))
    return head if head_only else head + body
