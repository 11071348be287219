"""A vmagent stand-in on loopback for the push path's faults: it reads each POST whole and then answers as told
(at once, late, never, a byte at a time, 503, 400 for bodies with a marker), and keeps every body it read."""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress

OK = b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n"


class FakeVmagent:
    def __init__(self) -> None:
        self.mode = "ok"  # ok | late | silent | trickle | stopped | unavailable | refuse_marked
        self.delay = 0.0  # `late`: seconds before the answer
        self.marker = b""  # `refuse_marked`: a body containing it gets 400
        self.received: list[bytes] = []  # every body read whole (vmagent would have imported it)
        self.closing = threading.Event()
        fake = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                fake.answer(self.request)

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/api/v1/import/prometheus"

    def rows(self) -> list[bytes]:
        return [line for body in self.received for line in body.splitlines() if line]

    def answer(self, sock: socket.socket) -> None:
        if self.mode == "stopped":  # as a SIGSTOPped vmagent: the kernel accepts, nothing reads
            self.closing.wait()
            return
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                return
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        while len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                return
            body += chunk
        mode = self.mode
        if mode == "unavailable":
            sock.sendall(b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\r\n")
            return
        if mode == "refuse_marked" and self.marker in body:
            sock.sendall(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n")
            return
        self.received.append(body)
        if mode == "silent":
            self.closing.wait()
        elif mode == "trickle":
            for byte in OK:
                sock.sendall(bytes([byte]))
                if self.closing.wait(3.0):
                    return
        elif mode == "late" and self.closing.wait(self.delay):
            return
        with suppress(OSError):  # the collector gave up on this request: its deadline passed
            sock.sendall(OK)


@contextmanager
def fake_vmagent() -> Iterator[FakeVmagent]:
    fake = FakeVmagent()
    fake.thread.start()
    try:
        yield fake
    finally:
        fake.closing.set()
        fake.server.shutdown()
        fake.server.server_close()
