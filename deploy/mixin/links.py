#!/usr/bin/env python3
"""Points every alert's `runbook_url` and `dashboard` annotation at the bases set in deploy/mixin/config.yaml.

    python deploy/mixin/links.py          # rewrite the rules files and their promtool tests
    python deploy/mixin/links.py --check  # exit 1 and name the files that differ (CI)

Each alert says which runbook section (`runbook_url: <base>#<anchor>`) and which dashboard view
(`dashboard: <grafana>/d/<uid>?...`) it links to; this program only replaces what comes before the `#`
and the `/d/`, line by line, so comments and layout stay as written. The promtool tests beside the
rules compare every annotation, so their expected values are rewritten the same way.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "deploy" / "grafana"))  # the one reader of config.yaml

import mixin_config  # noqa: E402

RULES = REPO / "deploy" / "prometheus" / "rules"

_RUNBOOK = re.compile(r"""^(?P<key>\s*runbook_url:\s*["']?)[^"'#\s]*#""", re.MULTILINE)
_DASHBOARD = re.compile(r"""^(?P<key>\s*dashboard:\s*["']?)[^"'\s]*?/d/""", re.MULTILINE)


def relink(text: str, config: mixin_config.MixinConfig) -> str:
    text = _RUNBOOK.sub(lambda m: f"{m['key']}{config.runbook_url_base}#", text)
    return _DASHBOARD.sub(lambda m: f"{m['key']}{config.grafana_url.rstrip('/')}/d/", text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="compare instead of rewriting")
    parser.add_argument("--rules", type=Path, default=RULES, help="rules directory (default: %(default)s)")
    parser.add_argument(
        "--config", type=Path, default=mixin_config.CONFIG, help="runbookURLBase, grafanaURL (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    config = mixin_config.load(args.config)
    stale = []
    for path in sorted(args.rules.glob("*.yml")):
        text = path.read_text()
        linked = relink(text, config)
        if linked == text:
            continue
        stale.append(path)
        if not args.check:
            path.write_text(linked)
    if args.check:
        for path in stale:
            print(f"{path}: links differ from {args.config}; run `python {Path(__file__).name}`", file=sys.stderr)
        return 1 if stale else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
