// Endpoint page: state and actions, metrics charts over a window (a generative endpoint adds time to
// first token, inter-token latency, tokens/s and running/waiting sequences), logs with follow, async queue and
// batch jobs, cost serverless vs dedicated, and the spec with its edit form (PUT) and quick scaling (PATCH).
// A multi-model endpoint adds its models: state, memory per replica, hits and misses (endpoint_models.js).
import { api, enc } from "../api.js";
import { lineChart } from "../chart.js";
import { fill, fmt, h, ms, stateBadge, toast, usd } from "../dom.js";
import { specForm } from "../specform.js";
import { actionButtons } from "./actions.js";
import { modelsPanel } from "./endpoint_models.js";

const WINDOWS = [["5m", "5 minutes"], ["15m", "15 minutes"], ["1h", "1 hour"]];

export async function renderEndpoint(main, [name], page) {
  let described = await api("GET", `/v1/endpoints/${enc(name)}`);
  const header = h("div", { class: "row spread" });
  const stats = h("div", { class: "grid3", "aria-live": "off" });
  const windowSelect = h("select", { id: "metrics-window" }, WINDOWS.map(([v, l]) => h("option", { value: v }, l)));
  const totals = h("div", { class: "grid3" });
  const charts = h("div", { class: "charts", id: "charts" });
  const cost = h("div", { id: "cost" });
  const queue = h("div", { id: "async" });
  const jobs = h("div", { id: "batch" });
  const spec = h("div", { id: "spec" });
  const logs = logsPanel(name, page);
  const models = described.model && described.model.multi_model ? modelsPanel(name, page) : null;

  fill(main,
    h("p", {}, h("a", { href: "#/" }, "← Endpoints")),
    header,
    h("section", { class: "panel", "aria-labelledby": "s-now" }, h("h2", { id: "s-now" }, "Now"), stats),
    models && models.element,
    h("section", { class: "panel", "aria-labelledby": "s-metrics" },
      h("div", { class: "row spread" }, h("h2", { id: "s-metrics" }, "Metrics"),
        h("div", { class: "field inline" }, h("label", { for: "metrics-window" }, "Window"), windowSelect)),
      totals, h("div", { style: "height:12px" }), charts),
    h("div", { class: "grid2" },
      h("section", { class: "panel", "aria-labelledby": "s-cost" }, h("h2", { id: "s-cost" }, "Cost of this traffic"), cost),
      h("section", { class: "panel", "aria-labelledby": "s-async" }, h("h2", { id: "s-async" }, "Async queue and batch jobs"), queue, jobs)),
    logs.element,
    h("section", { class: "panel", "aria-labelledby": "s-spec" }, h("h2", { id: "s-spec" }, "Spec"), spec));

  const renderHeader = () => fill(header,
    h("div", { class: "row" }, h("h1", {}, name), stateBadge(described.state, described.reason)),
    h("div", { class: "row" }, actionButtons(described, (label) => (label === "Delete" ? (location.hash = "#/") : refreshState())),
      h("a", { class: "button small primary", href: `#/endpoints/${name}/playground` }, "Open playground")));
  const refreshState = async () => {
    described = await api("GET", `/v1/endpoints/${enc(name)}`);
    if (!page.alive()) return;
    renderHeader();
    renderStats(stats, described);
  };
  const refreshMetrics = async () => {
    const window = windowSelect.value;
    const [metrics, priced] = await Promise.all([
      api("GET", `/v1/endpoints/${enc(name)}/metrics?window=${window}`),
      api("GET", `/v1/endpoints/${enc(name)}/cost?window=${window}`),
    ]);
    if (!page.alive()) return;
    renderTotals(totals, metrics);
    renderCharts(charts, metrics);
    renderCost(cost, priced);
  };
  const refreshWork = async () => {
    const [inferences, batch] = await Promise.all([
      api("GET", `/endpoints/${enc(name)}/async-invocations?limit=10`).catch(() => ({ items: [] })),
      api("GET", "/v1/batch-jobs").catch(() => ({ items: [] })),
    ]);
    if (!page.alive()) return;
    renderQueue(queue, described, inferences.items);
    renderJobs(jobs, batch.items.filter((job) => job.endpoint === name));
  };
  renderHeader();
  renderStats(stats, described);
  await renderSpec(spec, described, refreshState);
  windowSelect.addEventListener("change", refreshMetrics);
  await Promise.all([refreshMetrics(), refreshWork(), logs.load(), models && models.refresh()]);
  page.every(2000, refreshState);
  if (models) page.every(2000, models.refresh);
  page.every(2000, refreshMetrics);
  page.every(5000, refreshWork);
  page.every(2000, logs.follow);
}

