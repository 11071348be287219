"""Push mode's pieces on their own: URL and size options, the spool, the clock and its step detection, holding."""

from __future__ import annotations

import gc
import io
import time
from pathlib import Path

import pytest

from edge_metrics.clock import CLOCK_FLOOR, ClockReading, Timekeeper, adjtimex, read_clock
from edge_metrics.httppost import Endpoint, PushError, parse_url, post
from edge_metrics.log import Logger
from edge_metrics.push import Pusher, render_lines, stamp_lines
from edge_metrics.samples import Metadata, Sample
from edge_metrics.spool import Spool, parse_size
from tests.helpers import free_port

NOW = 1_800_000_000.0


def logger() -> tuple[Logger, io.StringIO]:
    stream = io.StringIO()
    return Logger(level="debug", stream=stream), stream


class TestOptions:
    @pytest.mark.parametrize(
        ("url", "expected"),
        [
            ("http://127.0.0.1:8429/api/v1/import/prometheus",
             Endpoint("127.0.0.1", 8429, "/api/v1/import/prometheus")),
            ("http://localhost/x", Endpoint("localhost", 80, "/x")),
            ("http://[::1]:8429/", Endpoint("::1", 8429, "/")),
        ],
    )
    def test_url_accepted(self, url: str, expected: Endpoint) -> None:
        """http://HOST[:PORT]/PATH: what the node-local vmagent offers."""
        assert parse_url(url) == expected

    @pytest.mark.parametrize("url", ["https://127.0.0.1:8429/x", "127.0.0.1:8429", "http://:8429/", "http://h:0/",
                                     "http://h:port/", "http://h:99999/"])
    def test_url_refused(self, url: str) -> None:
        """Anything else is refused with the URL in the message."""
        with pytest.raises(ValueError, match="http://"):
            parse_url(url)

    @pytest.mark.parametrize(("text", "size"), [("1048576", 1048576), ("500KB", 500_000), ("64MiB", 64 << 20),
                                                 ("1GiB", 1 << 30), ("10B", 10)])
    def test_sizes(self, text: str, size: int) -> None:
        assert parse_size(text) == size

    @pytest.mark.parametrize("text", ["", "0", "-1", "1.5MiB", "12TB", "MiB", "1 MiB"])
    def test_bad_sizes(self, text: str) -> None:
        with pytest.raises(ValueError, match="invalid size"):
            parse_size(text)


class TestRenderLines:
    def test_millisecond_timestamp_on_every_line(self) -> None:
        """Prometheus text with the run's timestamp in ms: 13 digits, never taken as seconds by vmagent."""
        samples = (Sample("edge_t", (("zone", 'c"pu'),), 45.5), Sample("edge_h", (), 3.0))
        assert stamp_lines(render_lines(samples), 1_800_000_000_123) == (
            b'edge_t{zone="c\\"pu"} 45.5 1800000000123\nedge_h 3 1800000000123\n'
        )

    def test_declared_help_and_type_go_before_their_family_without_a_timestamp(self) -> None:
        """HELP and TYPE lines a script declared travel to vmagent once per run before the family's first line;
        only series lines take the timestamp (a stamped TYPE line would be a malformed one)."""
        samples = (Sample("edge_t", (("zone", "a"),), 1.5), Sample("edge_n", (), 2.0),
                   Sample("edge_t", (("zone", "b"),), 2))
        metadata = {"edge_t": Metadata("edge_t", "Temperature (°C).\nSecond line", "gauge"),
                    "edge_n": Metadata("edge_n", None, "counter")}
        assert stamp_lines(render_lines(samples, metadata), 1_800_000_000_123).decode() == (
            "# HELP edge_t Temperature (°C).\\nSecond line\n# TYPE edge_t gauge\n"
            'edge_t{zone="a"} 1.5 1800000000123\n'
            "# TYPE edge_n counter\nedge_n 2 1800000000123\n"
            'edge_t{zone="b"} 2 1800000000123\n'
        )


