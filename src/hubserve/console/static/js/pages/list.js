// Endpoints list: describe + the last minute's metrics of each endpoint, polled every 2 s.
import { api, enc } from "../api.js";
import { fill, fmt, h, ms, stateBadge } from "../dom.js";
import { actionButtons } from "./actions.js";

export async function renderList(main, _params, page) {
  const status = h("p", { class: "muted", "aria-live": "polite" }, "Loading…");
  const body = h("tbody");
  fill(main,
    h("div", { class: "row spread" }, h("h1", {}, "Endpoints"), h("a", { class: "button primary", href: "#/create" }, "Create endpoint")),
    h("div", { class: "table-wrap" }, h("table", { class: "cards", "aria-describedby": "list-status" },
      h("thead", {}, h("tr", {},
        h("th", {}, "Name"), h("th", { class: "hide-narrow" }, "Model"), h("th", {}, "Task"), h("th", { class: "hide-narrow" }, "Compute"),
        h("th", {}, "State"), h("th", { class: "num" }, "Replicas"), h("th", { class: "num" }, "Req/min"),
        h("th", { class: "num" }, "p99"), h("th", {}, "Actions"))),
      body)),
    status);
  status.id = "list-status";
  const refresh = async () => {
    const { items } = await api("GET", "/v1/endpoints");
    const metrics = await Promise.all(items.map((e) =>
      api("GET", `/v1/endpoints/${enc(e.name)}/metrics?window=60s`).catch(() => null)));
    if (!page.alive()) return;
    const focused = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.key : null;
    fill(body, items.length ? items.map((e, i) => row(e, metrics[i], refresh)) :
      h("tr", {}, h("td", { colspan: 9, class: "muted" }, "No endpoints yet. ", h("a", { href: "#/create" }, "Create one"), ".")));
    if (focused) body.querySelector(`[data-key="${CSS.escape(focused)}"]`)?.focus();
    status.textContent = `${items.length} endpoint${items.length === 1 ? "" : "s"} · refreshed ${new Date().toLocaleTimeString()}`;
  };
  await refresh();
  page.every(2000, refresh);
}

function computeText(compute) {
  if (compute.type === "serverless") return `serverless · ${compute.memory_mb} MB · max ${compute.max_concurrency}`;
  return `dedicated · ${compute.instance} · ${compute.min_replicas}-${compute.max_replicas}`;
}

function row(e, metrics, refresh) {
  const name = e.name;
  const actions = actionButtons(e, () => refresh());
  const p99 = metrics ? metrics.model_latency_ms.p99 : null;
  return h("tr", { "data-endpoint": name },
    h("td", { "data-label": "Name" }, h("a", { href: `#/endpoints/${name}` }, name)),
    h("td", { class: "hide-narrow" }, h("code", {}, e.model.source)),
    h("td", { "data-label": "Task" }, e.model.task || "–"),
    h("td", { class: "hide-narrow" }, computeText(e.compute)),
    h("td", { "data-label": "State", "data-state": e.state }, stateBadge(e.state, e.reason)),
    h("td", { class: "num", "data-label": "Replicas" }, `${e.replicas.ready}/${e.replicas.desired}`),
    h("td", { class: "num", "data-label": "Req/min" }, metrics ? fmt(metrics.invocations, 0) : "–"),
    h("td", { class: "num", "data-label": "p99" }, ms(p99)),
    h("td", { class: "actions", "data-label": "Actions" }, h("div", { class: "row" }, actions, h("a", { class: "button small", href: `#/endpoints/${name}/playground`, "aria-label": `Playground ${name}` }, "Try"))));
}
