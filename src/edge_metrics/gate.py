"""`edge-metrics gate`: the centre's per-node gate between vmauth and the store (docs/security.md, "The gate").

vmauth authenticates a node by its token and forwards its remote write to /node/<node>/<cluster>/api/v1/write
here, so the name in the path is the credential's, never the sender's choice. For each request the gate, in
order: refuses a body over the node's size limit before reading it (413), a node over its samples per second
(429 with Retry-After: the node's vmagent keeps the block), decodes it, sets `node` and `cluster` and renames a
centre job the node claims to `exported_job`, drops samples the store certainly refuses (admit) and series over
the node's hourly limit (counted by reason), then writes the rest to the store and answers the node only when the
store has acknowledged all of it (gatestore.py: a 400 is bisected down to the refused samples). A node's
request never holds another node's samples, so a refusal costs only the node that caused it.
"""

from __future__ import annotations

import http.server
import re
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edge_metrics.gatelimits import Limits, NodeState, parse_limits
from edge_metrics.gatestore import Item, Send, StoreUnavailable, store
from edge_metrics.log import Logger
from edge_metrics.remotewrite import (
    DecodeError,
    Labels,
    Series,
    decode_write_request,
    snappy_decode,
    uncompressed_length,
)
from edge_metrics.render import render
from edge_metrics.samples import Family, Sample

_PATH = re.compile(r"/node/([a-z0-9](?:[-a-z0-9.]*[a-z0-9])?)/([a-z0-9](?:[-a-z0-9.]*[a-z0-9])?)/api/v1/write")
LIMITS_RECHECK_SECONDS = 10.0  # how often the limits file's mtime is looked at (a ConfigMap update)
SLOT_WAIT_SECONDS = 5.0  # a request waits this long for one of the bounded slots, then gets 503
DECODED_FACTOR = 8  # a body may decode to this many times the node's request-size limit


@dataclass(frozen=True, slots=True)
class Settings:
    default: Limits
    limits_file: Path | None
    max_age_seconds: float
    max_ahead_seconds: float
    centre_jobs: frozenset[str]
    max_concurrent_requests: int


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: bytes = b""
    retry_after: int | None = None


def relabel(labels: Labels, *, node: str, cluster: str, centre_jobs: frozenset[str]) -> Labels:
    """The node's labels as the centre stores them: `node` and `cluster` from the credential (whatever the
    sender put, however often), a centre job's name kept as `exported_job` only, empty values and repeated
    names (the last counts) gone, sorted by name."""
    kept = {name: value for name, value in labels if value and name not in ("node", "cluster")}
    job = kept.get("job")
    if job in centre_jobs:
        del kept["job"]
        kept["exported_job"] = job
    kept["node"] = node
    kept["cluster"] = cluster
    return tuple(sorted(kept.items()))


@dataclass(frozen=True, slots=True)
class Admitted:
    items: list[Item]
    refused: dict[str, int]  # reason -> samples


def admit(
    series: list[Series],
    *,
    node: str,
    cluster: str,
    state: NodeState,
    settings: Settings,
    now: float,
    newest_stored_ms: int | None = None,
) -> Admitted:
    """The samples that may go to the store, and the ones dropped before it, by reason: only what the store
    certainly refuses. Prometheus measures "too old" from the newest sample it holds, not from the clock: a centre
    back from a long outage, or one whose own samples lag, takes samples older than `now - max_age`. So the age
    is measured from `newest_stored_ms`, the newest sample the store has acknowledged (its newest is at least
    that), never later than `now`; unknown (None): no age filter, the store's answer and the bisect decide."""
    refused: dict[str, int] = {}
    if newest_stored_ms is None:
        oldest = None
    else:
        oldest = min(newest_stored_ms, int(now * 1000)) - int(settings.max_age_seconds * 1000)
    newest = int((now + settings.max_ahead_seconds) * 1000)
    relabelled = [relabel(s.labels, node=node, cluster=cluster, centre_jobs=settings.centre_jobs) for s in series]
    allowed = state.admit_series([hash(labels) for labels in relabelled], now)
    items: list[Item] = []
    for one, labels, ok in zip(series, relabelled, allowed, strict=True):
        if not ok:
            refused["series_limit"] = refused.get("series_limit", 0) + len(one.points)
            continue
        for point in one.points:
            if oldest is not None and point[0] < oldest:
                refused["too_old"] = refused.get("too_old", 0) + 1
            elif point[0] > newest:
                refused["too_far_ahead"] = refused.get("too_far_ahead", 0) + 1
            else:
                items.append((labels, point))
    return Admitted(items, refused)


