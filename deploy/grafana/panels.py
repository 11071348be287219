"""Panel and variable builders shared by the three dashboards, on top of grafana-foundation-sdk.

Every panel gets its unit, thresholds and legend here, so the dashboards read as a list of queries.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple, TypeVar

from grafana_foundation_sdk.builders import common as common_builder
from grafana_foundation_sdk.builders import dashboard as dashboard_builder
from grafana_foundation_sdk.builders import prometheus, stat, table, timeseries
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.models import common, dashboard
from grafana_foundation_sdk.models.prometheus import PromQueryFormat
from mixin_config import CLUSTER_VARIABLE, MixinConfig, dashboard_uid

PanelBuilder = cogbuilder.Builder[dashboard.Panel]

DATASOURCE = dashboard.DataSourceRef(type_val="prometheus", uid="${datasource}")

# Reading units from the metric name's suffix (Prometheus naming: base units, plural): Grafana's unit ids.
READING_UNITS = {
    "volts": "volt",
    "amperes": "amp",
    "watts": "watt",
    "joules": "joule",
    "celsius": "celsius",
    "seconds": "s",
    "bytes": "bytes",
    "hertz": "hertz",
    "ratio": "percentunit",
    "percent": "percent",
    "pascals": "pressurepa",
    "lux": "lux",
}

# The node dashboard's panels of readings, one per unit (the sensor catalogue's, docs/sensors.md): title, key
# suffix. Readings with another suffix, or none, share one more panel.
READING_GROUPS = (
    ("Temperature", "celsius"),
    ("Humidity", "ratio"),
    ("Pressure", "pascals"),
    ("Voltage", "volts"),
    ("Current", "amperes"),
    ("Power", "watts"),
)


class Query(NamedTuple):
    expr: str
    legend: str = "__auto"
    instant: bool = False  # tables and stats show the value now, not a series over time


class Step(NamedTuple):
    """A threshold step: from `value` upwards the colour is `color` (None: from minus infinity)."""

    value: float | None
    color: str


OK_WARN_BAD = (Step(None, "green"), Step(1, "red"))


def thresholds(steps: Sequence[Step]) -> dashboard_builder.ThresholdsConfig:
    return (
        dashboard_builder.ThresholdsConfig()
        .mode(dashboard.ThresholdsMode.ABSOLUTE)
        .steps([dashboard.Threshold(value=step.value, color=step.color) for step in steps])
    )


def _target(query: Query, ref: str, *, as_table: bool) -> prometheus.Dataquery:
    target = prometheus.Dataquery().expr(query.expr).legend_format(query.legend).ref_id(ref).datasource(DATASOURCE)
    if as_table:
        target = target.format(PromQueryFormat.TABLE)
    return target.instant() if query.instant or as_table else target.range()


def _ref(index: int) -> str:
    return chr(ord("A") + index)


def sum_rate(metric: str, selector: str, by: str = "", fn: str = "rate", window: str = "$__rate_interval") -> str:
    """`sum by (by) (fn(metric{selector}[window]))`: a counter's rate (or increase) summed per label."""
    grouping = f" by ({by}) " if by else ""
    return f"sum{grouping}({fn}({metric}{{{selector}}}[{window}]))"


class Ids:
    """Panel ids unique in a dashboard, in layout order (Grafana links and the SDK need them)."""

    def __init__(self) -> None:
        self._next = 0

    def __call__(self) -> int:
        self._next += 1
        return self._next


_Panel = TypeVar("_Panel", timeseries.Panel, stat.Panel, table.Panel)


def _placed(panel: _Panel, ids: Ids, title: str, description: str, width: int, height: int) -> _Panel:
    """What every panel has: an id, title, description, the datasource variable, its size."""
    return panel.id(ids()).title(title).description(description).datasource(DATASOURCE).span(width).height(height)


