"""`edge-metrics check`: validate nodes.conf and every script it names, then print the resolved plan.

Meant for CI before `kubectl apply`: unlike `run`, it also asks bash to parse each script (`bash -n`), and it
reports every problem at once. `--configmap` checks the ConfigMap of a rendered manifest: what the cluster
mounts, which lacks any script missing from scripts/kustomization.yaml.
"""

from __future__ import annotations

import io
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TextIO

from edge_metrics.config import NodesConfig, bounded, inspect_config, script_path, unmatched_problem
from edge_metrics.durations import format_duration
from edge_metrics.manifest import liveness_problems, missing_script_files, missing_script_fix
from edge_metrics.samples import Plan


def check_config(
    config_path: Path, *, scripts_dir: Path, default_interval: float, node: str | None, out: TextIO, err: TextIO
) -> int:
    """The loader's rules (load_config's, through inspect_config and unmatched_problem), then `bash -n` of the
    content the loader read."""
    found = inspect_config(config_path, scripts_dir=scripts_dir, default_interval=default_interval)
    entries = found.entries
    problems = [problem.text for problem in found.problems]
    unmatched = unmatched_problem(config_path, entries, node) if node and entries else None
    if unmatched is not None:
        problems.append(unmatched)
    problems.extend(_syntax_problems(found.contents, scripts_dir))
    for problem in bounded(problems):
        print(problem, file=err)
    if problems and not entries:
        return 1
    config = NodesConfig(path=config_path, scripts_dir=scripts_dir, entries=tuple(entries))
    if node:
        if unmatched is None:
            print(_describe(config.plan_for(node), config_path), file=out)
    else:
        for entry in entries:
            print(_describe(config.plan_for(entry.node), config_path), file=out)
    return 1 if problems else 0


def check_configmap(path: Path, *, default_interval: float, node: str | None, out: TextIO, err: TextIO) -> int:
    """Check nodes.conf and the scripts as the ConfigMap in the rendered manifest `path` holds them."""
    try:
        import yaml
    except ModuleNotFoundError:
        print("edge-metrics check: --configmap needs PyYAML: pip install 'edge-metrics-collector[simulate]'",
              file=err)
        return 2
    try:
        documents = [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if isinstance(doc, dict)]
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        print(f"{path}: cannot read the manifest: {error}", file=err)
        return 1
    maps = [doc for doc in documents
            if doc.get("kind") == "ConfigMap" and isinstance(doc.get("data"), dict) and "nodes.conf" in doc["data"]]
    if not maps:
        print(f"{path}: no ConfigMap with a nodes.conf key", file=err)
        return 1
    status = 0
    for configmap in maps:
        name = f"{path}:ConfigMap/{configmap.get('metadata', {}).get('name', '?')}"
        with tempfile.TemporaryDirectory(prefix="edge-check-") as temp:
            for key, text in configmap["data"].items():
                if "/" not in key and key not in (".", ".."):
                    Path(temp, key).write_text(str(text), encoding="utf-8")
            # Problems and plans name the ConfigMap's keys, not the temporary directory they were written to.
            plans, problems = io.StringIO(), io.StringIO()
            code = check_config(Path(temp) / "nodes.conf", scripts_dir=Path(temp), default_interval=default_interval,
                                node=node, out=plans, err=problems)
            out.write(plans.getvalue().replace(temp, name))
            err.write(problems.getvalue().replace(temp, name))
            entries = inspect_config(Path(temp) / "nodes.conf", scripts_dir=Path(temp),
                                     default_interval=default_interval).entries
            for script_file in missing_script_files(entries, list(configmap["data"])):
                print(missing_script_fix(script_file), file=err)
        status = max(status, code)
    for problem in liveness_problems(documents, str(path)):
        print(problem, file=err)
        status = 1
    return status


def _syntax_problems(contents: Mapping[str, bytes], scripts_dir: Path) -> list[str]:
    """`bash -n` of the content read of every valid script (an invalid one is already a problem of its own)."""
    problems = []
    for name in sorted(contents):
        path = script_path(scripts_dir, name)
        result = subprocess.run(["bash", "-n", "/dev/stdin"], input=contents[name], capture_output=True, check=False)
        if result.returncode != 0:
            # bash reports `/dev/stdin: line N: message`; turn it into the file:line: reason form.
            for line in result.stderr.decode("utf-8", "replace").strip().splitlines():
                problems.append(_bash_error_to_location(line, path))
    return problems


def _bash_error_to_location(line: str, path: Path) -> str:
    prefix = "/dev/stdin: line "
    if line.startswith(prefix):
        number, _, reason = line[len(prefix) :].partition(": ")
        return f"{path}:{number}: {reason}"
    return f"{path}: {line}"


def _describe(plan: Plan, config_path: Path) -> str:
    if plan.line is None:
        source = "no matching line"  # not reached from check_config: such a node is a problem
    else:
        source = f"{config_path}:{plan.line}" + (f" ({plan.pattern})" if plan.pattern != plan.node else "")
    if not plan.jobs:
        return f"{plan.node}: default (no scripts)  [{source}]"
    jobs = ", ".join(f"{job.script} every {format_duration(job.interval)}" for job in plan.jobs)
    return f"{plan.node}: {jobs}  [{source}]"
