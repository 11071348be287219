#!/usr/bin/env python3
"""Writes the alert and recording rules in deploy/prometheus/rules/ from the mixin beside this file.

    python deploy/mixin/generate.py          # regenerate (make dashboards, make mixin)
    python deploy/mixin/generate.py --check  # exit 1 and name the files that differ (CI)
    python deploy/mixin/generate.py --config my-config.yaml --out /tmp/rules  # your selectors, elsewhere

Like node-mixin (config.libsonnet, rules/, alerts/): deploy/mixin/config.yaml sets the selectors, the
node and cluster labels and the links' bases; rules.py holds the recording rules, alerts/ the alerts,
each expression written once with the config's values substituted. The promtool tests beside the rules
(*.test.yml, written by hand) get their expected links moved to the configured bases; their series
carry the default labels, so they pass with the default selectors and labels only.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # the sibling modules, whatever the working directory

import alerts  # noqa: E402
import mixin_config  # noqa: E402
import rules  # noqa: E402
from annotate import relink_test  # noqa: E402
from output import arguments, write_or_check  # noqa: E402
from render import render  # noqa: E402
from rule import RulesFile  # noqa: E402

REPO = HERE.parents[1]
OUT = REPO / "deploy" / "prometheus" / "rules"
# Each module holds one rules file (FILE): the recording rules first, as node-mixin lists them.
MODULES = [rules, *alerts.MODULES]


def shown(path: Path) -> str:
    """A source as the header names it: relative to the repository when inside it."""
    path = path.resolve()
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def rendered(config_path: Path, out: Path) -> dict[Path, str]:
    """Output path -> text: every rules file, and the promtool tests already in `out` relinked."""
    config = mixin_config.load(config_path)
    files: dict[Path, str] = {}
    for module in MODULES:
        rules_file: RulesFile = module.FILE
        sources = [shown(config_path), shown(Path(str(module.__file__)))]
        files[out / f"{rules_file.name}.yml"] = render(rules_file, config, sources)
    for test in sorted(out.glob("*.test.yml")):
        files[test] = relink_test(test.read_text(), config)
    return files


def main(argv: list[str] | None = None) -> int:
    args = arguments(__doc__, OUT, argv)
    return write_or_check(rendered(args.config, args.out), check=args.check, generator=Path(__file__).name)


if __name__ == "__main__":
    sys.exit(main())
