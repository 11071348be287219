"""What `check --configmap` reads beside the ConfigMap in a rendered manifest: the collector's container (its
liveness probe against its intervals) and the fix for a script the ConfigMap lacks.

Pure functions of the parsed YAML documents, so that the checks run in-process in tests.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from edge_metrics.config import NodeLine, script_path
from edge_metrics.durations import DurationError, format_duration, parse_duration

# Where the shipped manifests generate the collector's ConfigMap from (deploy/kubernetes uses it as a resource).
KUSTOMIZATION = "scripts/kustomization.yaml"
# The shipped probe: `test $(( $(date +%s) - $(stat -c %Y "$EDGE_OUTPUT") )) -lt 120`.
_PROBE_WINDOW = re.compile(r"-lt\s+(\d+)\b")
# The collector's own defaults (cli.py) when the container does not set them.
_DEFAULTS = {"EDGE_DEFAULT_INTERVAL": "15s", "EDGE_SCRIPT_TIMEOUT": "10s"}


def missing_script_files(entries: Sequence[NodeLine], keys: Iterator[str] | Sequence[str]) -> list[str]:
    """The script files nodes.conf names that are no key of the ConfigMap."""
    named = {script_path(Path(), ref.name).name for entry in entries for ref in entry.scripts}
    return sorted(named - set(keys))


def missing_script_fix(script_file: str) -> str:
    """The line that puts a script into the ConfigMap, and where it goes."""
    return (f"note: {script_file} is not in the ConfigMap: add the line `      - {script_file}` under `files:` of "
            f"{KUSTOMIZATION} (beside nodes.conf), then render the manifests again (tools/render-manifests.sh)")


def liveness_problems(documents: Sequence[Mapping[str, Any]], source: str) -> list[str]:
    """Each collector container whose file may go unwritten for as long as its liveness probe tolerates: it
    rewrites the file at least every EDGE_DEFAULT_INTERVAL when idle and after each run (bounded by
    EDGE_SCRIPT_TIMEOUT), so an interval plus timeout that reaches the probe's window gets idle pods restarted."""
    problems = []
    for kind, name, container in _collector_containers(documents):
        window = _probe_window(container)
        if window is None:
            continue
        env = {**_DEFAULTS, **{e["name"]: str(e["value"]) for e in container.get("env", [])
                               if isinstance(e, dict) and "name" in e and "value" in e}}
        try:
            interval = parse_duration(env["EDGE_DEFAULT_INTERVAL"])
            timeout = parse_duration(env["EDGE_SCRIPT_TIMEOUT"])
        except DurationError:
            continue  # the collector itself refuses such a value at start, naming it
        if interval + timeout >= window:
            where = f"{source}:{kind}/{name} container {container.get('name', '?')}"
            problems.append(
                f"{where}: EDGE_DEFAULT_INTERVAL {format_duration(interval)} + EDGE_SCRIPT_TIMEOUT "
                f"{format_duration(timeout)} = {format_duration(interval + timeout)} reaches the livenessProbe's "
                f"window of {window}s (`-lt {window}`): the collector may leave its file unwritten that long when "
                f"idle and the kubelet would restart the pod; keep the two under {window}s or widen the probe"
            )
    return problems


def _collector_containers(documents: Sequence[Mapping[str, Any]]) -> Iterator[tuple[str, str, Mapping[str, Any]]]:
    for doc in documents:
        spec = doc.get("spec")
        template = spec.get("template") if isinstance(spec, dict) else None
        pod = template.get("spec") if isinstance(template, dict) else None
        if not isinstance(pod, dict):
            continue
        for container in pod.get("containers") or []:
            env_names = {e.get("name") for e in container.get("env") or [] if isinstance(e, dict)}
            if isinstance(container, dict) and "EDGE_OUTPUT" in env_names:
                yield str(doc.get("kind", "?")), str(doc.get("metadata", {}).get("name", "?")), container


def _probe_window(container: Mapping[str, Any]) -> int | None:
    probe = container.get("livenessProbe")
    command = probe.get("exec", {}).get("command") if isinstance(probe, dict) else None
    if not isinstance(command, list):
        return None
    found = _PROBE_WINDOW.search(" ".join(str(part) for part in command))
    return int(found.group(1)) if found else None
