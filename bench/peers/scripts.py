"""The one script every approach runs, written in the output format each approach reads.

Twenty readings, one builtin `echo` each, as bench/workload.py's `echo_lines(20)`; only the line format
differs (key=value, collectd's PUTVAL, Prometheus exposition). The first reading carries the run's start
time, so a reading found in Prometheus names the run it came from, and the script appends that time to a
runs log with a builtin redirection (no process): the bench counts runs and the first run from it, the
same way for every approach, whatever the agent exports about itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

READINGS = 20
# Just below edge-metrics' 1 MiB stdout cap, so that no approach sees a truncated output.
BIG_BYTES = 1024 * 1024 - 4096


@dataclass(frozen=True, slots=True)
class Format:
    """How one reading is printed: `line(name, value)` -> a line without its newline."""

    name: str
    template: str  # {name} and {value}

    def line(self, name: str, value: str) -> str:
        return self.template.format(name=name, value=value)


KEY_VALUE = Format("key=value", "{name}={value}")
# collectd's exec plugin protocol: identifier host/plugin-instance/type-instance, N = stamped when read.
PUTVAL = Format("PUTVAL", 'PUTVAL "bench/exec-sensors/gauge-{name}" N:{value}')
EXPOSITION = Format("exposition", "{name} {value}")


def reading_names() -> list[str]:
    return [f"sensor_{i:02d}" for i in range(READINGS)]


def sensor_script(path: Path, fmt: Format, runs_log: Path) -> Path:
    """The 20-reading script; reading 0 is the run's start time ($EPOCHREALTIME, a builtin)."""
    lines = ["#!/bin/bash", "t=$EPOCHREALTIME", f"printf '%s\\n' \"$t\" >>{runs_log}"]
    for i, name in enumerate(reading_names()):
        value = "$t" if i == 0 else f"{20 + i}.{i % 10}5"
        lines.append("echo " + _quoted(fmt.line(name, value)))
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o755)
    return path


def big_script(path: Path, fmt: Format, runs_log: Path, output: Path) -> Path:
    """A script printing just under 1 MiB of distinct readings (prepared once in `output`, sent with cat)."""
    lines, size, i = [], 0, 0
    while True:
        line = fmt.line(f"big_{i:06d}", f"{i % 1000}.{i % 9}5") + "\n"
        if size + len(line) > BIG_BYTES:
            break
        lines.append(line)
        size += len(line)
        i += 1
    output.write_text("".join(lines))
    output.chmod(0o644)
    path.write_text(f"#!/bin/bash\nprintf '%s\\n' \"$EPOCHREALTIME\" >>{runs_log}\nexec cat {output}\n")
    path.chmod(0o755)
    return path


def big_readings(output: Path) -> int:
    with open(output, "rb") as handle:
        return sum(1 for _ in handle)


def _quoted(text: str) -> str:
    """`text` as one bash word with $t expanded: double quotes, inner double quotes escaped."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
