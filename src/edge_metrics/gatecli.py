"""`edge-metrics gate` options: the centre's per-node gate (gate.py) listening on the pod's loopback.

Exit codes as the collector's: 0 stopped by a signal, 2 bad usage.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from edge_metrics.durations import DurationError, parse_duration
from edge_metrics.gate import Gate, GateServer, Settings
from edge_metrics.gatelimits import Limits
from edge_metrics.gatestore import HttpStore
from edge_metrics.log import Logger

DESCRIPTION = """\
Between vmauth and the store at the centre: each node's remote write, with the node and cluster vmauth put in
the path (/node/<node>/<cluster>/api/v1/write), checked against the node's limits and the store's accept window,
written to the store, and acknowledged only once the store has it. Its own counters on GET /metrics.
docs/security.md ("The gate") explains each option; the limits file's format is in gatelimits.py."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"edge-metrics gate: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def _duration(text: str) -> float:
    # Days too: the store's windows are written that way (prometheus.yml's out_of_order_time_window: 1d).
    if text.endswith("d") and text[:-1].isdigit():
        return int(text[:-1]) * 86400.0
    try:
        return parse_duration(text)
    except DurationError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _positive(kind: type[int] | type[float]) -> Callable[[str], int | float]:
    def check(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"{text!r} must be more than 0")
        return value

    return check


def _listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: expected HOST:PORT")
    return host.strip("[]"), int(port)


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="edge-metrics gate", description=DESCRIPTION, allow_abbrev=False,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--listen", type=_listen, default=("127.0.0.1", 8430), metavar="HOST:PORT",
                   help="where vmauth forwards (default 127.0.0.1:8430: the pod's loopback)")
    p.add_argument("--store-url", required=True, metavar="URL", help="the store's remote-write URL")
    p.add_argument("--store-ca-file", type=Path, metavar="FILE", help="CA to verify an https store with")
    p.add_argument("--store-username", metavar="NAME", help="basic-auth user at the store")
    p.add_argument("--store-password-file", type=Path, metavar="FILE", help="its password (read at each request)")
    p.add_argument("--limits", type=Path, metavar="FILE",
                   help="per-node limits (`NODE series=N rate=N bytes=N`), re-read when it changes")
    p.add_argument("--max-series-per-hour", type=_positive(int), default=20000, metavar="N",
                   help="fleet default: distinct series a node may write per hour (default 20000)")
    p.add_argument("--max-samples-per-second", type=_positive(float), default=10000.0, metavar="N",
                   help="fleet default: samples a node may write per second (default 10000)")
    p.add_argument("--max-request-bytes", type=_positive(int), default=8 << 20, metavar="N",
                   help="fleet default: size of one request as sent, compressed (default 8388608)")
    p.add_argument("--max-age", type=_duration, default=86400.0, metavar="DURATION",
                   help="the store's out-of-order window: samples older than this before the newest sample the store "
                        "acknowledged are dropped before it (default 1d)")
    p.add_argument("--max-ahead", type=_duration, default=600.0, metavar="DURATION",
                   help="drop samples further ahead than this: the store's limit (default 10m, Prometheus')")
    p.add_argument("--centre-jobs", default="prometheus,vmauth,gate,alertmanager", metavar="JOB,...",
                   help="the centre's own scrape jobs; a node's series claiming one keeps it as exported_job")
    p.add_argument("--max-concurrent-requests", type=_positive(int), default=8, metavar="N",
                   help="node requests handled at once; more wait, then get 503 (default 8)")
    p.add_argument("--log-level", choices=("debug", "info", "warning", "error"), default="info")
    p.add_argument("--log-format", choices=("text", "json"), default="text")
    return p


def main(argv: Sequence[str]) -> int:
    args = parser().parse_args(argv)
    log = Logger(level=args.log_level, json_format=args.log_format == "json")
    settings = Settings(
        default=Limits(args.max_series_per_hour, args.max_samples_per_second, args.max_request_bytes),
        limits_file=args.limits,
        max_age_seconds=args.max_age,
        max_ahead_seconds=args.max_ahead,
        centre_jobs=frozenset(job for job in args.centre_jobs.split(",") if job),
        max_concurrent_requests=args.max_concurrent_requests,
    )
    try:
        sink = HttpStore(args.store_url, ca_file=args.store_ca_file, username=args.store_username,
                         password_file=args.store_password_file)
    except ValueError as error:
        print(f"edge-metrics gate: error: --store-url: {error}", file=sys.stderr)
        return 2
    gate = Gate(settings, send=sink.send, log=log)
    try:
        server = GateServer(args.listen, gate)
    except OSError as error:
        print(f"edge-metrics gate: error: --listen: cannot listen: {error.strerror}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    log.info("gate listening", listen=f"{args.listen[0]}:{args.listen[1]}", store=args.store_url)
    stop.wait()
    # A request in progress is either answered or its connection dropped: the node sends it again either way.
    server.shutdown()
    server.server_close()
    return 0
