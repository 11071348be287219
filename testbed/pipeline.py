"""One edge node and the centre wired as in production, with the e2e tests' counter and outages."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from testbed.centre import Centre
from testbed.counter import ScrapeRun, read_prints, scrape_phase, write_counter_config
from testbed.node import next_retry
from testbed.poll import wait_until
from testbed.processes import Processes

PHASE_ATTEMPTS = 10  # starts of the counter collector to land it half a second from the scrapes


class Pipeline:
    """One edge node and the centre, wired as in production; nothing running until started."""

    def __init__(
        self,
        procs: Processes,
        workdir: Path,
        *,
        node: str = "e2e-node",
        scrape_interval: str = "1s",
        out_of_order_window: str | None = None,
        prometheus_args: Sequence[str] = (),
        compat: bool = False,
        enforce_node: bool = True,
        other_nodes: Sequence[str] = (),
    ) -> None:
        """`other_nodes`: names that get credentials too (no processes), e.g. for a forged write."""
        self.procs = procs
        self.workdir = workdir
        self.centre = Centre(
            procs,
            workdir,
            nodes=[node, *other_nodes],
            scrape_interval=scrape_interval,
            out_of_order_window=out_of_order_window,
            prometheus_args=prometheus_args,
            compat=compat,
            enforce_node=enforce_node,
        )
        self.pki, self.central, self.ingest = self.centre.pki, self.centre.central, self.centre.ingest
        self.node = self.centre.node(node, workdir / node, scrape_interval=scrape_interval)
        self.scripts_dir = workdir / "scripts"
        self.vmagent_runs: list[ScrapeRun] = []
        self._vmagent_started = 0.0

    def start_infrastructure(self) -> None:
        """Centre, node_exporter and vmagent, and wait until the centre holds the node's `up` series."""
        self.centre.start()
        self.node.start_node_exporter()
        self.start_vmagent()
        wait_until(
            lambda: self.central.query(f'up{{job="node-exporter",node="{self.node.name}"}}'),
            timeout=30,
            what="the node's samples at the centre",
        )

    def start_vmagent(self) -> None:
        self._vmagent_started = time.time()
        self.node.start_vmagent()

    def stop_vmagent(self, sig: int = signal.SIGTERM) -> None:
        """Stop vmagent and remember the period it scraped; its phase is read from the centre later."""
        stopped = time.time()
        self.node.stop_vmagent(sig)
        self.vmagent_runs.append(ScrapeRun(self._vmagent_started, stopped, phase=-1))

    def current_scrape_phase(self) -> float:
        ups = self.central.raw_samples(f'up{{job="node-exporter",node="{self.node.name}"}}', "20s")
        return scrape_phase([t for t, _ in ups if t >= self._vmagent_started])

    def start_counter_collector(self, *, interval: str = "1s", env: Mapping[str, str] | None = None) -> None:
        """The real collector running the counter script, started half a second away from vmagent's
        scrape phase so no scrape races a rewrite (restarted if start-up latency spoils it). Under load that
        latency varies by most of a second from one start to the next, so each retry lands anywhere: half the
        starts miss the window, and three in a row did in a fresh-clone run; hence several attempts."""
        config = write_counter_config(self.scripts_dir, node=self.node.name, interval=interval)
        phase = self.current_scrape_phase()
        shift = 0.5  # where, after vmagent's scrape, the collector's start should land
        for attempt in range(PHASE_ATTEMPTS):
            time.sleep((phase + shift - time.time()) % 1.0)
            before = len(read_prints(self.scripts_dir))
            proc = self.node.start_collector(config=config, env=env)
            wait_until(
                lambda before=before: len(read_prints(self.scripts_dir)) >= before + 3,
                timeout=30,
                what="three counter runs",
            )
            offset = (read_prints(self.scripts_dir)[-1].at - phase) % 1.0
            print(f"counter collector start {attempt + 1}: {offset:.2f} s after the scrapes")
            if 0.25 < offset < 0.75:
                return
            # Start-up latency moved the runs too close to the scrapes: compensate and try again.
            self.procs.stop(proc)
            shift = (shift + 0.5 - offset) % 1.0
            if attempt == PHASE_ATTEMPTS - 1:
                raise RuntimeError(f"collector stays in phase with vmagent's scrapes (offset {offset:.2f} s)")

    def scrape_runs(self) -> list[ScrapeRun]:
        """Every vmagent run (the current one up to now), each with the phase read from the centre."""
        runs = [*self.vmagent_runs]
        if self.node.vmagent is not None:
            runs.append(ScrapeRun(self._vmagent_started, time.time(), phase=-1))
        ups = [t for t, _ in self.central.raw_samples(f'up{{job="node-exporter",node="{self.node.name}"}}', "1h")]
        return [
            ScrapeRun(run.start, run.end, scrape_phase([t for t in ups if run.start <= t <= run.end])) for run in runs
        ]

    def failed_scrapes(self) -> list[float]:
        """When vmagent's scrapes of the node's node_exporter failed: its `up` samples of 0 at the centre."""
        ups = self.central.raw_samples(f'up{{job="node-exporter",node="{self.node.name}"}}', "1h")
        return [t for t, value in ups if value == 0]

    def counter_values_at_centre(self) -> set[int]:
        samples = self.central.raw_samples(f'edge_e2e_counter{{node="{self.node.name}"}}', "1h")
        return {int(value) for _, value in samples}

    def counter_values_once_visible(self, expected: set[int], timeout: float = 60) -> tuple[set[int], float]:
        """The values at the centre, polled until `expected` are all there or `timeout`, and how long that took.
        With the compressed block duration, a run's query missed out-of-order samples that Prometheus had
        acknowledged (and that a restart on the same data shows): the late ones become visible later."""
        started = time.monotonic()
        present = self.counter_values_at_centre()
        while not expected <= present and time.monotonic() - started < timeout:
            time.sleep(0.5)
            present = self.counter_values_at_centre()
        return present, round(time.monotonic() - started, 1)

    def wait_scraped_after(self, moment: float, timeout: float = 30) -> None:
        """Until a scrape of the node taken after `moment` (time.time()) is at the centre: its samples travel in
        order with the earlier ones, so everything scraped before `moment` has arrived too."""
        series = f'up{{job="node-exporter",node="{self.node.name}"}}'
        wait_until(lambda: any(t > moment for t, _ in self.central.raw_samples(series, "5m")), timeout=timeout,
                   interval=0.2, what=f"a scrape of {self.node.name} after {moment:.1f} at the centre")

    def outage(self, *, at_least: float, during: Callable[[float], None] | None = None) -> None:
        """Stop the centre for `at_least` seconds, then until vmagent's next retry is >= 15 s away, so the
        centre is back and has appended fresh samples (its head time is now) before the backlog arrives:
        as with a real centre that other nodes keep feeding. `during(elapsed)` is polled meanwhile."""
        log = self.node.workdir / "vmagent.log"
        self.central.stop()
        stopped = time.monotonic()
        while True:
            elapsed = time.monotonic() - stopped
            if during is not None:
                during(elapsed)
            if elapsed >= at_least and (next_retry(log) or 0) - time.time() >= 15:
                break
            time.sleep(0.1)
        self.central.start()
        wait_until(lambda: self.central.query('up{job="prometheus"}'), timeout=30, what="the centre's own scrape")

    def wait_drained(self, timeout: float = 120) -> None:
        """Until vmagent's queue is empty: its retry back-off reaches a minute during long outages."""
        wait_until(lambda: self.node.pending_bytes() == 0, timeout=timeout, interval=0.5, what="queue drained")