function stat(label, value) {
  return h("div", { class: "stat" }, h("div", { class: "value" }, value), h("div", { class: "label" }, label));
}

function renderStats(box, e) {
  const c = e.compute;
  fill(box,
    stat("replicas ready / desired", `${e.replicas.ready}/${e.replicas.desired}${e.replicas.starting ? ` (+${e.replicas.starting} starting)` : ""}`),
    stat("in flight / held", `${e.requests.in_flight} / ${e.requests.held}`),
    stat("compute", c.type === "serverless" ? `serverless ${c.memory_mb} MB` : `${c.instance} ×${c.min_replicas}-${c.max_replicas}`),
    stat("task · runtime", `${e.model.task || "?"} · ${(e.runtime && e.runtime.chosen) || e.model.runtime}`),
    stat("cold starts (since start)", fmt(e.cold_starts, 0)),
    stat("model setup p50", e.model_setup_ms ? ms(e.model_setup_ms.p50) : "–"));
}

function renderTotals(box, m) {
  fill(box,
    stat("invocations", fmt(m.invocations, 0)),
    stat("errors 4xx / 5xx", `${m.errors_4xx} / ${m.errors_5xx}`),
    stat("model p50 / p99", `${ms(m.model_latency_ms.p50)} / ${ms(m.model_latency_ms.p99)}`),
    stat("overhead p50 / p99", `${ms(m.overhead_latency_ms.p50)} / ${ms(m.overhead_latency_ms.p99)}`),
    stat("cold starts", fmt(m.cold_starts, 0)),
    stat("memory max per replica", m.memory_mb.max_per_replica ? `${fmt(m.memory_mb.max_per_replica, 0)} MB${m.memory_mb.limit ? ` of ${m.memory_mb.limit}` : ""}` : "–"),
    generationTotals(m.generation));
}

/** A generative endpoint's stream figures over the window (nothing for other endpoints). */
function generationTotals(g) {
  if (!g) return null;
  const rate = g.tokens_per_second;
  const now = (level) => (level.current === undefined ? fmt(level.avg, 1) : fmt(level.current, 0));
  return [
    stat("time to first token p50 / p99", `${ms(g.time_to_first_token_ms.p50)} / ${ms(g.time_to_first_token_ms.p99)}`),
    stat("inter-token latency p50 / p99", `${ms(g.inter_token_latency_ms.p50)} / ${ms(g.inter_token_latency_ms.p99)}`),
    stat("generated tokens/s", rate.current === undefined || rate.current === null ? fmt(rate.avg, 1) : fmt(rate.current, 1)),
    stat("sequences running / waiting", `${now(g.sequences_running)} / ${now(g.sequences_waiting)}`),
  ];
}

function renderCharts(box, m) {
  // One slot per minute of the whole window, so a quiet minute reads as 0 (counts) or a gap (latencies).
  const byStart = new Map(m.series.map((r) => [r.start, r]));
  const last = Math.floor(Date.now() / 60000) * 60;
  const slots = Math.max(2, Math.round(m.window_s / 60));
  const times = Array.from({ length: slots }, (_, i) => last - (slots - 1 - i) * 60);
  const rows = times.map((t) => byStart.get(t) || null);
  const col = (key, empty = null) => rows.map((r) => (r ? r[key] : empty));
  const count = (key) => col(key, 0);
  fill(box,
    lineChart({ title: "Invocations and errors / min", times, series: [
      { label: "invocations", values: count("invocations") },
      { label: "errors", values: rows.map((r) => (r ? r.errors_4xx + r.errors_5xx : 0)) }] }),
    lineChart({ title: "Model latency", unit: " ms", times, series: [
      { label: "p50", values: col("model_latency_ms_p50") }, { label: "p99", values: col("model_latency_ms_p99") }] }),
    lineChart({ title: "Overhead latency", unit: " ms", times, series: [
      { label: "p50", values: col("overhead_latency_ms_p50") }, { label: "p99", values: col("overhead_latency_ms_p99") }] }),
    lineChart({ title: "Cold starts / min", times, series: [{ label: "cold starts", values: count("cold_starts") }] }),
    lineChart({ title: "Replicas and concurrency", times, series: [
      { label: "replicas max", values: col("replicas_max") }, { label: "concurrency max", values: col("concurrent_executions_max") }] }),
    lineChart({ title: "Memory per replica", unit: " MB", times, series: [{ label: "max RSS", values: col("memory_mb_max") }] }),
    m.generation ? [
      lineChart({ title: "Time to first token", unit: " ms", times, series: [
        { label: "p50", values: col("ttft_ms_p50") }, { label: "p99", values: col("ttft_ms_p99") }] }),
      lineChart({ title: "Inter-token latency", unit: " ms", times, series: [
        { label: "p50", values: col("itl_ms_p50") }, { label: "p99", values: col("itl_ms_p99") }] }),
      lineChart({ title: "Generated tokens / s", times, series: [{ label: "tokens/s", values: count("tokens_per_second") }] }),
      lineChart({ title: "Sequences", times, series: [
        { label: "running", values: col("sequences_running_avg") }, { label: "waiting", values: col("sequences_waiting_avg") },
        { label: "batch size", values: col("batch_size_avg") }] }),
    ] : null);
}

