"""Fixed-rate schedule for the node's scripts, on an injected monotonic clock.

Runs start at t0 + k*interval. Scripts never run at the same time (they may share an I2C bus): a script whose
tick comes while another runs waits and then runs late once; ticks that pass while a script is itself still
running, or beyond the one it waited for, are skipped and counted, never queued up.
"""

from __future__ import annotations

import math

from edge_metrics.samples import Job


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
