"""N simulated nodes, each a thread with its own token and its own TLS connection to vmauth, sending what the
profiled node sends on its schedule (each group at its interval, each node at its own phase), flushed as vmagent
flushes: everything due so far in one request, one request in flight per node (-remoteWrite.queues=1), so a
centre that answers slowly makes the node's data late rather than its requests more."""

from __future__ import annotations

import http.client
import random
import ssl
import threading
import time
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from bench.centre.profile import NodeProfile
from bench.centre.wire import Template, body, template

FLUSH_SECONDS = 1.0  # vmagent's -remoteWrite.flushInterval (its default; vmagent.flags does not set it)
MAX_ROWS = 10000  # vmagent's -remoteWrite.maxRowsPerBlock (its default): the largest block it sends


@dataclass(frozen=True, slots=True)
class Sent:
    due: float  # when the oldest sample of the request was due to be flushed (epoch seconds)
    started: float
    done: float
    status: int  # 0: no answer (connection failed)
    samples: int
    nbytes: int


@dataclass(frozen=True, slots=True)
class Door:
    """Where and how a node writes: vmauth's host and port, the CA's context, the path."""

    host: str
    port: int
    context: ssl.SSLContext
    path: str = "/api/v1/write"


class Schedule:
    """One node's groups with their templates and its own phase per group."""

    def __init__(self, profile: NodeProfile, templates: Sequence[Template], seed: int) -> None:
        rng = random.Random(seed)
        self.parts = [(g.interval, t, rng.uniform(0, g.interval))
                      for g, t in zip(profile.groups, templates, strict=True)]

    def due(self, start: float, end: float) -> Iterator[tuple[float, Template]]:
        """Every (time, template) due in [start, end), in time order."""
        events = []
        for interval, tmpl, phase in self.parts:
            k = -(-(start - phase) // interval)  # first k with phase + k * interval >= start
            at = phase + k * interval
            while at < end:
                events.append((at, tmpl))
                at += interval
        return iter(sorted(events, key=lambda e: e[0]))


def templates(profile: NodeProfile) -> list[Template]:
    """Compressed once for all nodes: the gate sets each node's label from its path, so their bodies are alike."""
    return [template(g.series) for g in profile.groups]


class Connection:
    def __init__(self, door: Door, token: str) -> None:
        self.door = door
        self.headers = {"Authorization": f"Bearer {token}", "Content-Encoding": "snappy",
                        "Content-Type": "application/x-protobuf", "X-Prometheus-Remote-Write-Version": "0.1.0"}
        self.conn: http.client.HTTPSConnection | None = None

    def post(self, data: bytes) -> int:
        try:
            if self.conn is None:
                self.conn = http.client.HTTPSConnection(self.door.host, self.door.port, context=self.door.context,
                                                        timeout=60)
            self.conn.request("POST", self.door.path, data, self.headers)
            response = self.conn.getresponse()
            response.read()
            return response.status
        except (OSError, http.client.HTTPException):
            self.close()
            return 0

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def run_node(conn: Connection, schedule: Schedule, *, start: float, stop: threading.Event, out: list[Sent]) -> None:
    """Flush every FLUSH_SECONDS from `start` until `stop`: whatever fell due since the last flush, at most
    MAX_ROWS a request; a failed request is kept and sent again, as vmagent does."""
    pending: list[tuple[float, Template]] = []
    covered = start
    tick = start
    while not stop.is_set():
        now = time.time()
        if now < tick:
            stop.wait(tick - now)
            continue
        pending.extend(schedule.due(covered, now))
        covered = now
        tick += FLUSH_SECONDS * (1 + int((now - tick) // FLUSH_SECONDS))
        while pending and not stop.is_set():
            batch: list[tuple[Template, int]] = []
            rows = 0
            while pending and (not batch or rows + pending[0][1].samples <= MAX_ROWS):
                at, tmpl = pending.pop(0)
                batch.append((tmpl, int(at * 1000)))
                rows += tmpl.samples
            data = body(batch)
            started = time.time()
            status = conn.post(data)
            out.append(Sent(batch[0][1] / 1000, started, time.time(), status, rows, len(data)))
            if status != 204:
                pending[:0] = [(ms / 1000, tmpl) for tmpl, ms in batch]
                stop.wait(1.0)  # vmagent's first back-off
            if time.time() >= tick:
                break  # the next flush takes what fell due meanwhile too
    conn.close()


@dataclass
class Fleet:
    """The simulated nodes of one step, started together, each from the same moment on."""

    door: Door
    tokens: dict[str, str]
    profile: NodeProfile
    tmpls: list[Template]

    def run(self, names: Sequence[str], seconds: float) -> list[Sent]:
        stop = threading.Event()
        start = time.time()
        records: list[list[Sent]] = [[] for _ in names]
        threads = [threading.Thread(target=run_node, daemon=True,
                                    args=(Connection(self.door, self.tokens[name]),
                                          Schedule(self.profile, self.tmpls, seed=zlib.crc32(name.encode()))),
                                    kwargs={"start": start, "stop": stop, "out": out})
                   for name, out in zip(names, records, strict=True)]
        for thread in threads:
            thread.start()
        stop.wait(seconds)
        stop.set()
        for thread in threads:
            thread.join(timeout=90)
        return [sent for per_node in records for sent in per_node]
