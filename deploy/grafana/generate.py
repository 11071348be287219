#!/usr/bin/env python3
"""Writes the Grafana dashboards in deploy/grafana/dashboards/ from the Python code beside this file.

    python deploy/grafana/generate.py          # regenerate (make dashboards)
    python deploy/grafana/generate.py --check  # exit 1 and name the files that differ (CI)

The dashboards are built with grafana-foundation-sdk (pinned in pyproject.toml); the selectors come
from deploy/mixin/config.yaml. Never edit the JSON by hand: a test regenerates it and compares.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # the sibling modules, whatever the working directory
sys.path.insert(0, str(HERE.parent / "mixin"))  # mixin_config (the one reader of config.yaml), output

import fleet  # noqa: E402
import mixin_config  # noqa: E402
import node_detail  # noqa: E402
import pipeline  # noqa: E402
from grafana_foundation_sdk.builders import dashboard as dashboard_builder  # noqa: E402
from output import arguments, write_or_check  # noqa: E402
from panels import to_json  # noqa: E402

OUT = HERE / "dashboards"

DASHBOARDS: dict[str, Callable[[mixin_config.MixinConfig], dashboard_builder.Dashboard]] = {
    "edge-fleet.json": fleet.build,
    "edge-node.json": node_detail.build,
    "edge-pipeline.json": pipeline.build,
}


def render(config: mixin_config.MixinConfig) -> dict[str, str]:
    """File name -> JSON text: sorted keys and a final newline, so a diff shows only real changes."""
    return {
        name: json.dumps(to_json(build(config).build()), indent=2, sort_keys=True) + "\n"
        for name, build in DASHBOARDS.items()
    }


def main(argv: list[str] | None = None) -> int:
    args = arguments(__doc__, OUT, argv)
    files = {args.out / name: text for name, text in render(mixin_config.load(args.config)).items()}
    stray = [path for path in args.out.glob("*.json") if path not in files]
    return write_or_check(files, check=args.check, generator=Path(__file__).name, stray=stray)


if __name__ == "__main__":
    sys.exit(main())
