"""The push path's faults of issue 17, on the real collector against a fake vmagent on loopback
(tests/integration/fake_vmagent.py): a vmagent that never answers, trickles, answers late, refuses one run; a
SIGKILL while the spool drains; a damaged spool; readings held for the clock across a restart.

Each test counts readings taken (the runs the collector logged as stamped), stored (distinct rows vmagent read
and answered for), lost (taken, never stored) and sent twice, and names what showed the fault.
"""

from __future__ import annotations

import re
import signal
import subprocess
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import Processes, wait_until
from tests.integration.fake_vmagent import FakeVmagent, fake_vmagent
from tests.integration.support import Setup, make_setup, read_metrics, read_starts, run_once, start_collector, value

STAMPED = re.compile(r"readings stamped script=counter timestamp_ms=(\d+)")
STOP_BOUND = 3.0  # seconds: a generous hang bound on SIGTERM (the README promises under one)


def counter_setup(tmp_path: Path, interval: str = "500ms", *, series: int = 0) -> Setup:
    """A script that counts its runs (`edge_v N`) and appends its start time to `starts`; with `series`, as many
    more lines `edge_w{i="..."} N`, so that a run fills a POST."""
    body = (f"date +%s.%N >> {tmp_path / 'starts'}\n"
            f"n=$(( $(cat {tmp_path / 'n'} 2>/dev/null || echo 0) + 1 )); echo $n > {tmp_path / 'n'}\necho v=$n\n")
    if series:
        body += f'for i in $(seq {series}); do echo "w{{i=\\"$i\\"}}=$n"; done\n'

    setup = make_setup(tmp_path, f"node-1=counter:{interval}\n", {"counter": body})
    (tmp_path / "clock").write_text("synchronized=1\n")
    return setup


def start(procs: Processes, setup: Setup, fake: FakeVmagent, *extra: str) -> subprocess.Popen[bytes]:
    return start_collector(procs, setup, "--push-url", fake.url, "--spool-dir", str(setup.root / "spool"),
                           "--log-level", "debug", *extra, env={"EDGE_CLOCK_TEST_FILE": str(setup.root / "clock")})


def metric(setup: Setup, name: str, **labels: str) -> float:
    found = value(read_metrics(setup.output), name, **labels)
    return 0.0 if found is None else found


def stop_within_bound(procs: Processes, proc: subprocess.Popen[bytes]) -> float:
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_BOUND)
    finally:
        procs.stop(proc, signal.SIGKILL)
    return time.monotonic() - started


def stored(fake: FakeVmagent) -> set[tuple[int, int]]:
    """(timestamp ms, value) of every counter row vmagent read."""
    return {(int(parts[2]), int(float(parts[1]))) for row in fake.rows() if (parts := row.split())[0] == b"edge_v"}


def taken(setup: Setup) -> list[int]:
    return [int(ms) for ms in STAMPED.findall(setup.log_text())]


@pytest.fixture
def fake() -> Iterator[FakeVmagent]:
    with fake_vmagent() as server:
        yield server


