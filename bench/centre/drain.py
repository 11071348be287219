"""The drain: nodes back after an outage, each sending its backlog oldest first as vmagent does, in blocks of
at most MAX_ROWS rows, one in flight, at most -remoteWrite.rateLimit bytes per second; a refused block is sent
again after a second."""

from __future__ import annotations

import threading
import time
import zlib
from collections.abc import Sequence

from bench.centre.load import MAX_ROWS, Connection, Fleet, Schedule, Sent
from bench.centre.wire import Template, body


def blocks(schedule: Schedule, start: float, end: float) -> list[tuple[bytes, int]]:
    """The node's samples due in [start, end) as the blocks its queue would hold, each with its rows."""
    out: list[tuple[bytes, int]] = []
    batch: list[tuple[Template, int]] = []
    rows = 0
    for at, tmpl in schedule.due(start, end):
        if batch and rows + tmpl.samples > MAX_ROWS:
            out.append((body(batch), rows))
            batch, rows = [], 0
        batch.append((tmpl, int(at * 1000)))
        rows += tmpl.samples
    if batch:
        out.append((body(batch), rows))
    return out


def send_backlog(conn: Connection, backlog: Sequence[tuple[bytes, int]], *, rate_limit: float,
                 out: list[Sent]) -> None:
    started, sent_bytes = time.time(), 0
    for data, rows in backlog:
        while True:
            wait = started + sent_bytes / rate_limit - time.time()
            if wait > 0:
                time.sleep(wait)
            begin = time.time()
            status = conn.post(data)
            out.append(Sent(begin, begin, time.time(), status, rows, len(data)))
            sent_bytes += len(data)
            if status == 204:
                break
            time.sleep(1.0)
    conn.close()


def drain(fleet: Fleet, names: Sequence[str], *, outage: float, rate_limit: float) -> tuple[list[Sent], float]:
    """Every node's backlog of the `outage` seconds before now, all nodes at once; the requests and the seconds
    until the last node's queue was empty."""
    end = time.time()
    backlogs = [blocks(Schedule(fleet.profile, fleet.tmpls, seed=zlib.crc32(name.encode())), end - outage, end)
                for name in names]
    records: list[list[Sent]] = [[] for _ in names]
    threads = [threading.Thread(target=send_backlog, daemon=True,
                                args=(Connection(fleet.door, fleet.tokens[name]), backlog),
                                kwargs={"rate_limit": rate_limit, "out": out})
               for name, backlog, out in zip(names, backlogs, records, strict=True)]
    began = time.time()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [s for per_node in records for s in per_node], time.time() - began

