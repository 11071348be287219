"""The gate's HTTP server: what vmauth meets before a request is handled, when the gate is short of CPU."""

from __future__ import annotations

import io
import socket

from edge_metrics.gate import Gate, GateServer
from edge_metrics.log import Logger
from tests.unit.test_gate import SETTINGS

# More connections than socketserver's default backlog holds, fewer than any kernel's maximum.
DIALS = 64


def quiet_gate(log: io.StringIO) -> Gate:
    return Gate(SETTINGS, send=lambda body: (204, ""), log=Logger(stream=log))


def test_dials_wait_while_no_thread_accepts() -> None:
    """A gate that accepts nothing for a while (no CPU) keeps vmauth's dials queued, not timing out: a timed-out
    dial makes vmauth take the gate for down and refuse every node's writes."""
    server = GateServer(("127.0.0.1", 0), quiet_gate(io.StringIO()))  # listening, never accepting
    dials: list[socket.socket] = []
    try:
        for _ in range(DIALS):
            dials.append(socket.create_connection(server.server_address[:2], timeout=0.5))
    except TimeoutError:
        pass
    finally:
        for dial in dials:
            dial.close()
        server.server_close()
    assert len(dials) == DIALS, f"only {len(dials)} dials connected while the gate accepted none"


def test_a_client_that_hangs_up_is_no_error() -> None:
    """A scraper that gives up before its answer costs nothing: no traceback, no error line; other errors are
    one line naming the client."""
    log = io.StringIO()
    server = GateServer(("127.0.0.1", 0), quiet_gate(log))
    try:
        for error in (BrokenPipeError(), ConnectionResetError()):
            try:
                raise error
            except OSError:
                server.handle_error(None, ("127.0.0.1", 1))
        assert log.getvalue() == ""
        try:
            raise ValueError("bad")
        except ValueError:
            server.handle_error(None, ("127.0.0.1", 2))
    finally:
        server.server_close()
    assert "request failed" in log.getvalue() and "ValueError('bad')" in log.getvalue()