class TestNetworkNeverStopsTheReadings:
    @pytest.mark.parametrize("mode", ["silent", "trickle"])
    def test_a_vmagent_that_never_answers_costs_no_run_and_sigterm_still_stops_at_once(
        self, tmp_path: Path, procs: Processes, fake: FakeVmagent, mode: str
    ) -> None:
        """vmagent accepts every POST and never answers (hung) or answers a byte every 3 s: runs keep their 500 ms
        grid, none is skipped (edge_collector_script_skipped_runs_total), every reading waits in the spool
        (edge_collector_push_spooled_samples), and SIGTERM ends the collector within the bound."""
        fake.mode = mode
        setup = counter_setup(tmp_path)
        proc = start(procs, setup, fake)
        wait_until(lambda: len(read_starts(tmp_path / "starts")) >= 12, timeout=15, what="12 runs")
        assert metric(setup, "edge_collector_script_skipped_runs_total", script="counter") == 0
        wait_until(lambda: metric(setup, "edge_collector_push_errors_total", cause="timeout") >= 1, timeout=15,
                   what="the first POST timed out")
        elapsed = stop_within_bound(procs, proc)
        runs = len(taken(setup))
        kept = metric(setup, "edge_collector_push_spooled_samples")
        print(f"{mode}: {runs} runs taken, {kept:g} kept in the spool, 0 skipped; SIGTERM took {elapsed:.2f}s")
        # Never answered, so nothing was acknowledged: every run taken is still in the spool (what the fake took in
        # without answering is sent again at the next start, and stored once).
        assert stored(fake) and kept == runs
        assert "readings kept in the spool for the next start" in setup.log_text()

    def test_a_late_answer_does_not_send_the_same_readings_again_and_again(
        self, tmp_path: Path, procs: Processes, fake: FakeVmagent
    ) -> None:
        """vmagent answers every POST after 7 s (past the 5 s deadline): the first batch is sent again once, with
        a longer deadline that then holds; the readings arrive, and the re-sends are bounded and counted
        (edge_collector_push_resent_samples_total)."""
        fake.mode, fake.delay = "late", 7.0
        setup = counter_setup(tmp_path, "1s")
        proc = start(procs, setup, fake)
        wait_until(lambda: metric(setup, "edge_collector_push_samples_total") >= 5, timeout=60,
                   what="five readings acknowledged")
        procs.stop(proc)
        rows, unique = len(fake.rows()), len(stored(fake))
        resent = metric(setup, "edge_collector_push_resent_samples_total")
        print(f"late answer: {len(taken(setup))} taken, {unique} distinct rows stored, {rows} rows imported, "
              f"{resent:g} counted as re-sent")
        assert resent >= 1
        assert rows <= 2 * unique, "the same readings were imported again and again"

    def test_a_400_drops_only_the_run_vmagent_refused(
        self, tmp_path: Path, procs: Processes, fake: FakeVmagent
    ) -> None:
        """A backlog of runs goes as one batch; vmagent refuses any batch holding run 2: the batch is split down to
        that run, which alone is dropped (edge_collector_push_dropped_samples_total{reason="rejected"} 1, logged);
        every other run is stored."""
        fake.mode = "unavailable"
        setup = counter_setup(tmp_path)
        proc = start(procs, setup, fake)
        wait_until(lambda: metric(setup, "edge_collector_push_spooled_samples") >= 5, timeout=30,
                   what="a backlog of five runs")
        fake.mode, fake.marker = "refuse_marked", b"edge_v 2 "
        wait_until(lambda: metric(setup, "edge_collector_push_samples_total") >= 5, timeout=30,
                   what="the backlog sent")
        procs.stop(proc)
        values = sorted(v for _, v in stored(fake))
        runs = len(taken(setup))
        print(f"400 for run 2: {runs} taken, {len(values)} stored, "
              f"{metric(setup, 'edge_collector_push_dropped_samples_total', reason='rejected'):g} rejected")
        assert metric(setup, "edge_collector_push_dropped_samples_total", reason="rejected") == 1
        assert 2 not in values
        assert values == [v for v in range(1, runs + 1) if v != 2]
        assert "vmagent refused readings; dropped" in setup.log_text()


class TestDurable:
    def test_sigkill_while_the_spool_drains_loses_no_reading_taken(
        self, tmp_path: Path, procs: Processes, fake: FakeVmagent
    ) -> None:
        """Runs of 6,000 series (one POST each); vmagent is down for three runs, then answers each POST after
        1.5 s, so the backlog drains slowly; in the middle of that drain the collector is SIGKILLed (a power cut)
        and started again with vmagent healthy. Every run logged as stamped reaches vmagent: none lost."""
        fake.mode = "unavailable"
        setup = counter_setup(tmp_path, "1s", series=6000)
        proc = start(procs, setup, fake, "--max-series", "10000")
        wait_until(lambda: metric(setup, "edge_collector_push_spooled_samples") >= 3 * 6001, timeout=30,
                   what="a backlog of three runs")
        fake.mode, fake.delay = "late", 1.5
        wait_until(lambda: len(fake.received) >= 2, timeout=30, what="the drain under way")
        procs.stop(proc, signal.SIGKILL)
        fake.mode = "ok"
        proc = start(procs, setup, fake, "--max-series", "10000")
        runs = len(taken(setup))
        wait_until(lambda: len(taken(setup)) >= runs + 2, timeout=30, what="runs after the restart")
        # Drained: at most the run just taken still waits (the metrics file is written while its POST is under way).
        wait_until(lambda: metric(setup, "edge_collector_push_spooled_samples") <= 6001, timeout=30,
                   what="the spool drained")
        procs.stop(proc)
        wanted = set(taken(setup))
        at_vmagent = {int(row.split()[2]) for row in fake.rows()}
        lost = wanted - at_vmagent
        distinct = len(set(fake.rows()))
        print(f"SIGKILL during a drain: {len(wanted)} runs taken, {len(wanted & at_vmagent)} stored, {len(lost)} "
              f"lost; {len(fake.rows()) - distinct} of {len(fake.rows())} rows sent twice")
        assert lost == set(), f"readings logged as taken never reached vmagent: {sorted(lost)}"

    def test_sigkill_while_vmagent_is_stopped_loses_no_reading_taken(
        self, tmp_path: Path, procs: Processes, fake: FakeVmagent
    ) -> None:
        """vmagent is SIGSTOPped (the kernel accepts connections, nothing reads them): the collector is SIGKILLed
        (a power cut) after some runs and started again with vmagent back. Every run logged as stamped reaches
        vmagent (before: the run whose POST hung was only in memory, and lost)."""
        fake.mode = "stopped"
        setup = counter_setup(tmp_path)
        proc = start(procs, setup, fake)
        wait_until(lambda: len(taken(setup)) >= 3, timeout=20, what="three runs taken")
        procs.stop(proc, signal.SIGKILL)
        fake.mode = "ok"
        proc = start(procs, setup, fake)
        wait_until(lambda: metric(setup, "edge_collector_push_samples_total") >= 2, timeout=20, what="pushes")
        procs.stop(proc)
        wanted = set(taken(setup))
        at_vmagent = {ms for ms, _ in stored(fake)}
        print(f"SIGKILL while vmagent is stopped: {len(wanted)} taken, {len(wanted & at_vmagent)} stored, "
              f"{len(wanted - at_vmagent)} lost, {len(fake.rows()) - len(at_vmagent)} rows sent twice")
        assert wanted - at_vmagent == set(), "readings logged as taken never reached vmagent"

    def test_held_readings_survive_a_restart_and_arrive_at_their_time(
        self, tmp_path: Path, fake: FakeVmagent, procs: Processes
    ) -> None:
        """A run while the clock is unsynchronised, then the collector exits (a rolling update during an NTP
        outage): the reading is on disk with its boot time; the next collector, clock synchronised, stamps it at
        the time it was read and sends it."""
        setup = counter_setup(tmp_path)
        (tmp_path / "clock").write_text("synchronized=0\n")
        read_at = time.time()
        assert run_once(setup, "--push-url", fake.url, "--spool-dir", str(tmp_path / "spool"),
                        env={"EDGE_CLOCK_TEST_FILE": str(tmp_path / "clock")}).returncode == 0
        (tmp_path / "clock").write_text("synchronized=1\n")
        started = time.time()
        proc = start(procs, setup, fake)
        wait_until(lambda: 1 in {v for _, v in stored(fake)}, timeout=15, what="the held reading at vmagent")
        procs.stop(proc)
        stamp = next(ms for ms, v in stored(fake) if v == 1)
        assert read_at - 1 <= stamp / 1000 <= started, "the held reading was not stamped at the time it was read"