function renderCost(box, c) {
  const own = c.dedicated[0];
  const cheaper = c.cheaper === "serverless" ? "Serverless" : `Dedicated ${own.instance}`;
  fill(box,
    h("p", { class: "muted" }, `${fmt(c.invocations, 0)} invocations, ${fmt(c.billed_ms / 1000, 3)} s billed over the last ${c.window}.`),
    h("div", { class: "table-wrap" }, h("table", {},
      h("thead", {}, h("tr", {}, h("th", {}, "Option"), h("th", { class: "num" }, `This ${c.window}`), h("th", { class: "num" }, "A month at this rate"))),
      h("tbody", {},
        h("tr", {}, h("td", {}, `Serverless ${c.serverless.memory_mb} MB`), h("td", { class: "num" }, usd(c.serverless.window)), h("td", { class: "num" }, usd(c.serverless.per_month))),
        c.dedicated.map((d) => h("tr", {}, h("td", {}, `Dedicated ${d.instance} (1 replica)`), h("td", { class: "num" }, usd(d.window)), h("td", { class: "num" }, usd(d.per_month))))))),
    h("p", {}, h("strong", {}, `${cheaper} is cheaper`), own ? ` than ${c.cheaper === "serverless" ? own.instance : "serverless"}` : "", ` for this traffic (prices: ${c.pricing_source}).`));
}

function renderQueue(box, e, items) {
  const q = e.asyncQueue || { queued: 0, running: 0 };
  fill(box, h("h3", {}, `Async inferences: ${q.queued} queued, ${q.running} running`),
    items.length ? h("div", { class: "table-wrap" }, h("table", {},
      h("thead", {}, h("tr", {}, h("th", {}, "Id"), h("th", {}, "Status"), h("th", { class: "num" }, "Attempts"), h("th", {}, "Created"))),
      h("tbody", {}, items.map((i) => h("tr", {}, h("td", {}, h("code", {}, i.inferenceId)), h("td", {}, i.status),
        h("td", { class: "num" }, i.attempts), h("td", {}, new Date(i.createdAt).toLocaleTimeString())))))) :
      h("p", { class: "muted" }, "No async inferences yet (POST /endpoints/NAME/async-invocations)."));
}

function renderJobs(box, items) {
  fill(box, h("h3", {}, "Batch jobs on this endpoint"),
    items.length ? h("div", { class: "table-wrap" }, h("table", {},
      h("thead", {}, h("tr", {}, h("th", {}, "Job"), h("th", {}, "Status"), h("th", { class: "num" }, "Done / total"), h("th", { class: "num" }, "Failed"))),
      h("tbody", {}, items.map((j) => h("tr", {}, h("td", {}, h("code", {}, j.id)), h("td", {}, j.status),
        h("td", { class: "num" }, `${j.records.done}/${j.records.total ?? "?"}`), h("td", { class: "num" }, j.records.failed)))))) :
      h("p", { class: "muted" }, "No batch jobs name this endpoint."));
}

