"""The order in which `make test`'s workers take the test files: the costliest first.

xdist's `--dist loadfile` hands out whole files (module fixtures start once) in collection order, reordered by the
number of tests in each: the unit files with hundreds of millisecond tests go first, and the run ends on one
worker waiting out a long end-to-end file while the others idle. Here the files go out by their recorded cost
(tests/schedule_costs.json, seconds per file from a `--durations=0` run; docs/testing.md), the longest first, so
the cheap files fill the gaps at the end. The fleets (tests/fleet) are one unit: they take a lock to run one at a
time, and a worker that waits on that lock does nothing else.

Regenerate the costs from a run's output: `pytest -n 4 --dist loadfile --durations=0 | tee run.log`, then
`python -m tests.schedule run.log > tests/schedule_costs.json`.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

COSTS = Path(__file__).with_name("schedule_costs.json")
# Files that must share one worker, by the folder they live in.
ONE_UNIT = ("tests/fleet/",)
# A file not in the table yet: about what a unit test costs, per test.
UNKNOWN_SECONDS_PER_TEST = 0.05


def unit_of(nodeid: str) -> str:
    """The work unit a test belongs to: its file, or the folder of ONE_UNIT it lives in."""
    path = nodeid.split("::", 1)[0]
    return next((folder for folder in ONE_UNIT if path.startswith(folder)), path)


def recorded_costs(path: Path = COSTS) -> dict[str, float]:
    """Seconds per unit as recorded, files of one unit added up."""
    costs: Counter[str] = Counter()
    for file, seconds in json.loads(path.read_text()).items():
        costs[unit_of(file)] += float(seconds)
    return dict(costs)


def costs_from_durations(lines: Iterable[str]) -> dict[str, float]:
    """Seconds per file from pytest's `--durations=0` lines (setup, call and teardown added up)."""
    line_pattern = re.compile(r"\s*([\d.]+)s (?:setup|call|teardown)\s+([^:\s]+)::")
    costs: Counter[str] = Counter()
    for line in lines:
        if match := line_pattern.match(line):
            costs[match[2]] += float(match[1])
    return {file: round(seconds, 1) for file, seconds in costs.most_common()}


def make_scheduler(config: Any, log: Any) -> Any:
    """xdist's file scheduler, taking the costliest unit first and the next unit only when a worker needs it."""
    from xdist.scheduler import LoadScopeScheduling  # only under `pytest -n`

    costs = recorded_costs()

    class CostliestFirst(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            return unit_of(nodeid)

        def _assign_work_unit(self, node: Any) -> None:
            def cost(unit: str) -> float:
                return costs.get(unit, UNKNOWN_SECONDS_PER_TEST * len(self.workqueue[unit]))

            self.workqueue.move_to_end(max(self.workqueue, key=cost), last=False)
            super()._assign_work_unit(node)

        def _reschedule(self, node: Any) -> None:
            # xdist sends the next file while two tests of the current one are still to run, so a long test near
            # the end of a file holds a whole file back from the workers that are free. A worker holds its last
            # test until it knows the next (for the teardown of module fixtures): one is the least that works.
            if not node.shutting_down and self.workqueue and self._pending_of(self.assigned_work[node]) > 1:
                return
            super()._reschedule(node)

    return CostliestFirst(config, log)


if __name__ == "__main__":
    with open(sys.argv[1]) as run_log:
        print(json.dumps(costs_from_durations(run_log), indent=1))