def framed(timestamp_ms: int, samples: int, body: bytes) -> bytes:
    return b"EMS1 %d 0 - %d %d %08x counter\n" % (timestamp_ms, samples, len(body), zlib.crc32(body)) + body


class TestDamagedSpool:
    def test_a_damaged_entry_touches_no_neighbour_and_is_set_aside_once(
        self, tmp_path: Path, procs: Processes, fake: FakeVmagent
    ) -> None:
        """The spool holds a truncated entry (no final newline), a directory at an entry's name, garbage, and good
        entries around them: the good ones arrive whole; the others are moved to damaged/ and logged once, and
        counted as `damaged`, never as `rejected`."""
        spool = tmp_path / "spool"
        spool.mkdir()
        now = int(time.time() * 1000) - 10_000
        (spool / f"0000000000000001-{now}-1.push").write_bytes(b"edge_v 101 %d" % now)  # cut short
        (spool / f"0000000000000002-{now + 1}-1.push").write_bytes(b"edge_v 102 %d\n" % (now + 1))
        (spool / f"0000000000000003-{now + 2}-1.push").mkdir()
        (spool / "0000000000000004.push").write_bytes(framed(now + 3, 1, b"edge_v 104 %d\n" % (now + 3)))
        (spool / "0000000000000005.push").write_bytes(framed(now + 4, 1, b"edge_v 105 %d\n" % (now + 4))[:-3])
        (spool / "0000000000000006.push").write_bytes(b"\x00garbage")
        setup = counter_setup(tmp_path)
        proc = start(procs, setup, fake)
        wait_until(lambda: {102, 104} <= {v for _, v in stored(fake)}, timeout=15, what="the good entries")
        procs.stop(proc)
        proc = start(procs, setup, fake)  # a second start: nothing is set aside or logged again
        wait_until(lambda: metric(setup, "edge_collector_push_samples_total") >= 1, timeout=15, what="a push")
        procs.stop(proc)
        values = {v for _, v in stored(fake)}
        assert {102, 104} <= values and not {101, 105} & values
        assert all(not row.startswith(b"edge_v 101") or row.count(b"edge_v") == 1 for row in fake.rows())
        log = setup.log_text()
        assert log.count("spool file set aside") == 4
        assert sorted(p.name for p in (spool / "damaged").iterdir()) == [
            f"0000000000000001-{now}-1.push", f"0000000000000003-{now + 2}-1.push", "0000000000000005.push",
            "0000000000000006.push"]
        assert "vmagent refused" not in log
