// A multi-model endpoint's "Models" panel: each replica's memory used against its budget as a bar, and a
// line per model (state badge, replicas, size, last use, load time, hits/misses), as `hubserve endpoint models`.
import { api, enc } from "../api.js";
import { fill, fmt, h } from "../dom.js";

/** The panel and its refresh (GET /v1/endpoints/NAME/models); the endpoint page calls refresh on its timer. */
export function modelsPanel(name, page) {
  const memory = h("div", { class: "bars", id: "models-memory", "aria-label": "Memory per replica" });
  const table = h("div", { id: "models-table" });
  const element = h("section", { class: "panel", "aria-labelledby": "s-models" },
    h("h2", { id: "s-models" }, "Models"), h("h3", {}, "Memory per replica (loaded models, used / budget)"), memory,
    h("div", { style: "height:12px" }), table);
  const refresh = async () => {
    let listing;
    try { listing = await api("GET", `/v1/endpoints/${enc(name)}/models`); }
    catch (error) { if (page.alive()) fill(table, h("p", { class: "error", role: "alert" }, error.message)); return; }
    if (!page.alive()) return;
    renderMemory(memory, listing);
    renderModels(table, listing, Date.now() / 1000);
  };
  return { element, refresh };
}

function renderMemory(box, listing) {
  const replicas = Object.entries(listing.replicas || {}).sort(([a], [b]) => a.localeCompare(b));
  if (!replicas.length) return fill(box, h("p", { class: "muted" }, "No replica running: models load on a replica's first call to them."));
  fill(box, replicas.map(([replica, { used_mb: used, budget_mb: budget }]) => {
    const share = budget ? Math.min(100, (100 * used) / budget) : 0;
    return h("div", { class: "bar membar", dataset: { replica } },
      h("span", { title: replica }, replica),
      h("div", { class: "track", role: "meter", "aria-label": `Memory of ${replica}`, "aria-valuemin": 0,
        "aria-valuemax": budget || used, "aria-valuenow": used },
      h("div", { class: `fill${share > 90 ? " full" : ""}`, style: `width:${share.toFixed(1)}%` })),
      h("span", { class: "score" }, budget ? `${fmt(used)} / ${fmt(budget)} MB` : `${fmt(used)} MB, no budget`));
  }));
}

function renderModels(box, listing, now) {
  const models = listing.models || [];
  if (!models.length) return fill(box, h("p", { class: "muted" }, `No models yet: add model folders under ${listing.source}.`));
  const heads = ["Model", "State", "Replicas", "Size MB", "Last used", "Load time", "Hits / misses"];
  const numeric = new Set(["Size MB", "Load time", "Hits / misses"]);
  fill(box, h("div", { class: "table-wrap" }, h("table", { class: "cards", "aria-label": "Models" },
    h("thead", {}, h("tr", {}, heads.map((head) => h("th", { class: numeric.has(head) ? "num" : null }, head)))),
    h("tbody", {}, models.map((m) => h("tr", { dataset: { model: m.name } },
      h("td", { "data-label": "Model" }, h("code", {}, m.name)),
      h("td", { "data-label": "State", "data-state": m.state },
        h("span", { class: `state model-${m.state}` }, m.state),
        m.available ? null : h("span", { class: "muted" }, " (gone from the folder)")),
      h("td", { "data-label": "Replicas" }, (m.replicas || []).join(", ") || "–"),
      h("td", { class: "num", "data-label": "Size MB" }, m.size_mb === null ? "–" : fmt(m.size_mb)),
      h("td", { "data-label": "Last used", title: m.last_used ? new Date(m.last_used * 1000).toLocaleString() : null },
        relativeTime(m.last_used, now)),
      h("td", { class: "num", "data-label": "Load time" }, m.load_s === null ? "–" : `${m.load_s.toFixed(2)} s`),
      h("td", { class: "num", "data-label": "Hits / misses" }, `${m.hits} / ${m.misses}`)))))));
}

/** "12s ago", "5m ago", "3h ago", "2d ago"; "–" for never (as the CLI's table). */
export function relativeTime(epoch, now) {
  if (!epoch) return "–";
  const ago = Math.max(0, now - epoch);
  for (const [unit, seconds] of [["d", 86400], ["h", 3600], ["m", 60]]) {
    if (ago >= seconds) return `${Math.floor(ago / seconds)}${unit} ago`;
  }
  return `${Math.floor(ago)}s ago`;
}

/** The names a playground can call: the models in the endpoint's folder now (GET .../models). */
export async function modelNames(name) {
  const listing = await api("GET", `/v1/endpoints/${enc(name)}/models`);
  return (listing.models || []).filter((m) => m.available).map((m) => m.name);
}
