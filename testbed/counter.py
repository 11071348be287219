"""The counter script the e2e tests run, and the accounting of which of its values a scrape must have seen."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


def write_counter_config(directory: Path, *, node: str, interval: str) -> Path:
    """nodes.conf + counter.sh for one node. The script prints a value that grows by one each run (its
    state in a file beside it) and logs `value epoch-time` to counter.log, so a test knows what was
    printed when and any gap at the centre is visible."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "counter.sh").write_text(
        "#!/bin/bash\n"
        f"state={str(directory / 'counter.state')!r}\n"
        'n=$(( $(cat "$state" 2>/dev/null || echo 0) + 1 ))\n'
        'echo "$n" > "$state"\n'
        f'echo "$n $(date +%s.%N)" >> {str(directory / "counter.log")!r}\n'
        'echo "e2e_counter=$n"\n'
    )
    config = directory / "nodes.conf"
    config.write_text(f"{node}=counter:{interval}\n")
    return config


@dataclass(frozen=True, slots=True)
class Print:
    value: int
    at: float  # wall-clock time the script printed it


def read_prints(directory: Path) -> list[Print]:
    log = directory / "counter.log"
    if not log.exists():
        return []
    return [Print(int(v), float(t)) for v, t in (line.split() for line in log.read_text().splitlines())]


@dataclass(frozen=True, slots=True)
class ScrapeRun:
    """A period in which vmagent scraped every `interval` seconds at a fixed `phase` of the second."""

    start: float
    end: float
    phase: float
    interval: float = 1.0

    def scrapes_between(self, low: float, high: float, failed: Sequence[float] = ()) -> bool:
        """A scrape of this run in [low, high] that is not one of the `failed` ones (their `up` stamps)."""
        low, high = max(low, self.start), min(high, self.end)
        scrape = low + (self.phase - low) % self.interval  # the first scrape at or after `low`
        while scrape <= high:
            if not any(abs(scrape - stamp) < self.interval / 2 for stamp in failed):
                return True
            scrape += self.interval
        return False


def scrape_phase(timestamps: Sequence[float], interval: float = 1.0) -> float:
    """vmagent scrapes a target at a fixed offset in each interval; the median offset of its samples."""
    offsets = sorted(t % interval for t in timestamps)
    if not offsets:
        raise ValueError("no scrape timestamps")
    return offsets[len(offsets) // 2]


def certainly_scraped(
    prints: Sequence[Print], runs: Sequence[ScrapeRun], margin: float = 0.15, failed: Sequence[float] = ()
) -> set[int]:
    """Printed values that some scrape must have seen: the value stayed in the file from (print time +
    margin) to (next print time - margin) and vmagent scraped inside that span. Values printed while
    vmagent was down, whose only scrape fell within `margin` of a rewrite (timing jitter), or whose only
    scrape failed (`failed`: the stamps of `up` 0, at the centre; a loaded machine times scrapes out) are
    left out. A lost block loses its `up` too, so its values stay expected."""
    seen = set()
    for current, following in itertools.pairwise(prints):
        low, high = current.at + margin, following.at - margin
        if any(run.scrapes_between(low, high, failed) for run in runs):
            seen.add(current.value)
    return seen
