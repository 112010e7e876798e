// The model registry: every group with its versions (status, task, source, hash, the endpoints that run
// each), and approve / reject buttons. Approving rolls the endpoints on registry://GROUP/latest-approved.
import { api, enc } from "../api.js";
import { fill, h, toast } from "../dom.js";

function when(value) { return value ? new Date(value).toLocaleString() : "–"; }

export async function renderModels(main, _params, page) {
  const groups = h("div", { id: "model-groups" });
  const status = h("p", { class: "muted", id: "models-status", "aria-live": "polite" }, "Loading…");
  const refresh = async () => {
    const { items } = await api("GET", "/v1/models");
    const versions = await Promise.all(items.map((g) => api("GET", `/v1/models/${enc(g.name)}/versions`)));
    if (!page.alive()) return;
    fill(groups, items.length ? items.map((g, i) => group(g, versions[i].items, refresh)) :
      h("p", { class: "muted" }, "No models registered yet: hubserve model register GROUP ./folder"));
    status.textContent = `${items.length} group${items.length === 1 ? "" : "s"} · refreshed ${new Date().toLocaleTimeString()}`;
  };
  fill(main, h("h1", {}, "Models"),
    h("p", { class: "muted" }, "Deploy a version with model.source registry://GROUP/N, or registry://GROUP/latest-approved to follow approvals."),
    groups, status);
  await refresh();
  page.every(5000, refresh);
}

function group(g, versions, refresh) {
  return h("section", { class: "panel", "data-group": g.name },
    h("h2", {}, g.name, h("span", { class: "muted" }, ` · latest approved: ${g.latest_approved ?? "none"}`)),
    h("div", { class: "table-wrap" }, h("table", { class: "cards" },
      h("thead", {}, h("tr", {},
        h("th", {}, "Version"), h("th", {}, "Status"), h("th", {}, "Task"), h("th", {}, "Source"),
        h("th", {}, "sha256"), h("th", {}, "Endpoints"), h("th", {}, "Created"), h("th", {}, "Actions"))),
      h("tbody", {}, versions.map((v) => row(v, refresh))))));
}

function row(v, refresh) {
  const act = (action) => h("button", {
    type: "button", class: action === "reject" ? "small danger" : "small", dataset: { key: `${action}:${v.uri}` },
    "aria-label": `${action} ${v.uri}`,
    onclick: async () => {
      try {
        const done = await api("POST", `/v1/models/${enc(v.group)}/versions/${v.version}/${action}`);
        const rolled = (done.rolled_endpoints || []).join(", ");
        toast(`${v.uri}: ${done.approval_status}${rolled ? ` · rolling ${rolled}` : ""}`);
        await refresh();
      } catch (e) { toast(`${action} failed: ${e.message}`); }
    },
  }, action === "approve" ? "Approve" : "Reject");
  return h("tr", { "data-version": v.uri },
    h("td", { "data-label": "Version" }, h("code", {}, v.uri)),
    h("td", { "data-label": "Status" }, v.approval_status),
    h("td", { "data-label": "Task" }, v.task || "–"),
    h("td", { "data-label": "Source" }, v.revision ? `${v.source}@${v.revision}` : v.source),
    h("td", { "data-label": "sha256" }, v.sha256 ? h("code", { title: v.sha256 }, v.sha256.slice(0, 12)) : "–"),
    h("td", { "data-label": "Endpoints" }, (v.endpoints || []).join(", ") || "–"),
    h("td", { "data-label": "Created" }, when(v.created_at)),
    h("td", { class: "actions", "data-label": "Actions" },
      v.approval_status === "Approved" ? null : act("approve"),
      v.approval_status === "Rejected" ? null : act("reject")));
}
