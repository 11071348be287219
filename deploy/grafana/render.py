#!/usr/bin/env python3
"""Draws the generated dashboards as PNG images from a live Prometheus, without Grafana.

    python deploy/grafana/render.py --prometheus http://127.0.0.1:9090 --node bupt-a --out docs/img

Each panel's queries (deploy/grafana/dashboards/*.json, variables filled in as Grafana does) are run
against the Prometheus and drawn where the dashboard puts the panel: graphs, coloured stats and tables
with the panel's units, thresholds, value mappings and legends. An approximation of what Grafana
shows, from the same queries and data; it is not a Grafana screenshot.
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import re
import ssl
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy

matplotlib.use("Agg")  # no display: files only
import matplotlib.dates as mdates
import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure

sys.path.insert(0, str(Path(__file__).resolve().parent))
from queries import GRAFANA_VARIABLES, dashboard_files, load, panels, substitute

Obj = dict[str, Any]
COLORS = {"green": "#56a64b", "red": "#e02f44", "orange": "#ff9830", "blue": "#3274d9", "yellow": "#f2cc0c"}
GRID_COLUMNS = 24
INCH_PER_COLUMN = 0.75
INCH_PER_ROW = 0.42

# Grafana unit id -> (suffix, scale base, prefixes); durations are formatted apart.
_SCALED = {
    "bytes": ("B", 1024, ["", "Ki", "Mi", "Gi", "Ti"]),
    "Bps": ("B/s", 1024, ["", "Ki", "Mi", "Gi"]),
    "cps": ("/s", 1000, ["", "k", "M", "G"]),
    "reqps": (" req/s", 1000, ["", "k", "M"]),
    "opm": ("/min", 1000, ["", "k", "M"]),
    "volt": ("V", 1000, ["", "k"]),
    "amp": ("A", 1000, ["", "k"]),
    "watt": ("W", 1000, ["", "k"]),
    "joule": ("J", 1000, ["", "k", "M"]),
    "hertz": ("Hz", 1000, ["", "k", "M", "G"]),
    "short": ("", 1000, ["", "k", "M", "G"]),
    "none": ("", 1000, ["", "k", "M", "G"]),
}


def fmt(value: float, unit: str) -> str:
    """A value as Grafana would print it in `unit` (the common cases)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    if unit == "s":
        for limit, div, suffix in ((60, 1, "s"), (3600, 60, "min"), (86400, 3600, "h"), (math.inf, 86400, "d")):
            if abs(value) < limit:
                return f"{value / div:.3g} {suffix}"
    if unit == "percentunit":
        return f"{value * 100:.3g}%"
    if unit == "percent":
        return f"{value:.3g}%"
    if unit == "celsius":
        return f"{value:.3g} °C"
    suffix, base, prefixes = _SCALED.get(unit, ("", 1000, [""]))
    index = 0
    while abs(value) >= base and index < len(prefixes) - 1:
        value /= base
        index += 1
    number = f"{value:.0f}" if abs(value) >= 100 else f"{value:.3g}"
    return f"{number} {prefixes[index]}{suffix}".strip()


