"""`edge-metrics check`: validate nodes.conf and every script it names, then print the resolved plan.

Meant for CI before `kubectl apply`: unlike `run`, it also asks bash to parse each script (`bash -n`).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import TextIO

from edge_metrics.config import ConfigError, NodesConfig, load_config, script_path
from edge_metrics.durations import format_duration
from edge_metrics.samples import Plan


def check_config(
    config_path: Path, *, scripts_dir: Path, default_interval: float, node: str | None, out: TextIO, err: TextIO
) -> int:
    try:
        config = load_config(config_path, scripts_dir=scripts_dir, default_interval=default_interval)
    except ConfigError as error:
        for problem in error.problems:
            print(problem, file=err)
        return 1
    problems = _syntax_problems(config)
    for problem in problems:
        print(problem, file=err)
    nodes = [node] if node else [entry.node for entry in config.entries]
    for name in nodes:
        print(_describe(config.plan_for(name), config_path), file=out)
    return 1 if problems else 0


def _syntax_problems(config: NodesConfig) -> list[str]:
    problems = []
    names = sorted({ref.name for entry in config.entries for ref in entry.scripts})
    for name in names:
        path = script_path(config.scripts_dir, name)
        result = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            # bash reports `path: line N: message`; turn it into the file:line: reason form.
            for line in result.stderr.strip().splitlines():
                problems.append(_bash_error_to_location(line, path))
    return problems


def _bash_error_to_location(line: str, path: Path) -> str:
    prefix = f"{path}: line "
    if line.startswith(prefix):
        number, _, reason = line[len(prefix) :].partition(": ")
        return f"{path}:{number}: {reason}"
    return f"{path}: {line}"


def _describe(plan: Plan, config_path: Path) -> str:
    if plan.line is None:
        source = "no matching line"
    else:
        source = f"{config_path}:{plan.line}" + (f" ({plan.pattern})" if plan.pattern != plan.node else "")
    if not plan.jobs:
        return f"{plan.node}: default (no scripts)  [{source}]"
    jobs = ", ".join(f"{job.script} every {format_duration(job.interval)}" for job in plan.jobs)
    return f"{plan.node}: {jobs}  [{source}]"