class Gate:
    """The gate's state: per-node limits and accounting, and its counters. Effects passed in (send, clock)."""

    def __init__(self, settings: Settings, *, send: Send, log: Logger, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.send = send
        self.log = log
        self.clock = clock
        self.lock = threading.Lock()
        self.slots = threading.BoundedSemaphore(settings.max_concurrent_requests)
        self.in_flight = 0
        self.nodes: dict[str, NodeState] = {}
        self.clusters: dict[str, str] = {}  # a node's cluster, as vmauth's path names it
        self.node_limits: dict[str, Limits] = {}
        self.limits_problems = 0
        self.limits_mtime: float | None = None
        self.limits_checked = float("-inf")
        self.counters: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        self.store_unavailable = 0
        self.newest_stored_ms: int | None = None  # the newest timestamp the store acknowledged, any node's
        self.load_limits()

    # -- limits -----------------------------------------------------------------------------------------------
    def load_limits(self) -> None:
        path = self.settings.limits_file
        self.limits_checked = time.monotonic()
        if path is None:
            return
        try:
            mtime = path.stat().st_mtime
            if mtime == self.limits_mtime:
                return
            parsed = parse_limits(path.read_text(), path, self.settings.default)
        except FileNotFoundError:
            # The ConfigMap is optional: without it every node has the defaults (said once, not every recheck).
            if self.limits_mtime != -1.0:
                self.log.info("no limits file; every node has the defaults", path=str(path))
                with self.lock:
                    self.limits_mtime = -1.0
            return
        except (OSError, UnicodeDecodeError) as error:
            self.log.error("cannot read the limits file; keeping the limits in force", path=str(path), error=str(error))
            return
        for problem in parsed.problems:
            self.log.error("limits file: bad line", problem=problem)
        with self.lock:
            self.limits_mtime = mtime
            self.node_limits = parsed.nodes
            self.limits_problems = len(parsed.problems)
            for node, state in self.nodes.items():
                state.limits = parsed.nodes.get(node, self.settings.default)
        self.log.info("limits loaded", path=str(path), nodes=len(parsed.nodes), problems=len(parsed.problems))

    def state(self, node: str, cluster: str | None = None) -> NodeState:
        if cluster is not None:
            self.clusters[node] = cluster
        if time.monotonic() - self.limits_checked >= LIMITS_RECHECK_SECONDS:
            self.load_limits()
        with self.lock:
            state = self.nodes.get(node)
            if state is None:
                limits = self.node_limits.get(node, self.settings.default)
                state = self.nodes[node] = NodeState(limits, self.clock())
            return state

    # -- one request --------------------------------------------------------------------------------------------
    def limits(self, node: str, cluster: str) -> Limits:
        return self.state(node, cluster).limits

    def write(self, node: str, cluster: str, body: bytes) -> Answer:
        """A node's whole request body (its size already checked against the node's limit)."""
        state = self.state(node, cluster)
        try:
            max_decoded = state.limits.request_bytes * DECODED_FACTOR
            if uncompressed_length(body) > max_decoded:
                return self.refuse_request(node, 413, "too_large", f"decodes to more than {max_decoded} bytes\n")
            request = decode_write_request(snappy_decode(body, max_decoded))
        except DecodeError as error:
            return self.refuse_request(node, 400, "malformed", f"not a remote-write 1.0 request: {error}\n")
        received = sum(len(s.points) for s in request.series)
        wait = state.take_rate(received, self.clock())
        if wait is not None:
            return self.refuse_request(node, 429, "rate_limit", b"over this node's samples per second\n", int(wait))
        self.add("edge_gate_samples_received_total", node, received + request.unsupported)
        with self.lock:
            newest_stored = self.newest_stored_ms
        admitted = admit(request.series, node=node, cluster=cluster, state=state, settings=self.settings,
                         now=self.clock(), newest_stored_ms=newest_stored)
        refused = dict(admitted.refused)
        if request.unsupported:
            refused["unsupported"] = request.unsupported
        try:
            by_store = store(admitted.items, self.send)
        except StoreUnavailable as error:
            with self.lock:
                self.store_unavailable += 1
            self.log.warning("store unavailable; the node will send again", node=node, error=str(error))
            self.count_request(node, 503)
            # No Retry-After: vmagent would honour it and resend every second for as long as the store is down,
            # every node at once; without it each backs off on its own, up to its retry maximum.
            return Answer(503, b"store unavailable\n")
        for _, why in by_store:
            refused[why] = refused.get(why, 0) + 1
        self.note_stored(admitted.items, by_store)
        self.add("edge_gate_samples_stored_total", node, len(admitted.items) - len(by_store))
        for why, samples in refused.items():
            self.add("edge_gate_samples_refused_total", node, samples, reason=why)
        if refused:
            self.log.debug("samples refused", node=node, **refused)
        self.count_request(node, 204)
        return Answer(204)

    def note_stored(self, items: list[Item], by_store: list[tuple[Item, str]]) -> None:
        refused_ids = {id(item) for item, _ in by_store}
        newest = max((item[1][0] for item in items if id(item) not in refused_ids), default=None)
        if newest is None:
            return
        with self.lock:
            if self.newest_stored_ms is None or newest > self.newest_stored_ms:
                self.newest_stored_ms = newest

    def refuse_request(self, node: str, status: int, why: str, text: str | bytes, retry: int | None = None) -> Answer:
        self.add("edge_gate_requests_refused_total", node, 1, reason=why)
        self.count_request(node, status)
        return Answer(status, text.encode() if isinstance(text, str) else text, retry_after=retry)

    def count_request(self, node: str, status: int) -> None:
        self.add("edge_gate_requests_total", node, 1, code=str(status))

    def add(self, name: str, node: str, amount: float, **labels: str) -> None:
        key = (name, (("cluster", self.clusters.get(node, "")), ("node", node), *sorted(labels.items())))
        with self.lock:
            self.counters[key] = self.counters.get(key, 0.0) + amount

    # -- /metrics -----------------------------------------------------------------------------------------------
    def exposition(self) -> str:
        with self.lock:
            counters = dict(self.counters)
            nodes = dict(self.nodes)
            clusters = dict(self.clusters)
            unavailable, in_flight, problems = self.store_unavailable, self.in_flight, self.limits_problems
        samples: dict[str, list[Sample]] = {name: [] for name in _HELP}

        def put(name: str, labels: tuple[tuple[str, str], ...], value: float) -> None:
            samples[name].append(Sample(name, labels, value))

        for (name, labels), value in counters.items():
            put(name, labels, value)
        for node, state in nodes.items():
            limits, labels = state.limits, (("cluster", clusters.get(node, "")), ("node", node))
            put("edge_gate_series", labels, state.series_count())
            put("edge_gate_limit_series_per_hour", labels, limits.series_per_hour)
            put("edge_gate_limit_samples_per_second", labels, limits.samples_per_second)
            put("edge_gate_limit_request_bytes", labels, limits.request_bytes)
        put("edge_gate_store_unavailable_total", (), unavailable)
        put("edge_gate_requests_in_flight", (), in_flight)
        put("edge_gate_max_concurrent_requests", (), self.settings.max_concurrent_requests)
        put("edge_gate_limits_file_problems", (), problems)
        return render(Family(name, help_text, kind, tuple(samples[name])) for name, (kind, help_text) in _HELP.items())


_HELP = {
    "edge_gate_samples_received_total": ("counter", "Samples a node sent in requests the gate decoded."),
    "edge_gate_samples_stored_total": ("counter", "Samples of a node the store acknowledged."),
    "edge_gate_samples_refused_total": (
        "counter", "Samples of a node dropped, by reason: too_old, too_far_ahead (outside the store's window), "
                   "series_limit, unsupported (exemplars, histograms), or the store's own refusal."),
    "edge_gate_requests_refused_total": (
        "counter", "Whole requests of a node refused: too_large (413), rate_limit (429, sent again), malformed (400)."),
    "edge_gate_requests_total": ("counter", "Requests of a node by the HTTP status the gate answered."),
    "edge_gate_series": ("gauge", "Distinct series of a node in the current hour."),
    "edge_gate_limit_series_per_hour": ("gauge", "A node's limit of distinct series per hour."),
    "edge_gate_limit_samples_per_second": ("gauge", "A node's limit of samples per second."),
    "edge_gate_limit_request_bytes": ("gauge", "A node's limit of a request's size in bytes."),
    "edge_gate_store_unavailable_total": ("counter", "Requests answered 503 because the store did not take them."),
    "edge_gate_requests_in_flight": ("gauge", "Node requests being handled now."),
    "edge_gate_max_concurrent_requests": ("gauge", "Node requests handled at once at most."),
    "edge_gate_limits_file_problems": ("gauge", "Bad lines in the limits file (those nodes keep the defaults)."),
}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # vmauth keeps its connections to the backend alive
    server: GateServer

    def do_GET(self) -> None:  # http.server's name
        if self.path.partition("?")[0] == "/metrics":
            self.reply(Answer(200, self.server.gate.exposition().encode()), "text/plain; version=0.0.4")
        elif self.path.partition("?")[0] == "/health":
            self.reply(Answer(200, b"OK\n"))
        else:
            self.reply(Answer(404, b"not found\n"))

    def do_POST(self) -> None:
        gate = self.server.gate
        match = _PATH.fullmatch(self.path.partition("?")[0])
        if match is None:
            self.close_connection = True
            self.reply(Answer(404, b"only POST /node/<node>/<cluster>/api/v1/write\n"))
            return
        node, cluster = match.groups()
        gate.state(node, cluster)
        if self.headers.get("Content-Encoding", "snappy").lower() != "snappy":
            # vmagent's own protocol (zstd) first: 415 makes it fall back to Prometheus remote write for good.
            self.close_connection = True
            self.reply(gate.refuse_request(node, 415, "unsupported_encoding", b"remote write 1.0 (snappy) only\n"))
            return
        length_text = self.headers.get("Content-Length")
        if length_text is None or not length_text.isdigit():
            self.close_connection = True
            self.reply(gate.refuse_request(node, 411, "no_length", b"Content-Length required\n"))
            return
        length, limit = int(length_text), gate.limits(node, cluster).request_bytes
        if length > limit:
            # Before reading a byte of it: the connection is closed with the body unread.
            self.close_connection = True
            self.reply(gate.refuse_request(node, 413, "too_large", f"over this node's {limit} bytes\n"))
            return
        if not gate.slots.acquire(timeout=SLOT_WAIT_SECONDS):
            self.close_connection = True
            self.reply(gate.refuse_request(node, 503, "busy", b"too many requests at once\n"))
            return
        try:
            with gate.lock:
                gate.in_flight += 1
            body = self.rfile.read(length)
            answer = gate.write(node, cluster, body) if len(body) == length else Answer(400, b"body cut off\n")
        finally:
            with gate.lock:
                gate.in_flight -= 1
            gate.slots.release()
        self.reply(answer)

    def reply(self, answer: Answer, content_type: str = "text/plain; charset=utf-8") -> None:
        self.send_response(answer.status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(answer.body)))
        if answer.retry_after is not None:
            self.send_header("Retry-After", str(answer.retry_after))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if answer.body:
            self.wfile.write(answer.body)

    def log_message(self, format: str, *args: object) -> None:
        pass  # the counters say it; a line per request would flood the pod's log


class GateServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # vmauth dials faster than a gate short of CPU accepts: with socketserver's small default backlog its dials
    # time out and it takes the gate for down, refusing every node for a while; the kernel's maximum queues them.
    request_queue_size = socket.SOMAXCONN

    def handle_error(self, request: object, client_address: object) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, (BrokenPipeError, ConnectionResetError)):
            return  # a client that hung up before its answer (a scraper's timeout): nothing was lost
        self.gate.log.error("request failed", client=str(client_address), error=repr(error))

    def __init__(self, address: tuple[str, int], gate: Gate) -> None:
        self.gate = gate
        super().__init__(address, Handler)