class TestSpool:
    def test_fifo_bounded_oldest_dropped_and_logged(self, tmp_path: Path) -> None:
        """Entries leave in order; a new one that does not fit pushes the oldest out, counted and logged."""
        log, stream = logger()
        spool = Spool(str(tmp_path), 100, log)
        for n in range(5):
            spool.append("s", 1000 + n, 2, b"x" * 30)
        assert [e.timestamp_ms for e in spool.entries] == [1002, 1003, 1004]
        assert (spool.bytes, spool.samples, spool.dropped_samples) == (90, 6, 4)
        assert "spool full: the oldest readings were dropped" in stream.getvalue()

    @pytest.mark.parametrize("on_disk", [True, False])
    def test_entries_kept_by_the_caller_are_never_dropped_to_make_room(self, tmp_path: Path, on_disk: bool) -> None:
        """The batch in flight, named by the caller, stays whatever comes after it: the spool goes over its bound
        by that batch and drops the oldest of the rest (on disk, and in memory when the disk refuses)."""
        log, _ = logger()
        spool = Spool(str(tmp_path), 100, log) if on_disk else Spool(str(tmp_path), 1 << 20, log, write=enospc,
                                                                      memory_max=100)
        for n in range(3):
            spool.append("s", 1000 + n, 2, b"x" * 30)
        kept = frozenset(entry.name for entry in list(spool.entries)[:2])
        for n in range(3, 6):
            spool.append("s", 1000 + n, 2, b"x" * 30, keep=kept)
        assert [e.timestamp_ms for e in spool.entries] == [1000, 1001, 1005]
        assert spool.dropped_samples == 6

    def test_on_disk_when_appended_and_recovered_after_a_restart(self, tmp_path: Path) -> None:
        """Each run is on disk when append() returns (before the run counts as taken); a new collector picks the
        entries up, in order, with new ones after them, and removes the temp file of a write a crash cut short."""
        log, _ = logger()
        spool = Spool(str(tmp_path), 1 << 20, log)
        assert spool.append("s", 1000, 1, b"a 1 1000\n")
        assert len(list(tmp_path.glob("*.push"))) == 1
        spool.append("s", 2000, 1, b"a 2 2000\n")
        assert len(list(tmp_path.glob("*.push"))) == 2
        (tmp_path / "0000000000000002.push.tmp.99").write_text("half")

        again = Spool(str(tmp_path), 1 << 20, log)
        assert [e.timestamp_ms for e in again.entries] == [1000, 2000]
        assert [again.read(e) for e in again.entries] == [b"a 1 1000\n", b"a 2 2000\n"]
        again.append("s", 3000, 1, b"a 3 3000\n")
        assert [e.timestamp_ms for e in again.entries] == [1000, 2000, 3000]
        again.remove(again.entries[0])
        assert sorted(p.name for p in tmp_path.iterdir()) == ["0000000000000001.push", "0000000000000002.push"]

    def test_files_of_the_earlier_format_are_still_sent(self, tmp_path: Path) -> None:
        """A spool left by the previous release (unframed `<seq>-<ms>-<samples>.push`) is read after the upgrade."""
        (tmp_path / "0000000000000007-1000-1.push").write_bytes(b"a 1 1000\n")
        spool = Spool(str(tmp_path), 1 << 20, logger()[0])
        assert [(e.timestamp_ms, e.samples) for e in spool.entries] == [(1000, 1)]
        assert spool.read(spool.entries[0]) == b"a 1 1000\n"
        spool.append("s", 2000, 1, b"a 2 2000\n")
        assert spool.entries[-1].name == "0000000000000008.push"


def reading(wall: float, boot: float, synchronized: bool = True) -> ClockReading:
    return ClockReading(wall, boot, synchronized, 0.0, 0.0)


