"""Fixed-rate schedule for the node's scripts, on an injected monotonic clock.

Runs start at t0 + k*interval. Scripts never run at the same time (they may share an I2C bus): a script whose
tick comes while another runs waits and then runs late once; ticks that pass while a script is itself still
running, or beyond the one it waited for, are skipped and counted, never queued up.
"""

from __future__ import annotations

import math

from edge_metrics.samples import Job

RELOAD_POLL_SECONDS = 1.0  # how often nodes.conf and the scripts directory are checked for changes
SETTLE_SECONDS = 0.3  # a config update that fails to load is retried once after this, before it is reported


class _Slot:
    __slots__ = ("job", "t0", "tick")

    def __init__(self, job: Job, t0: float, tick: int = 0) -> None:
        self.job = job
        self.t0 = t0
        self.tick = tick  # index of the next tick to run

    def tick_time(self, tick: int) -> float:
        return self.t0 + tick * self.job.interval

    def last_tick_at_or_before(self, now: float) -> int:
        # Float error must not push an exactly-due tick into the future.
        return math.floor((now - self.t0) / self.job.interval + 1e-9)


class Schedule:
    __slots__ = ("slots",)

    def __init__(self, slots: list[_Slot] | None = None) -> None:
        self.slots = slots if slots is not None else []

    @classmethod
    def start(cls, jobs: tuple[Job, ...], now: float) -> Schedule:
        """Every job's first run is due right now."""
        return cls([_Slot(job, now) for job in jobs])

    def replan(self, jobs: tuple[Job, ...], now: float) -> Schedule:
        """After a reload: unchanged jobs keep their phase; new or changed ones are due now."""
        kept = {(slot.job.script, slot.job.path, slot.job.interval): slot for slot in self.slots}
        slots = []
        for job in jobs:
            old = kept.get((job.script, job.path, job.interval))
            slots.append(_Slot(job, old.t0, old.tick) if old is not None else _Slot(job, now))
        return Schedule(slots)

    def next_due(self) -> float | None:
        """Monotonic time of the earliest pending tick, None when there is nothing to run."""
        return min((slot.tick_time(slot.tick) for slot in self.slots), default=None)

    def take_due(self, now: float) -> tuple[Job, int] | None:
        """The job to run now (earliest pending tick first) and how many of its ticks were skipped."""
        due = [slot for slot in self.slots if slot.tick_time(slot.tick) <= now + 1e-9]
        if not due:
            return None
        slot = min(due, key=lambda s: s.tick_time(s.tick))
        latest = max(slot.last_tick_at_or_before(now), slot.tick)
        skipped = latest - slot.tick
        slot.tick = latest + 1
        return slot.job, skipped

    def finished(self, job: Job, now: float) -> int:
        """Record that `job` finished at `now`; return how many of its ticks passed while it ran (skipped)."""
        for slot in self.slots:
            if slot.job == job:
                passed = slot.last_tick_at_or_before(now) + 1 - slot.tick
                if passed > 0:
                    slot.tick += passed
                    return passed
                return 0
        return 0


class ReloadTimer:
    """When to look at nodes.conf and the scripts again, on the same injected clock as Schedule.

    action() says what the loop does now: "hup" (SIGHUP: load and report), "retry" (an update that failed to load
    quietly, loaded again out loud after the settle delay), "full" (the periodic check, listing the scripts
    directory), "quick" (the check before a run: the known files only), or None."""

    __slots__ = ("next_poll", "poll", "retry_at", "settle")

    def __init__(self, now: float, *, poll: float = RELOAD_POLL_SECONDS, settle: float = SETTLE_SECONDS) -> None:
        self.poll = poll
        self.settle = settle
        self.next_poll = now + poll
        self.retry_at: float | None = None

    def action(self, now: float, *, run_due: bool, hup: bool) -> str | None:
        poll_due = now >= self.next_poll
        if poll_due:
            self.next_poll = now + self.poll
        if hup:
            self.retry_at = None
            return "hup"
        if self.retry_at is not None:
            if now < self.retry_at:
                return None
            self.retry_at = None
            return "retry"
        if poll_due:
            return "full"
        return "quick" if run_due else None

    def failed_quietly(self, now: float) -> None:
        """The update did not load: the kubelet links new ConfigMap keys only after it swaps `..data`, so give it
        a moment to settle before rejecting it."""
        self.retry_at = now + self.settle

    def next_wake(self) -> float:
        return self.next_poll if self.retry_at is None else min(self.next_poll, self.retry_at)
