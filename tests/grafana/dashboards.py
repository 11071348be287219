"""The committed dashboards as the tests see them, through deploy/grafana/queries.py (the code that
render.py uses too), plus the paths the tests need."""

from __future__ import annotations

import importlib.util
import sys

from tests.helpers import REPO

GRAFANA_DIR = REPO / "deploy" / "grafana"
DASHBOARD_DIR = GRAFANA_DIR / "dashboards"
GENERATOR = GRAFANA_DIR / "generate.py"


def _load_queries_module():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("grafana_queries", GRAFANA_DIR / "queries.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # NamedTuple needs its module registered
    spec.loader.exec_module(module)
    return module


queries = _load_queries_module()
GRAFANA_VARIABLES: dict[str, str] = queries.GRAFANA_VARIABLES
Target = queries.Target
load = queries.load
panels = queries.panels
substitute = queries.substitute
targets = queries.targets
DASHBOARD_FILES = queries.dashboard_files(DASHBOARD_DIR)


def all_targets() -> list[Target]:
    return [target for path in DASHBOARD_FILES for target in targets(path)]
