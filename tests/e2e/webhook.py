"""A webhook receiver on loopback that records what Alertmanager posts, as a user's receiver would."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class WebhookReceiver:
    """Every notification posted to `url`, in arrival order; each one Alertmanager's webhook JSON."""

    def __init__(self, server: ThreadingHTTPServer) -> None:
        self.server = server
        self.url = f"http://127.0.0.1:{server.server_address[1]}/alerts"
        self.lock = threading.Lock()
        self.notifications: list[dict[str, Any]] = []
        self.status = 200  # what it answers; a test sets 500 for a receiver that fails
        self.refused = 0  # notifications answered with an error status

    def alerts(self, status: str, **labels: str) -> list[dict[str, Any]]:
        """Alerts of every notification so far with this status (firing, resolved) and these labels."""
        with self.lock:
            posted = list(self.notifications)
        return [
            alert
            for notification in posted
            for alert in notification["alerts"]
            if alert["status"] == status and all(alert["labels"].get(k) == v for k, v in labels.items())
        ]


@contextmanager
def webhook_receiver() -> Iterator[WebhookReceiver]:
    """Serve on a free loopback port until the block ends (also on failure)."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with receiver.lock:
                status = receiver.status
                if status < 300:
                    receiver.notifications.append(json.loads(body))
                else:
                    receiver.refused += 1
            self.send_response(status)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:  # quiet: the test reads the notifications
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver = WebhookReceiver(server)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
