from __future__ import annotations

from pathlib import Path

from edge_metrics.samples import Job
from edge_metrics.schedule import ReloadTimer, Schedule

A = Job("a", Path("a.sh"), 10.0)
B = Job("b", Path("b.sh"), 4.0)


def simulate(schedule: Schedule, durations: dict[str, float], until: float) -> list[tuple[str, float, int]]:
    """Drive the schedule on a fake clock: (script, start time, skipped) for every run before `until`."""
    now = 0.0
    runs: list[tuple[str, float, int]] = []
    while now < until:
        taken = schedule.take_due(now)
        if taken is None:
            due = schedule.next_due()
            assert due is not None and due > now
            now = due
            continue
        job, skipped = taken
        runs.append((job.script, now, skipped))
        now += durations[job.script]
        passed = schedule.finished(job, now)
        if passed:
            runs.append((job.script + ":overran", now, passed))
    return runs


class TestFixedRate:
    def test_first_run_at_start_then_every_interval(self) -> None:
        """A 3 s script on a 10 s interval starts at 0, 10, 20, … (fixed rate, not fixed delay)."""
        runs = simulate(Schedule.start((A,), 0.0), {"a": 3.0}, until=50)
        assert [start for _, start, _ in runs] == [0, 10, 20, 30, 40]

    def test_no_drift_over_hours(self) -> None:
        """After 10 hours of 0.7 s runs every 1 s, run N still starts at exactly t0 + N s."""
        job = Job("a", Path("a.sh"), 1.0)
        runs = simulate(Schedule.start((job,), 100.0), {"a": 0.7}, until=100.0 + 36000)
        assert len(runs) == 36000
        assert abs(runs[-1][1] - (100.0 + 35999)) < 1e-6

    def test_overrun_skips_and_counts_missed_ticks(self) -> None:
        """A 25 s run on a 10 s interval skips the ticks at 10 and 20 and starts again at 30."""
        runs = simulate(Schedule.start((A,), 0.0), {"a": 25.0}, until=60)
        assert runs == [("a", 0, 0), ("a:overran", 25, 2), ("a", 30, 0), ("a:overran", 55, 2)]

    def test_scripts_never_overlap_and_a_waiting_script_runs_late_once(self) -> None:
        """B's ticks at 0 and 4 fall inside A's 0-6 run: B runs once right after A (one tick skipped), then on time."""
        runs = simulate(Schedule.start((A, B), 0.0), {"a": 6.0, "b": 1.0}, until=17)
        assert runs == [("a", 0, 0), ("b", 6, 1), ("b", 8, 0), ("a", 10, 0), ("b", 16, 1)]

    def test_waiting_past_several_ticks_runs_once_and_skips_the_rest(self) -> None:
        """B (every 4 s) waits through A's 0-13 run: it runs once at 13, and its other passed ticks are skipped."""
        schedule = Schedule.start((A, B), 0.0)
        assert schedule.take_due(0.0) == (A, 0)
        assert schedule.finished(A, 13.0) == 1  # A's own tick at 10 passed while it ran
        # B's ticks at 0, 4, 8 and 12 have passed: one run now, three skipped.
        assert schedule.take_due(13.0) == (B, 3)
        assert schedule.finished(B, 13.5) == 0
        assert schedule.next_due() == 16.0


class TestReplan:
    def test_unchanged_jobs_keep_their_phase(self) -> None:
        """A reload keeps an unchanged job's grid; a new job is due at once."""
        schedule = Schedule.start((A,), 0.0)
        schedule.take_due(0.0)
        schedule.finished(A, 1.0)
        replanned = schedule.replan((A, B), 5.0)
        assert replanned.take_due(5.0) == (B, 0)
        replanned.finished(B, 5.5)
        assert replanned.next_due() == 9.0  # B's grid; A's next tick stays at 10
        assert replanned.take_due(9.0) == (B, 0)
        replanned.finished(B, 9.1)
        assert replanned.take_due(10.0) == (A, 0)

    def test_changed_interval_restarts_the_job(self) -> None:
        """A job whose interval changed is due right away on its new grid."""
        schedule = Schedule.start((A,), 0.0)
        schedule.take_due(0.0)
        schedule.finished(A, 1.0)
        faster = Job("a", Path("a.sh"), 2.0)
        replanned = schedule.replan((faster,), 3.0)
        assert replanned.take_due(3.0) == (faster, 0)

    def test_empty_plan_has_nothing_due(self) -> None:
        """`default`: nothing ever becomes due."""
        assert Schedule.start((), 0.0).next_due() is None
        assert Schedule.start((), 0.0).take_due(1e9) is None


class TestReloadTimer:
    def test_poll_quick_check_retry_and_hup(self) -> None:
        """The periodic full check every second, the quick check before a due run, the retry after the settle
        delay taking precedence over checks, and SIGHUP cancelling a pending retry."""
        timer = ReloadTimer(0.0, poll=1.0, settle=0.3)
        assert timer.action(0.5, run_due=False, hup=False) is None
        assert timer.action(0.5, run_due=True, hup=False) == "quick"
        assert timer.action(1.0, run_due=False, hup=False) == "full"
        assert timer.next_wake() == 2.0
        timer.failed_quietly(1.0)
        assert timer.next_wake() == 1.3
        assert timer.action(1.2, run_due=True, hup=False) is None
        assert timer.action(1.3, run_due=False, hup=False) == "retry"
        timer.failed_quietly(1.4)
        assert timer.action(1.5, run_due=False, hup=True) == "hup"
        assert timer.next_wake() == 2.0
