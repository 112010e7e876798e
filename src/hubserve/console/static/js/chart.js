// A small SVG line chart over the metrics' per-minute series: no library, just paths and labels.
import { h } from "./dom.js";

const NS = "http://www.w3.org/2000/svg";
const COLORS = ["#2456c7", "#c62828", "#1a7f37", "#9a6700", "#7b3fb5"];

function svg(tag, attrs = {}) {
  const element = document.createElementNS(NS, tag);
  for (const [key, value] of Object.entries(attrs)) element.setAttribute(key, String(value));
  return element;
}

/**
 * lineChart({title, series: [{label, values: [number|null]}], times: [epoch s], unit})
 * -> <figure> with an SVG, a legend and the latest values as text for screen readers.
 */
export function lineChart({ title, series, times, unit = "" }) {
  const width = 360, height = 160, left = 40, right = 8, top = 10, bottom = 22;
  const all = series.flatMap((s) => s.values).filter((v) => v !== null && v !== undefined);
  const highest = Math.max(0, ...all);
  const max = niceMax(highest > 0 ? highest : 1); // an empty chart still gets a 0..1 axis
  const n = Math.max(times.length, 1);
  const x = (i) => left + (n === 1 ? (width - left - right) / 2 : (i * (width - left - right)) / (n - 1));
  const y = (v) => top + (height - top - bottom) * (1 - v / max);
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": `${title} chart` });
  for (const fraction of [0, 0.5, 1]) {
    const value = max * fraction;
    root.append(svg("line", { x1: left, x2: width - right, y1: y(value), y2: y(value), stroke: "#e3e6ec" }));
    const label = svg("text", { x: left - 4, y: y(value) + 4, "text-anchor": "end", "font-size": 10, fill: "#5b6475" });
    label.textContent = shortNumber(value);
    root.append(label);
  }
  if (times.length) {
    for (const i of [0, times.length - 1]) {
      const label = svg("text", { x: x(i), y: height - 6, "text-anchor": i ? "end" : "start", "font-size": 10, fill: "#5b6475" });
      label.textContent = new Date(times[i] * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
      root.append(label);
    }
  }
  series.forEach((s, index) => {
    const color = COLORS[index % COLORS.length];
    let d = "";
    s.values.forEach((v, i) => {
      if (v === null || v === undefined) return;
      d += `${d ? "L" : "M"}${x(i).toFixed(1)},${y(v).toFixed(1)}`;
      root.append(svg("circle", { cx: x(i), cy: y(v), r: n > 20 ? 1.5 : 2.5, fill: color }));
    });
    if (d) root.append(svg("path", { d, fill: "none", stroke: color, "stroke-width": 2 }));
  });
  const latest = series.map((s) => `${s.label} ${shortNumber(lastValue(s.values))}${unit}`).join(", ");
  const total = series.length ? series[0].values.reduce((sum, v) => sum + (v || 0), 0) : 0;
  return h("figure", { class: "chart", "data-chart": title, "data-total": Number(total.toFixed(3)) },
    h("h3", {}, title),
    root,
    h("figcaption", { class: "legend" },
      series.map((s, i) => h("span", { style: `--c: ${COLORS[i % COLORS.length]}` }, `${s.label}: ${shortNumber(lastValue(s.values))}${unit}`))),
    h("span", { class: "skip" }, `Latest: ${latest}`));
}

function lastValue(values) {
  for (let i = values.length - 1; i >= 0; i--) if (values[i] !== null && values[i] !== undefined) return values[i];
  return null;
}

function niceMax(value) {
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) if (step * power >= value) return step * power;
  return 10 * power;
}

function shortNumber(value) {
  if (value === null || value === undefined) return "–";
  if (value >= 1000) return `${(value / 1000).toFixed(1)}k`;
  return Number(value.toFixed(value < 10 ? 2 : 0)).toString();
}
