"""The shipped configuration read as production reads it: deploy/*.flags with `$(NAME)` expanded as Kubernetes
does in args, flag values replaced only where the file sets them, and the Secret's mount paths re-rooted in parsed
YAML."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

_PLACEHOLDER = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def read_flags(path: Path, env: Mapping[str, str]) -> list[str]:
    """The flags of a deploy/*.flags file with `$(NAME)` expanded from `env`, as Kubernetes does in args."""
    flags = []
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue

        def expand(match: re.Match[str], number: int = number) -> str:
            name = match.group(1)
            if name not in env:
                raise KeyError(f"{path}:{number}: $({name}) has no value")
            return env[name]

        flags.append(_PLACEHOLDER.sub(expand, line))
    return flags


def override_flags(flags: Sequence[str], overrides: Mapping[str, str]) -> list[str]:
    """Replace the value of flags that the file sets; a flag the file does not set is an error, so a
    test can never drift into a setting production does not have."""
    names = {flag.partition("=")[0] for flag in flags}
    missing = set(overrides) - names
    if missing:
        raise KeyError(f"flags not in the deploy file: {sorted(missing)}")
    return [f"{name}={overrides[name]}" if (name := flag.partition("=")[0]) in overrides else flag for flag in flags]



def secret_paths(value: Any, replacements: Mapping[str, str]) -> Any:
    """`value` (parsed YAML) with every string starting with a key of `replacements` re-rooted."""
    if isinstance(value, dict):
        return {key: secret_paths(item, replacements) for key, item in value.items()}
    if isinstance(value, list):
        return [secret_paths(item, replacements) for item in value]
    if isinstance(value, str):
        for prefix, target in replacements.items():
            if value.startswith(prefix):
                return target + value[len(prefix) :]
    return value
