"""A step of the capacity run: N nodes for a while, the figures taken over the window after a warm-up (the
nodes' first TLS handshakes and the store creating their series fall in the warm-up)."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from bench.centre.load import Fleet, Sent
from bench.centre.measure import Step, cpu, gate_stored, pids, rss, store_series, summarise
from bench.fleet.centre import Centre


def run_step(fleet: Fleet, centre: Centre, names: Sequence[str], *, seconds: float, warmup: float,
             base: tuple[float, float]) -> Step:
    ids = pids(centre)
    sent: list[Sent] = []
    runner = threading.Thread(target=lambda: sent.extend(fleet.run(names, seconds)), daemon=True)
    runner.start()
    began = time.time()
    _until(began + warmup)
    cpu_low, stored_low, low = cpu(ids), gate_stored(centre), time.time()
    _until(began + seconds)
    cpu_high, stored_high, high = cpu(ids), gate_stored(centre), time.time()
    memory = rss(ids)
    runner.join()
    span = high - low
    cores = {name: (cpu_high[name] - cpu_low[name]) / span for name in ids}
    return summarise(nodes=len(names), sent=sent, window=(low, high),
                     offered=len(names) * fleet.profile.samples_per_s, stored=(stored_high - stored_low) / span,
                     cores=cores, rss_mib=memory, series=store_series(centre), base=base)


def _until(moment: float) -> None:
    while (left := moment - time.time()) > 0:  # the measured window itself
        time.sleep(min(left, 1.0))
