"""A webhook receiver on loopback that records what Alertmanager posts, as a user's receiver would: for the tests
in memory, for the demo also as one line per alert in a file a person can read."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
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
def webhook_receiver(log: Path | None = None) -> Iterator[WebhookReceiver]:
    """Serve on a free loopback port until the block ends (also on failure); with `log`, each alert of each
    notification taken is appended there as `status alertname node summary`."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with receiver.lock:
                status = receiver.status
                if status < 300:
                    receiver.notifications.append(json.loads(body))
                    if log is not None:
                        append_alerts(log, receiver.notifications[-1])
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


def append_alerts(log: Path, notification: dict[str, Any]) -> None:
    with log.open("a") as file:
        for alert in notification["alerts"]:
            labels, summary = alert["labels"], alert["annotations"].get("summary", "")
            file.write(f"{alert['status']} {labels.get('alertname')} {labels.get('node', '')} {summary}\n")
