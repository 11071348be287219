"""--metrics-listen: the metrics file over loopback HTTP, as the node's vmagent scrapes it."""

from __future__ import annotations

import io
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from edge_metrics.log import Logger
from edge_metrics.metricsendpoint import ListenError, MetricsEndpoint, parse_listen, start

FILE = "# HELP edge_collector_up x\n# TYPE edge_collector_up gauge\nedge_collector_up 1\n"


def fetch(port: int, request: bytes) -> tuple[int, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(request)
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[MetricsEndpoint, Path, io.StringIO]]:
    output = tmp_path / "custom_metrics.prom"
    stream = io.StringIO()
    endpoint = start("127.0.0.1:0", output.read_bytes, Logger(stream=stream))
    try:
        yield endpoint, output, stream
    finally:
        endpoint.close()


class TestParseListen:
    @pytest.mark.parametrize(("text", "expected"), [("127.0.0.1:9101", ("127.0.0.1", 9101)),
                                                    ("[::1]:9101", ("::1", 9101)),
                                                    ("127.0.0.2:1", ("127.0.0.2", 1))])
    def test_loopback_addresses_are_taken(self, text: str, expected: tuple[str, int]) -> None:
        """A loopback HOST:PORT is what the node's own vmagent reaches."""
        assert parse_listen(text) == expected

    @pytest.mark.parametrize(("text", "reason"), [("0.0.0.0:9101", "only a loopback address"),
                                                  ("198.18.0.1:9101", "only a loopback address"),
                                                  ("localhost:9101", "must be an IP address"),
                                                  ("127.0.0.1", "expected HOST:PORT"),
                                                  ("127.0.0.1:70000", "expected HOST:PORT")])
    def test_anything_else_is_refused_with_the_reason(self, text: str, reason: str) -> None:
        """The endpoint never faces the network: a wildcard or routable address is a usage error."""
        with pytest.raises(ListenError, match=reason):
            parse_listen(text)


class TestServing:
    def test_get_metrics_serves_the_file_as_written_now(
            self, served: tuple[MetricsEndpoint, Path, io.StringIO]) -> None:
        """Each scrape reads the file again: what node_exporter's textfile collector would serve."""
        endpoint, output, stream = served
        output.write_text(FILE)
        status, body = fetch(endpoint.port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status == 200
        assert [f.name for f in text_string_to_metric_families(body.decode())] == ["edge_collector_up"]
        output.write_text(FILE.replace(" 1\n", " 2\n"))
        assert fetch(endpoint.port, b"GET /metrics HTTP/1.1\r\n\r\n")[1].endswith(b"edge_collector_up 2\n")
        assert "url=http://127.0.0.1:0/metrics" in stream.getvalue()

    def test_no_file_yet_is_a_failed_scrape(self, served: tuple[MetricsEndpoint, Path, io.StringIO]) -> None:
        """Before the first write the scrape fails (vmagent's `up` is 0) rather than serving nothing as healthy."""
        status, body = fetch(served[0].port, b"GET /metrics HTTP/1.1\r\n\r\n")
        assert status == 503 and b"not readable" in body

    @pytest.mark.parametrize(("request_line", "status"), [(b"GET / HTTP/1.1", 404), (b"POST /metrics HTTP/1.1", 405),
                                                          (b"GET /metrics/../x HTTP/1.1", 404)])
    def test_only_get_metrics(self, served: tuple[MetricsEndpoint, Path, io.StringIO], request_line: bytes,
                              status: int) -> None:
        served[1].write_text(FILE)
        assert fetch(served[0].port, request_line + b"\r\n\r\n")[0] == status

    def test_a_taken_port_is_an_error_at_start(self, served: tuple[MetricsEndpoint, Path, io.StringIO],
                                               tmp_path: Path) -> None:
        """Two listeners on one port: the second says so at start (not a silent gap at the centre)."""
        with pytest.raises(ListenError, match="cannot listen"):
            start(f"127.0.0.1:{served[0].port}", (tmp_path / "x").read_bytes, Logger(stream=io.StringIO()))


class TestCommandLine:
    def test_a_routable_address_is_a_usage_error_naming_the_variable(self, capsys: pytest.CaptureFixture[str],
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
        """EDGE_METRICS_LISTEN=0.0.0.0:9101 (the node's network): exit 2, one line naming the variable."""
        from edge_metrics.cli import main

        monkeypatch.setenv("EDGE_METRICS_LISTEN", "0.0.0.0:9101")
        assert main(["run", "--once", "--output", "-"]) == 2
        error = capsys.readouterr().err
        assert error.count("\n") == 1 and "EDGE_METRICS_LISTEN (--metrics-listen)" in error and "loopback" in error