def timeseries_panel(
    ids: Ids,
    title: str,
    description: str,
    queries: Sequence[Query],
    *,
    unit: str,
    steps: Sequence[Step] = (Step(None, "green"),),
    width: int = 12,
    height: int = 8,
    overrides: Sequence[tuple[str, str]] = (),
    stack: bool = False,
) -> timeseries.Panel:
    """A graph; `overrides` are (regexp on the series name, unit) pairs for series of another unit."""
    panel = (
        _placed(timeseries.Panel(), ids, title, description, width, height)
        .unit(unit)
        .thresholds(thresholds(steps))
        .line_width(1)
        .fill_opacity(10)
        .show_points(common.VisibilityMode.NEVER)
        .legend(
            common_builder.VizLegendOptions()
            .show_legend(True)
            .display_mode(common.LegendDisplayMode.TABLE)
            .placement(common.LegendPlacement.BOTTOM)
            .calcs(["lastNotNull", "max"])
        )
        .tooltip(
            common_builder.VizTooltipOptions().mode(common.TooltipDisplayMode.MULTI).sort(common.SortOrder.DESCENDING)
        )
    )
    if len(steps) > 1:
        panel = panel.thresholds_style(
            common_builder.GraphThresholdsStyleConfig().mode(common.GraphThresholdsStyleMode.DASHED)
        )
    if stack:
        panel = panel.stacking(common_builder.StackingConfig().mode(common.StackingMode.NORMAL))
    for pattern, override_unit in overrides:
        panel = panel.override_by_regexp(pattern, [dashboard.DynamicConfigValue(id_val="unit", value=override_unit)])
    for index, query in enumerate(queries):
        panel = panel.with_target(_target(query, _ref(index), as_table=False))
    return panel


