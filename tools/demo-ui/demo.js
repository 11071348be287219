// The demo's two pages: readings (a graph and the current values of a query) and alert rules. Plain DOM and
// SVG, no library: the pages are served by Prometheus itself (--web.user-assets) and fetch nothing else.
"use strict";

// From the origin, not relative to the page: a page opened as https://user:password@host/ may not fetch a
// URL that carries those credentials, and the browser sends the cached login to its origin anyway.
const API = location.origin + location.pathname.replace(/\/user\/.*$/, "") + "/api/v1/";
const COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"];

async function api(path, params) {
  const response = await fetch(API + path + "?" + new URLSearchParams(params));
  const body = await response.json();
  if (body.status !== "success") throw new Error(body.error || `HTTP ${response.status}`);
  return body.data;
}

function seriesName(metric) {
  const { __name__: name = "", ...labels } = metric;
  const pairs = Object.keys(labels).sort().map((key) => `${key}="${labels[key]}"`);
  return `${name}{${pairs.join(",")}}`;
}

function element(tag, attributes = {}, text = "") {
  const isSvg = ["svg", "polyline", "line", "text"].includes(tag);
  const node = isSvg ? document.createElementNS("http://www.w3.org/2000/svg", tag) : document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  if (text) node.textContent = text;
  return node;
}

function setStatus(text, isError = false) {
  const status = document.getElementById("status");
  status.textContent = text;
  status.className = isError ? "error" : "";
}

function show() {
  const view = new URLSearchParams(location.search).get("view") === "alerts" ? "alerts" : "readings";
  document.getElementById(view).hidden = false;
  return view === "alerts" ? showAlerts() : showReadings();
}

// -- readings -------------------------------------------------------------------------------------------------

async function showReadings() {
  const params = new URLSearchParams(location.search);
  const query = params.get("query") || "edge_temperature";
  const range = Number(params.get("range") || 900);
  document.getElementById("query").value = query;
  document.getElementById("range").value = String(range);
  document.title = `${query} · edge-metrics demo`;
  setStatus("loading…");
  try {
    const end = Date.now() / 1000;
    const step = Math.max(1, Math.round(range / 240));
    const [matrix, vector] = await Promise.all([
      api("query_range", { query, start: end - range, end, step }),
      api("query", { query }),
    ]);
    drawGraph(matrix.result, end - range, end);
    fillTable(vector.result);
    setStatus(`${vector.result.length} series for ${query} at ${new Date(end * 1000).toLocaleTimeString()}; ` +
              "refreshed every 15 s");
  } catch (error) {
    setStatus(`query failed: ${error.message}`, true);
  }
  setTimeout(() => location.reload(), 15000);
}

function fillTable(result) {
  const body = document.querySelector("#series tbody");
  body.replaceChildren();
  for (const series of result) {
    const row = element("tr");
    row.append(element("td", {}, seriesName(series.metric)), element("td", { class: "value" }, series.value[1]));
    body.append(row);
  }
}

function drawGraph(result, start, end) {
  const svg = document.getElementById("graph");
  svg.replaceChildren();
  const width = Number(svg.getAttribute("width"));
  const height = Number(svg.getAttribute("height"));
  const margin = 50;
  const values = result.flatMap((series) => series.values.map(([, v]) => Number(v))).filter(Number.isFinite);
  if (!values.length) {
    svg.append(element("text", { x: margin, y: height / 2 }, "no data in this range yet"));
    return;
  }
  let low = Math.min(...values);
  let high = Math.max(...values);
  if (low === high) { low -= 1; high += 1; }
  const x = (t) => margin + ((t - start) / (end - start)) * (width - 2 * margin);
  const y = (v) => height - margin + ((low - v) / (high - low)) * (height - 2 * margin);
  svg.append(element("line", { x1: margin, y1: height - margin, x2: width - margin, y2: height - margin, stroke: "#999" }));
  svg.append(element("text", { x: 4, y: y(high) + 4, "font-size": 11 }, high.toPrecision(4)));
  svg.append(element("text", { x: 4, y: y(low) + 4, "font-size": 11 }, low.toPrecision(4)));
  svg.append(element("text", { x: margin, y: height - 30, "font-size": 11 }, new Date(start * 1000).toLocaleTimeString()));
  svg.append(element("text", { x: width - margin - 50, y: height - 30, "font-size": 11 },
                     new Date(end * 1000).toLocaleTimeString()));
  result.forEach((series, index) => {
    const colour = COLOURS[index % COLOURS.length];
    const points = series.values.map(([t, v]) => `${x(t).toFixed(1)},${y(Number(v)).toFixed(1)}`).join(" ");
    svg.append(element("polyline", { points, fill: "none", stroke: colour, "stroke-width": 2, class: "series" }));
    svg.append(element("text", { x: margin + 4, y: 14 + 14 * index, fill: colour, "font-size": 12 },
                       seriesName(series.metric)));
  });
}

// -- alerts ---------------------------------------------------------------------------------------------------

async function showAlerts() {
  document.title = "alerts · edge-metrics demo";
  try {
    const data = await api("rules", { type: "alert" });
    const container = document.getElementById("groups");
    container.replaceChildren();
    let firing = 0;
    let rules = 0;
    for (const group of data.groups) {
      container.append(element("h2", {}, `${group.name} (${group.file})`));
      const table = element("table", { class: "rules" });
      table.append(element("tr"));
      table.firstChild.append(element("th", {}, "alert"), element("th", {}, "state"), element("th", {}, "active"));
      for (const rule of group.rules) {
        rules += 1;
        if (rule.state === "firing") firing += 1;
        const active = (rule.alerts || []).map((alert) => seriesName(alert.labels)).join("\n");
        const row = element("tr", { class: "rule" });
        row.append(element("td", {}, rule.name), element("td", { class: rule.state }, rule.state),
                   element("td", {}, active || "-"));
        table.append(row);
      }
      container.append(table);
    }
    setStatus(`${rules} alert rules in ${data.groups.length} groups, ${firing} firing; refreshed every 15 s`);
  } catch (error) {
    setStatus(`cannot read the rules: ${error.message}`, true);
  }
  setTimeout(() => location.reload(), 15000);
}

show();