class Prometheus:
    def __init__(self, url: str, at: float, *, ca_file: Path | None = None, user: str = "",
                 password_file: Path | None = None) -> None:
        self.url = url.rstrip("/")
        self.at = at
        # The shipped centre serves TLS with basic auth only (docs/security.md).
        self.context = ssl.create_default_context(cafile=str(ca_file)) if ca_file else None
        self.headers = {}
        if user and password_file:
            login = f"{user}:{password_file.read_text().strip()}".encode()
            self.headers["Authorization"] = "Basic " + base64.b64encode(login).decode()

    def _get(self, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        request = urllib.request.Request(f"{self.url}/api/v1/{path}?{query}", headers=self.headers)
        with urllib.request.urlopen(request, timeout=30, context=self.context) as response:
            body = json.load(response)
        if body.get("status") != "success":
            raise RuntimeError(f"{path} {params}: {body}")
        return body["data"]["result"]

    def instant(self, expr: str) -> list[Obj]:
        return list(self._get("query", query=expr, time=f"{self.at:.3f}"))

    def range(self, expr: str, seconds: float, step: float) -> list[Obj]:
        return list(
            self._get(
                "query_range", query=expr, start=f"{self.at - seconds:.3f}", end=f"{self.at:.3f}", step=f"{step:g}"
            )
        )


def legend(series: Sequence[Obj], template: str) -> list[str]:
    """Grafana's legend: a {{label}} template, or for __auto the labels that differ between series."""
    if template and template != "__auto":
        names = []
        for item in series:
            text = template
            for key, value in item["metric"].items():
                text = text.replace(f"{{{{{key}}}}}", value)
            names.append(text.replace("{{", "").replace("}}", ""))
        return names
    keys = {key for item in series for key in item["metric"]}
    varying = sorted(k for k in keys if len({item["metric"].get(k) for item in series}) > 1 and k != "__name__")
    names = []
    for item in series:
        labels = ", ".join(f'{k}="{item["metric"][k]}"' for k in varying if k in item["metric"])
        name = item["metric"].get("__name__", "")
        names.append(f"{name}{{{labels}}}" if labels else name or "value")
    return names


def threshold_color(value: float, steps: Sequence[Obj]) -> str:
    color = steps[0]["color"] if steps else "green"
    for step in steps:
        if step["value"] is not None and not math.isnan(value) and value >= step["value"]:
            color = step["color"]
    return COLORS.get(color, color)


def mapped(value: float, mappings: Sequence[Obj]) -> tuple[str, str] | None:
    for mapping in mappings:
        for key, result in mapping.get("options", {}).items():
            if not math.isnan(value) and float(key) == value:
                return result["text"], COLORS.get(result["color"], result["color"])
    return None


def series_unit(panel: Obj, name: str) -> str:
    """The unit of one series: the panel's, or that of a byRegexp override matching its name."""
    unit: str = panel["fieldConfig"]["defaults"].get("unit", "short")
    for override in panel["fieldConfig"]["overrides"]:
        if override["matcher"]["id"] == "byRegexp" and re.search(override["matcher"]["options"], name):
            unit = next((p["value"] for p in override["properties"] if p["id"] == "unit"), unit)
    return unit


def with_gaps(samples: Sequence[Sequence[Any]], step: float) -> tuple[Any, list[float]]:
    """Times and values of a range query result, with a NaN where points are missing so the line
    breaks there, as Grafana's does."""
    times: list[int] = []
    values: list[float] = []
    for t, v in samples:
        if times and float(t) * 1000 - times[-1] > 1500 * step:
            times.append(times[-1] + round(step * 1000))
            values.append(math.nan)
        times.append(round(float(t) * 1000))
        values.append(float(v))
    return numpy.array(times, dtype="datetime64[ms]"), values


def draw_timeseries(ax: Axes, panel: Obj, prometheus: Prometheus, variables: Mapping[str, str], seconds: float) -> int:
    defaults = panel["fieldConfig"]["defaults"]
    unit = defaults.get("unit", "short")
    step = max(seconds / 240, 1)
    drawn = 0
    for target in panel["targets"]:
        series = prometheus.range(substitute(target["expr"], variables), seconds, step)
        for name, item in zip(legend(series, target.get("legendFormat", "")), series, strict=True):
            times, values = with_gaps(item["values"], step)
            last = fmt(values[-1], series_unit(panel, name))
            ax.plot(times, values, linewidth=1.2, label=f"{name}  (last {last})")
            drawn += 1
    steps = defaults["thresholds"]["steps"]
    # Threshold lines where they fall inside the data's range only, as in Grafana (they do not
    # stretch the axis).
    low, high = ax.get_ylim()
    for threshold in steps[1:]:
        ax.axhline(
            threshold["value"], color=COLORS.get(threshold["color"], threshold["color"]), linestyle="--", linewidth=0.8
        )
    ax.set_ylim(low, high)
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M"))  # type: ignore[no-untyped-call]  # untyped in matplotlib
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda value, _: fmt(value, unit)))
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.2)
    if drawn:
        ax.legend(fontsize=6, loc="upper left", framealpha=0.6)
    return drawn


def draw_stat(ax: Axes, panel: Obj, prometheus: Prometheus, variables: Mapping[str, str]) -> int:
    defaults = panel["fieldConfig"]["defaults"]
    result = prometheus.instant(substitute(panel["targets"][0]["expr"], variables))
    ax.set_xticks([])
    ax.set_yticks([])
    if not result:
        ax.text(0.5, 0.45, "No data", ha="center", va="center", fontsize=12, color="#888")
        return 0
    value = float(result[0]["value"][1])
    text_color = mapped(value, defaults.get("mappings", []))
    text, color = text_color or (
        fmt(value, defaults.get("unit", "none")),
        threshold_color(value, defaults["thresholds"]["steps"]),
    )
    ax.set_facecolor(color)
    ax.text(0.5, 0.45, text, ha="center", va="center", fontsize=20, color="white", weight="bold")
    return 1


def draw_table(ax: Axes, panel: Obj, prometheus: Prometheus, variables: Mapping[str, str]) -> int:
    rename = next(t["options"]["renameByName"] for t in panel["transformations"] if t["id"] == "organize")
    overrides = {
        o["matcher"]["options"]: {p["id"]: p["value"] for p in o["properties"]}
        for o in panel["fieldConfig"]["overrides"]
    }
    rows: dict[tuple[tuple[str, str], ...], dict[str, float]] = {}
    columns = []
    for target in panel["targets"]:
        title = rename[f"Value #{target['refId']}"]
        columns.append(title)
        for item in prometheus.instant(substitute(target["expr"], variables)):
            rows.setdefault(tuple(sorted(item["metric"].items())), {})[title] = float(item["value"][1])
    ax.axis("off")
    if not rows:
        ax.text(0.5, 0.5, "No data", ha="center", va="center", fontsize=12, color="#888")
        return 0
    keys = sorted({k for row in rows for k, _ in row})
    cells, colors = [], []
    for labels, values in sorted(rows.items()):
        label_map = dict(labels)
        line, line_colors = [label_map.get(k, "") for k in keys], ["white"] * len(keys)
        for title in columns:
            props = overrides.get(title, {})
            if title not in values:
                line.append("")
                line_colors.append("white")
                continue
            value = values[title]
            text_color = mapped(value, props.get("mappings", []))
            text, color = text_color or (
                fmt(value, props.get("unit", "none")),
                threshold_color(value, props["thresholds"]["steps"]),
            )
            line.append(text)
            line_colors.append(color)
        cells.append(line)
        colors.append(line_colors)
    table = ax.table(cellText=cells, cellColours=colors, colLabels=keys + columns, loc="upper center", cellLoc="center")
    table.auto_set_font_size(False)
    table.set_fontsize(7)
    table.scale(1, 1.3)
    return len(rows)