def stat_panel(
    ids: Ids,
    title: str,
    description: str,
    query: Query,
    *,
    unit: str = "none",
    steps: Sequence[Step] = OK_WARN_BAD,
    mappings: Sequence[dashboard.ValueMap] = (),
    width: int = 4,
    height: int = 4,
) -> stat.Panel:
    """One number, coloured by `steps`, as it is now (instant query)."""
    return (
        _placed(stat.Panel(), ids, title, description, width, height)
        .unit(unit)
        .thresholds(thresholds(steps))
        .mappings(list(mappings))
        .color_mode(common.BigValueColorMode.BACKGROUND)
        .graph_mode(common.BigValueGraphMode.NONE)
        .reduce_options(common_builder.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .with_target(_target(query._replace(instant=True), "A", as_table=False))
    )


class Column(NamedTuple):
    """A table column from one instant query, joined with the others on their common labels."""

    title: str
    query: Query
    unit: str = "none"
    steps: Sequence[Step] = (Step(None, "green"),)
    mappings: Sequence[dashboard.ValueMap] = ()
    link: dashboard_builder.DashboardLink | None = None


def table_panel(
    ids: Ids,
    title: str,
    description: str,
    columns: Sequence[Column],
    *,
    hide: Sequence[str] = ("Time",),
    link_field: str = "",
    link: dashboard_builder.DashboardLink | None = None,
    width: int = 24,
    height: int = 8,
) -> table.Panel:
    """One row per label set (e.g. per node or per script), one coloured column per query."""
    panel = (
        _placed(table.Panel(), ids, title, description, width, height)
        .thresholds(thresholds((Step(None, "green"),)))
        .align(common.FieldTextAlignment.AUTO)
        .inspect(False)
        .with_transformation(dashboard.DataTransformerConfig(id_val="merge", options={}))
        .with_transformation(
            dashboard.DataTransformerConfig(
                id_val="organize",
                options={
                    "excludeByName": {name: True for name in hide},
                    "renameByName": {f"Value #{_ref(i)}": column.title for i, column in enumerate(columns)},
                },
            )
        )
    )
    if link is not None:
        panel = panel.override_by_name(link_field, [dashboard.DynamicConfigValue(id_val="links", value=[link.build()])])
    for index, column in enumerate(columns):
        properties: list[dashboard.DynamicConfigValue] = [
            dashboard.DynamicConfigValue(id_val="unit", value=column.unit),
            dashboard.DynamicConfigValue(id_val="thresholds", value=thresholds(column.steps).build()),
            dashboard.DynamicConfigValue(
                id_val="custom.cellOptions", value={"type": "color-background", "mode": "basic"}
            ),
        ]
        if column.mappings:
            properties.append(dashboard.DynamicConfigValue(id_val="mappings", value=list(column.mappings)))
        panel = panel.override_by_name(column.title, properties).with_target(
            _target(column.query, _ref(index), as_table=True)
        )
    return panel


def value_text(**texts: tuple[str, str]) -> dashboard.ValueMap:
    """A value mapping: value -> (text, colour)."""
    return dashboard.ValueMap(
        options={
            value: dashboard.ValueMappingResult(text=text, color=color, index=index)
            for index, (value, (text, color)) in enumerate(texts.items())
        }
    )


def new_dashboard(config: MixinConfig, *, uid: str, title: str, description: str) -> dashboard_builder.Dashboard:
    """A dashboard with the datasource (and cluster) variables and the other dashboards as links."""
    built = (
        dashboard_builder.Dashboard(title)
        .uid(dashboard_uid(config, uid))
        .description(description)
        .tags(config.dashboard_tags)
        .refresh(config.dashboard_refresh)
        .time(config.dashboard_period, "now")
        .timezone(config.dashboard_timezone)
        .tooltip(dashboard.DashboardCursorSync.CROSSHAIR)
        .readonly()
        .annotation(
            dashboard_builder.AnnotationQuery()
            .name("Annotations & Alerts")
            .datasource(dashboard.DataSourceRef(type_val="grafana", uid="-- Grafana --"))
            .enable(True)
            .hide(True)
            .icon_color("rgba(0, 211, 255, 1)")
            .type("dashboard")
            .built_in(1)
        )
        .link(
            dashboard_builder.DashboardLink("Edge dashboards")
            .type(dashboard.DashboardLinkType.DASHBOARDS)
            .tags(config.dashboard_tags)
            .as_dropdown(True)
            .include_vars(True)
            .keep_time(True)
        )
        .with_variable(dashboard_builder.DatasourceVariable("datasource").label("Data source").type("prometheus"))
    )
    if config.show_multi_cluster:
        built = built.with_variable(
            label_variable(CLUSTER_VARIABLE, f"up{{{config.vmagent_selector}}}", config.cluster_label, multi=True)
        )
    return built


def add_panels(built: dashboard_builder.Dashboard, panels: Sequence[PanelBuilder]) -> dashboard_builder.Dashboard:
    """The panels in order; the SDK lays them out left to right, wrapping at the grid's 24 columns."""
    for panel in panels:
        built = built.with_panel(panel)
    return built


def label_variable(name: str, selector: str, label: str, *, multi: bool) -> dashboard_builder.QueryVariable:
    """A variable listing the values of `label` on `selector`; with `multi`, All means every value."""
    variable = (
        dashboard_builder.QueryVariable(name)
        .label(name)
        .datasource(DATASOURCE)
        .query({"query": f"label_values({selector}, {label})", "refId": "PrometheusVariableQueryEditor-VariableQuery"})
        .refresh(dashboard.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dashboard.VariableSort.ALPHABETICAL_CASE_INSENSITIVE_ASC)
    )
    if multi:
        variable = variable.multi(True).include_all(True).all_value(".+")
    return variable


def to_json(built: Any) -> dict[str, Any]:
    """The SDK object as plain JSON data (its encoder calls every nested model's to_json)."""
    import json

    from grafana_foundation_sdk.cog.encoder import JSONEncoder

    data: dict[str, Any] = json.loads(json.dumps(built, cls=JSONEncoder))
    return data
