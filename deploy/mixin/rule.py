"""The mixin's value types: rules files, groups, recording rules and alerts, as written in rules.py and
alerts/ and rendered by render.py.

Expressions and annotation texts are templates: `%(edgeSelector)s`, `%(nodeLabel)s`... stand for the
settings of config.yaml under their names there (node-mixin's convention), so each is written once and
follows the config. A literal `%` is written `%%`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple


class View(NamedTuple):
    """The dashboard an alert links to (`dashboard` annotation)."""

    uid: str  # a field of mixin_config.DASHBOARD_UIDS, without the configured prefix
    per_node: bool  # opens the view on the alert's node (and cluster)


class Record(NamedTuple):
    name: str
    why: str  # the comment above the rule in the generated file
    expr: str


class Alert(NamedTuple):
    name: str  # also names its runbook section in docs/runbooks.md
    why: str
    expr: str
    severity: str
    summary: str
    description: str
    view: View
    for_: str | None = None


class Group(NamedTuple):
    name: str
    rules: Sequence[Record | Alert]


class RulesFile(NamedTuple):
    name: str  # the file's name without .yml under deploy/prometheus/rules
    about: str  # the comment at the top of the file, after the generated-file header
    groups: Sequence[Group]