class TestClock:
    def test_adjtimex_reads_the_kernel_without_privilege(self) -> None:
        """adjtimex(2) with modes=0 answers for any user; the errors are in seconds and never negative."""
        synchronized, esterror, maxerror = adjtimex()
        assert isinstance(synchronized, bool)
        assert 0 <= esterror <= maxerror

    def test_test_file_sets_sync_offset_and_error(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """EDGE_CLOCK_TEST_FILE (tests only) is read at every reading; a wall clock before the floor date is never
        synchronised; an unreadable file reads as unsynchronised."""
        clock = tmp_path / "clock"
        monkeypatch.setenv("EDGE_CLOCK_TEST_FILE", str(clock))
        clock.write_text("synchronized=1\noffset_seconds=28800\nesterror_seconds=0.25\n")
        now = read_clock()
        assert now.synchronized and now.esterror == 0.25 and abs(now.wall - time.time() - 28800) < 5
        clock.write_text(f"synchronized=1\noffset_seconds={-time.time() + 86400}\n")
        assert not read_clock().synchronized and read_clock().wall < CLOCK_FLOOR
        clock.write_text("synchronized=0\n")
        assert not read_clock().synchronized
        assert read_clock(trust_unsynchronized=True).synchronized
        clock.write_text("offset_seconds=soon\n")
        assert not read_clock().synchronized

    def test_step_detected_and_logged_slew_is_not(self) -> None:
        """A change of wall - boot time beyond 1 s between two readings is a step; NTP's slew is not."""
        log, stream = logger()
        readings = iter([reading(NOW, 100.0), reading(NOW + 10.0004, 110.0), reading(NOW + 20 - 3600, 120.0)])
        keeper = Timekeeper(log, lambda: next(readings))
        keeper.read()
        keeper.read()
        assert keeper.steps == 0
        keeper.read()
        assert keeper.steps == 1
        assert "wall clock stepped by_seconds=-3600.000" in stream.getvalue()


class TestHold:
    def make(self, readings: list[ClockReading], *, hold_limit: int = 100) -> tuple[Pusher, Spool, io.StringIO]:
        log, stream = logger()
        sequence = iter(readings)
        spool = Spool(None, 1 << 20, log)
        # A port nobody listens on: every send fails to connect, so everything stays in the spool to look at.
        pusher = Pusher(Endpoint("127.0.0.1", free_port(), "/"), spool, Timekeeper(log, lambda: next(sequence)),
                        log, hold_limit=hold_limit)
        return pusher, spool, stream

    def test_held_until_synchronised_then_stamped_at_the_time_read(self) -> None:
        """Readings taken while unsynchronised keep their boot time; at sync each is stamped wall now - time since,
        in order, and later readings follow."""
        pusher, spool, _ = self.make([reading(NOW + 8 * 3600, 150.0, False), reading(NOW, 200.0, True)])
        sample = (Sample("edge_x", (), 1.0),)
        pusher.record("s", sample, reading(NOW + 8 * 3600 - 50, 100.0, False))
        pusher.record("s", sample, reading(NOW + 8 * 3600 - 40, 110.0, True))  # after held ones: held too
        pusher.tick()
        assert pusher.drain() is None  # nothing it may send yet
        assert pusher.held_samples == 2 and all(e.held for e in spool.entries)
        pusher.tick()
        assert [e.timestamp_ms for e in spool.entries] == [int((NOW - 100) * 1000), int((NOW - 90) * 1000)]
        assert pusher.drain() == 1.0
        assert pusher.errors["connect"] == 1 and pusher.held_samples == 0

    def test_hold_limit_drops_the_oldest_and_counts_them(self) -> None:
        pusher, _, stream = self.make([], hold_limit=3)
        for n in range(5):
            pusher.record("s", (Sample("edge_x", (), float(n)),), reading(0.0, float(n), False))
        assert [pusher.spool.read(e) for e in pusher.spool.entries] == [b"edge_x 2\n", b"edge_x 3\n", b"edge_x 4\n"]
        assert pusher.dropped["clock_hold_limit"] == 2
        assert "held readings over the limit dropped" in stream.getvalue()

    def test_two_runs_in_one_millisecond_get_distinct_timestamps(self) -> None:
        pusher, spool, _ = self.make([])
        pusher.record("s", (Sample("edge_x", (), 1.0),), reading(NOW, 1.0))
        pusher.record("s", (Sample("edge_x", (), 2.0),), reading(NOW + 0.0002, 1.0002))
        assert [e.timestamp_ms for e in spool.entries] == [int(NOW * 1000), int(NOW * 1000) + 1]


class TestPost:
    def test_connection_refused_is_a_connect_error(self) -> None:
        with pytest.raises(PushError) as caught:
            post(Endpoint("127.0.0.1", free_port(), "/"), b"x 1 1\n")
        assert caught.value.cause == "connect"


class TestCommandLine:
    @pytest.mark.parametrize(
        ("env", "args", "message"),
        [
            ({"EDGE_PUSH_URL": "https://vmagent:8429/x"}, [],
             "EDGE_PUSH_URL (--push-url): 'https://vmagent:8429/x': only http://"),
            ({"EDGE_PUSH_URL": "http://127.0.0.1:8429/x", "EDGE_SPOOL_MAX_BYTES": "lots"}, [],
             "EDGE_SPOOL_MAX_BYTES (--spool-max-bytes): invalid size 'lots'"),
            ({}, ["--push-url", "http://127.0.0.1:8429/x", "--spool-dir", "/dev/null"],
             "--spool-dir: /dev/null exists and is not a directory"),
        ],
    )
    def test_bad_push_options_are_one_line_and_exit_2(
        self, env: dict[str, str], args: list[str], message: str,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path,
    ) -> None:
        """A bad push option or env var is one line on stderr naming the option, and exit code 2."""
        from edge_metrics.cli import main

        for name, value in env.items():
            monkeypatch.setenv(name, value)
        assert main(["run", "--once", "--output", str(tmp_path / "out.prom"), *args]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"edge-metrics: error: {message}" in err


CONTRACT_FAMILIES = frozenset({
    "edge_collector_push_samples_total", "edge_collector_push_spooled_samples", "edge_collector_push_spooled_bytes",
    "edge_collector_push_dropped_samples_total", "edge_collector_push_last_success_timestamp_seconds",
    "edge_collector_push_errors_total", "edge_collector_clock_synchronized",
    "edge_collector_clock_estimated_error_seconds", "edge_collector_clock_max_error_seconds",
    "edge_collector_clock_steps_total", "edge_collector_clock_held_samples",
})  # names others build dashboards and alerts on (issue 8)


class TestSelfMetrics:
    def test_every_contract_family_in_a_valid_exposition(self) -> None:
        """The push and clock families under the names dashboards and alerts use, with their label, parsed by the
        Prometheus client's own parser."""
        from prometheus_client.parser import text_string_to_metric_families

        from edge_metrics.httppost import ERROR_CAUSES
        from edge_metrics.push import DROP_REASONS
        from edge_metrics.render import render
        from edge_metrics.selfmetrics import PushHealth, push_blocks

        health = PushHealth(True, 7, 2, 70, dict.fromkeys(DROP_REASONS, 1), dict.fromkeys(ERROR_CAUSES, 3), NOW,
                            ClockReading(NOW, 5.0, True, 0.002, 0.5), 1, 0)
        families = {f.name: f for f in text_string_to_metric_families(render([], push_blocks(health)))}
        names = {f"{f.name}_total" if f.type == "counter" else f.name for f in families.values()}
        assert names >= CONTRACT_FAMILIES
        dropped = families["edge_collector_push_dropped_samples"].samples
        assert {s.labels["reason"] for s in dropped} == {
            "spool_full", "clock_hold_limit", "clock_step", "rejected", "damaged", "held_reboot", "unsaved_at_exit"}
        errors = families["edge_collector_push_errors"].samples
        assert {s.labels["cause"] for s in errors} >= {"connect", "timeout", "http_4xx", "http_5xx"}
        assert families["edge_collector_clock_estimated_error_seconds"].samples[0].value == 0.002


class TestLight:
    def test_push_mode_imports_nothing_heavy(self) -> None:
        """The daemon in push mode loads no HTTP, JSON or logging library (memory on small boards)."""
        import subprocess
        import sys

        code = (
            "import sys; import edge_metrics.cli, edge_metrics.daemon, edge_metrics.push, edge_metrics.httppost, "
            "edge_metrics.spool, edge_metrics.clock; print(' '.join(sorted(sys.modules)))"
        )
        loaded = set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
                     .stdout.split())
        heavy = {"http", "http.client", "urllib.request", "json", "logging", "socket", "selectors", "typing",
                 "dataclasses", "subprocess"}
        assert loaded & heavy == set()


def enospc(path: str, data: bytes) -> None:
    raise OSError(28, "No space left on device", path)


class TestDiskFull:
    def test_refused_writes_stay_in_memory_within_the_bound_oldest_first(self, tmp_path: Path) -> None:
        """The disk refuses every write (ENOSPC, injected through the writer): readings wait in memory, never
        more than the memory bound (the pod's limit), the oldest dropped first and counted as spool_full; the
        error is logged once, not at every run."""
        log, stream = logger()
        spool = Spool(str(tmp_path), 1 << 20, log, write=enospc, memory_max=100)
        for n in range(5):
            assert not spool.append("s", 1000 + n, 2, b"x" * 30)
        assert [e.timestamp_ms for e in spool.entries] == [1002, 1003, 1004]
        assert spool.memory_bytes == 90 and spool.dropped_samples == 4
        assert stream.getvalue().count("cannot write to the spool; keeping the readings in memory") == 1

    def test_sigterm_with_a_full_disk_says_and_counts_what_it_could_not_keep(self, tmp_path: Path) -> None:
        """At the stop, what the disk refused is tried once more; what still cannot be written is logged with its
        number and counted as unsaved_at_exit, and the runs that did reach the disk are not."""
        log, stream = logger()
        full = [False]

        def disk(path: str, data: bytes) -> None:
            if full[0]:
                enospc(path, data)
            from edge_metrics.textfile import write_atomically

            write_atomically(path, data)

        spool = Spool(str(tmp_path), 1 << 20, log, write=disk)
        clock = iter([reading(NOW + 10, 10.0)] * 10)
        pusher = Pusher(Endpoint("127.0.0.1", free_port(), "/"), spool, Timekeeper(log, lambda: next(clock)), log)
        sample = (Sample("edge_x", (), 1.0),)
        assert pusher.record("s", (*sample, Sample("edge_y", (), 2.0)), reading(NOW, 1.0))
        full[0] = True
        assert not pusher.record("s", sample, reading(NOW + 1, 2.0))
        assert not pusher.record("s", sample, reading(NOW + 2, 3.0))
        pusher.stop(grace=0.2)
        assert pusher.dropped_by_reason()["unsaved_at_exit"] == 2
        assert "readings not pushed are lost with this collector samples=2" in stream.getvalue()
        assert len(list(tmp_path.glob("*.push"))) == 1


class TestDurable:
    def test_a_run_is_on_disk_when_record_returns(self, tmp_path: Path) -> None:
        """Durable before it is called taken: the run's file is in the spool directory as soon as record()
        returns, before any attempt to send it (a crash from then on cannot lose it)."""
        log, _ = logger()
        spool = Spool(str(tmp_path), 1 << 20, log)
        clock = iter([reading(NOW, 1.0)] * 3)
        pusher = Pusher(Endpoint("127.0.0.1", free_port(), "/"), spool, Timekeeper(log, lambda: next(clock)), log)
        pusher.record("s", (Sample("edge_x", (), 1.0),), reading(NOW, 1.0))
        assert len(list(tmp_path.glob("*.push"))) == 1


class TestReboot:
    def test_held_readings_survive_a_restart_in_the_same_boot_not_a_reboot(self, tmp_path: Path) -> None:
        """A held entry (timestamp 0) keeps its CLOCK_BOOTTIME and the boot id: a collector of the same boot picks
        it up still held; after a reboot (another boot id) its time cannot be known: dropped, counted, logged."""
        log, stream = logger()
        Spool(str(tmp_path), 1 << 20, log, boot_id="boot-a").append("s", 0, 1, b"edge_x 1\n", boot_ms=5000)
        same = Spool(str(tmp_path), 1 << 20, log, boot_id="boot-a")
        assert [(e.held, e.boot_ms, e.script) for e in same.entries] == [(True, 5000, "s")]
        assert same.held_samples == 1
        rebooted = Spool(str(tmp_path), 1 << 20, log, boot_id="boot-b")
        assert not rebooted.entries and rebooted.reboot_samples == 1
        assert "before a reboot: their time is unknown, dropped samples=1" in stream.getvalue()


class TestSplit:
    def test_a_400_is_split_down_to_the_run_vmagent_refuses(self) -> None:
        """A batch of 8 runs with one bad run: bisected until the bad run is alone; only it is dropped."""
        log, _ = logger()
        spool = Spool(None, 1 << 20, log)
        posts: list[int] = []

        def send(_endpoint: Endpoint, body: bytes, _timeout: float) -> int:
            posts.append(body.count(b"\n"))
            if b"edge_x 5 " in body:
                raise PushError("http_4xx", "HTTP/1.1 400 Bad Request")
            return 204

        clock = iter([reading(NOW + 100, 100.0)] * 5)
        pusher = Pusher(Endpoint("127.0.0.1", 9, "/"), spool, Timekeeper(log, lambda: next(clock)), log, send=send)
        for n in range(8):
            pusher.record("s", (Sample("edge_x", (), float(n)),), reading(NOW + n, float(n)))
        pusher.tick()
        assert pusher.drain() is None
        assert pusher.sent_samples == 7 and pusher.dropped["rejected"] == 1
        assert posts == [8, 4, 4, 2, 1, 1, 2]


class TestOutage:
    """vmagent down for a long while: the collector's memory and work stay flat however many runs it spools."""

    def test_a_failed_attempt_leaves_no_reference_cycle_holding_its_batch(self) -> None:
        """Every attempt of an outage failed with a PushError whose traceback kept the attempt's frames, and so
        its whole batch, alive until the cyclic collector ran: the collector grew by about a batch per attempt
        (hundreds of MiB in a minute of runs at a short interval). The real post() to a closed port, as in an
        outage."""
        log, _ = logger()
        spool = Spool(None, 1 << 20, log)
        clock = iter([reading(NOW + 100, 100.0)] * 12)
        pusher = Pusher(Endpoint("127.0.0.1", free_port(), "/"), spool, Timekeeper(log, lambda: next(clock)), log)
        pusher.record("s", tuple(Sample(f"edge_x{n}", (), 1.0) for n in range(20)), reading(NOW, 1.0))
        pusher.tick()
        gc.collect()
        gc.disable()
        try:
            for _ in range(10):
                assert pusher.drain() is not None  # refused: backing off
            unreachable = gc.collect()
        finally:
            gc.enable()
        assert pusher.errors["connect"] == 10
        assert unreachable == 0

    def test_runs_recorded_while_backing_off_do_not_start_attempts(self) -> None:
        """The sender waits out its back-off: each run recorded during an outage woke it for an attempt that read
        the whole backlog again, so a run's cost grew with the outage."""
        log, _ = logger()
        spool = Spool(None, 1 << 20, log)
        attempts: list[float] = []

        def send(_endpoint: Endpoint, _body: bytes, _timeout: float) -> int:
            attempts.append(time.monotonic())
            raise PushError("connect", "Connection refused")

        def now() -> ClockReading:
            return read_clock(trust_unsynchronized=True)

        pusher = Pusher(Endpoint("127.0.0.1", 9, "/"), spool, Timekeeper(log, now), log, send=send)
        pusher.start()
        try:
            started = time.monotonic()
            for n in range(20):
                pusher.record("s", (Sample("edge_x", (), float(n)),), now())
                time.sleep(0.01)
            window = time.monotonic() - started
        finally:
            pusher.stop(grace=0.1)
        within = [at for at in attempts if at - started < window]
        # The first attempt, and at most one more if the machine stalled past the first back-off.
        assert 1 <= len(within) <= 2, f"{len(within)} attempts in {window:.2f}s of 20 runs"

    def test_runs_recorded_while_a_batch_is_in_flight_never_drop_it(self) -> None:
        """A full spool drops its oldest runs, but not the batch being sent: vmagent may take it. Dropped while in
        flight and then taken, a run was counted as lost (spool_full) and stored all the same."""
        log, _ = logger()
        spool = Spool(None, 60, log)  # room for about two runs
        received: list[bytes] = []

        def send(_endpoint: Endpoint, body: bytes, _timeout: float) -> int:
            if not received:  # runs taken while the first POST is on its way
                for n in range(3):
                    pusher.record("s", (Sample("edge_y", (), float(n)),), reading(NOW + 10 + n, 10.0 + n))
            received.append(body)
            return 204

        clock = iter([reading(NOW + 100, 100.0)] * 10)
        pusher = Pusher(Endpoint("127.0.0.1", 9, "/"), spool, Timekeeper(log, lambda: next(clock)), log, send=send)
        pusher.record("s", (Sample("edge_x", (), 1.0),), reading(NOW, 1.0))
        pusher.tick()
        pusher.drain()
        delivered = sum(body.count(b"\n") for body in received)
        assert delivered == pusher.sent_samples, "a delivered run was counted as dropped"
        assert pusher.dropped_by_reason()["spool_full"] + pusher.sent_samples + spool.samples == 4