async function renderSpec(box, e, refreshState) {
  const plain = Object.fromEntries(["name", "model", "compute", "batching", "env", "custom_code", "async_inference", "access"]
    .filter((k) => e[k] !== undefined && e[k] !== null).map((k) => [k, e[k]]));
  const form = await specForm({ spec: e, editing: true, idPrefix: "edit" });
  const save = h("button", { type: "submit", class: "primary" }, "Save (rolling update)");
  const edit = h("form", { novalidate: true, "aria-label": "Edit spec" }, form.element, save);
  edit.addEventListener("submit", async (event) => {
    event.preventDefault();
    save.disabled = true;
    try {
      await api("PUT", `/v1/endpoints/${enc(e.name)}`, form.read());
      form.clearErrors();
      toast("Spec saved: a new replica rolls out");
      await refreshState();
    } catch (error) { form.showErrors(error); } finally { save.disabled = false; }
  });
  fill(box,
    quickScale(e, refreshState),
    h("details", {}, h("summary", {}, "Spec as JSON"), h("pre", {}, JSON.stringify(plain, null, 2))),
    h("details", { id: "edit-spec" }, h("summary", {}, "Edit the whole spec (PUT, like hubserve endpoint update -f)"), edit));
}

/** The scaling numbers alone, sent as a JSON merge patch (PATCH, like the CLI's update flags). */
function quickScale(e, refreshState) {
  const c = e.compute;
  const fields = c.type === "serverless" ? [["max_concurrency", "Max concurrency"], ["provisioned_concurrency", "Provisioned concurrency"]]
    : [["min_replicas", "Min replicas"], ["max_replicas", "Max replicas"]];
  const inputs = fields.map(([key, label]) => [key, label, h("input", { id: `scale-${key}`, type: "number", value: c[key], min: 0 })]);
  const error = h("div", { class: "error", role: "alert" });
  const form = h("form", { class: "row", "aria-label": "Quick scaling" },
    inputs.map(([key, label, input]) => h("div", { class: "field" }, h("label", { for: input.id }, label), input)),
    h("button", { type: "submit" }, "Apply (PATCH)"), error);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    const patch = { compute: Object.fromEntries(inputs.map(([key, , input]) => [key, Number(input.value)])) };
    try { await api("PATCH", `/v1/endpoints/${enc(e.name)}`, patch); toast("Scaling updated"); await refreshState(); }
    catch (failure) { error.textContent = failure.details.length ? failure.details.map((d) => `${d.field}: ${d.message}`).join("; ") : failure.message; }
  });
  return form;
}

/** Latest log lines; while "follow" is on, new lines are appended every 2 s from next_since. */
function logsPanel(name, page) {
  const pre = h("pre", { class: "logs", id: "logs", tabindex: 0, "aria-label": "Endpoint logs" });
  const followBox = h("input", { type: "checkbox", id: "logs-follow", checked: true });
  let since = null;
  let seen = new Set();
  const add = (lines) => {
    const stick = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 20;
    for (const line of lines) {
      const key = `${line.time} ${line.source} ${line.message}`;
      if (seen.has(key)) continue;
      seen.add(key);
      pre.append(`${line.time} ${line.source} ${line.stream} ${line.message}\n`);
    }
    while (pre.childNodes.length > 1000) pre.firstChild.remove();
    if (stick) pre.scrollTop = pre.scrollHeight;
  };
  const load = async () => {
    const answer = await api("GET", `/v1/endpoints/${enc(name)}/logs?tail=200`);
    pre.replaceChildren();
    seen = new Set();
    add(answer.lines);
    since = answer.next_since;
    if (!answer.lines.length) pre.append("(no log lines yet)\n");
    pre.scrollTop = pre.scrollHeight;
  };
  const follow = async () => {
    if (!followBox.checked || !page.alive()) return;
    const answer = await api("GET", `/v1/endpoints/${enc(name)}/logs?tail=500${since ? `&since=${enc(since)}` : ""}`);
    add(answer.lines);
    since = answer.next_since;
  };
  const element = h("section", { class: "panel", "aria-labelledby": "s-logs" },
    h("div", { class: "row spread" }, h("h2", { id: "s-logs" }, "Logs"),
      h("div", { class: "row" }, h("div", { class: "field inline" }, followBox, h("label", { for: "logs-follow" }, "Follow")),
        h("button", { type: "button", class: "small", onclick: load }, "Reload latest"))),
    pre);
  return { element, load, follow };
}