def all_values(dashboard: Obj) -> dict[str, str]:
    """Multi-value variables drawn as Grafana opens the dashboard: All selected (their allValue)."""
    return {v["name"]: v["allValue"] for v in dashboard["templating"]["list"] if v.get("multi") and v.get("includeAll")}


def render(
    path: Path, prometheus: Prometheus, variables: Mapping[str, str], seconds: float
) -> tuple[Figure, list[str]]:
    """The dashboard as a figure, and the titles of the panels that showed no data."""
    dashboard = load(path)
    shown_variables = [v["name"] for v in dashboard["templating"]["list"] if v["type"] != "datasource"]
    bottom = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in dashboard["panels"])
    fig = plt.figure(figsize=(GRID_COLUMNS * INCH_PER_COLUMN, (bottom + 3) * INCH_PER_ROW), dpi=80)
    height = bottom + 3  # a band for the dashboard title
    fig.suptitle(
        dashboard["title"] + "".join(f"  {k}={variables[k]}" for k in shown_variables),
        x=0.01,
        ha="left",
        fontsize=13,
        weight="bold",
    )
    fig.text(
        0.99,
        0.005,
        "Rendered by deploy/grafana/render.py from the dashboard's own queries against a live Prometheus;"
        " not a Grafana screenshot.",
        ha="right",
        fontsize=7,
        color="#666",
    )
    empty = []

    def box(grid: Obj) -> tuple[float, float, float, float]:
        x, y, w, h = grid["x"], grid["y"], grid["w"], grid["h"]
        # Room on the left for the y tick labels, on top for the panel title.
        return (x / GRID_COLUMNS + 0.035, 1 - (y + h + 2) / height + 0.01, w / GRID_COLUMNS - 0.04, h / height - 0.035)

    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            fig.text(0.005, 1 - (panel["gridPos"]["y"] + 2.6) / height, panel["title"], fontsize=11, weight="bold")
    for panel in panels(dashboard):
        ax = fig.add_axes(box(panel["gridPos"]))
        ax.set_title(panel["title"], fontsize=9, loc="left")
        if panel["type"] == "timeseries":
            shown = draw_timeseries(ax, panel, prometheus, variables, seconds)
            if not shown:
                ax.set_xticks([])
                ax.set_yticks([])
                ax.text(
                    0.5, 0.5, "No data", ha="center", va="center", transform=ax.transAxes, fontsize=12, color="#888"
                )
        elif panel["type"] == "stat":
            shown = draw_stat(ax, panel, prometheus, variables)
        else:
            shown = draw_table(ax, panel, prometheus, variables)
        if not shown:
            empty.append(panel["title"])
    return fig, empty


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prometheus", required=True, help="base URL of the central Prometheus")
    parser.add_argument("--node", required=True, help="value of the dashboards' node variable")
    parser.add_argument("--ca-file", type=Path, help="CA of the centre's certificate (make-certs' ca.crt)")
    parser.add_argument("--user", default="admin", help="basic-auth user at the centre (default admin)")
    parser.add_argument("--password-file", type=Path, help="that user's password (make-certs' admin.password)")
    parser.add_argument("--out", type=Path, required=True, help="directory for <dashboard>.png")
    parser.add_argument("--range", type=float, default=1800, help="seconds of history in the graphs (default 1800)")
    parser.add_argument("--rate-interval", default=GRAFANA_VARIABLES["__rate_interval"], help="$__rate_interval")
    args = parser.parse_args(argv)
    variables = {
        "node": args.node,
        "datasource": "prometheus",
        **GRAFANA_VARIABLES,
        "__rate_interval": args.rate_interval,
        "__range": f"{int(args.range)}s",
    }
    prometheus = Prometheus(args.prometheus, time.time(), ca_file=args.ca_file, user=args.user,
                            password_file=args.password_file)
    args.out.mkdir(parents=True, exist_ok=True)
    for path in dashboard_files():
        fig, empty = render(path, prometheus, {**variables, **all_values(load(path))}, args.range)
        target = args.out / f"{path.stem}.png"
        fig.savefig(target)
        plt.close(fig)
        print(f"{target}: {len(empty)} panels without data{': ' + ', '.join(empty) if empty else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
