// Tokens (admin): list with scopes, endpoints and use; create (the new token shown once, with a copy
// button); revoke with confirmation. And the audit log of changes. No token is ever rendered here
// except the one just created: lists come from GET /v1/tokens, which holds records only.
import { api, enc } from "../api.js";
import { field, fill, h, toast } from "../dom.js";

const SCOPES = ["admin", "deploy", "invoke", "read"];

function when(value) { return value ? new Date(value).toLocaleString() : "–"; }

export async function renderTokens(main, _params, page) {
  const body = h("tbody");
  const status = h("p", { class: "muted", id: "tokens-status", "aria-live": "polite" }, "Loading…");
  const shown = h("div", { id: "new-token" });
  const showRevoked = h("input", { type: "checkbox", id: "show-revoked" });
  const refresh = async () => {
    const { items } = await api("GET", `/v1/tokens${showRevoked.checked ? "?include_revoked=true" : ""}`);
    if (!page.alive()) return;
    fill(body, items.length ? items.map((t) => row(t, refresh)) :
      h("tr", {}, h("td", { colspan: 8, class: "muted" }, "No tokens yet: the server's --token is the only one.")));
    status.textContent = `${items.length} token${items.length === 1 ? "" : "s"}`;
  };
  showRevoked.addEventListener("change", refresh);
  fill(main,
    h("h1", {}, "Tokens"),
    createForm(shown, refresh),
    shown,
    h("div", { class: "row" }, showRevoked, h("label", { for: "show-revoked" }, "Show revoked tokens")),
    h("div", { class: "table-wrap" }, h("table", { class: "cards", "aria-describedby": "tokens-status" },
      h("thead", {}, h("tr", {},
        h("th", {}, "ID"), h("th", {}, "Name"), h("th", {}, "Scopes"), h("th", {}, "Endpoints"),
        h("th", {}, "Created"), h("th", {}, "Last used"), h("th", {}, "Revoked"), h("th", {}, "Actions"))),
      body)),
    status);
  await refresh();
}

function createForm(shown, refresh) {
  const name = h("input", { id: "token-name", required: true, maxlength: 200, autocomplete: "off" });
  const boxes = SCOPES.map((scope) => h("input", { type: "checkbox", id: `scope-${scope}`, value: scope, checked: scope === "invoke" }));
  const endpoints = h("input", { id: "token-endpoints", placeholder: "all endpoints", autocomplete: "off" });
  const error = h("div", { class: "error", role: "alert" });
  const form = h("form", { class: "panel", "aria-labelledby": "create-token-title" },
    h("h2", { id: "create-token-title" }, "Create a token"),
    field("Name", name, { hint: "who or what will use it" }),
    h("fieldset", {}, h("legend", {}, "Scopes"),
      h("div", { class: "row" }, SCOPES.map((scope, i) => h("span", {}, boxes[i], h("label", { for: `scope-${scope}` }, ` ${scope}`))))),
    field("Endpoints", endpoints, { hint: "comma-separated names; empty for all" }),
    error,
    h("button", { type: "submit", class: "primary" }, "Create token"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    const limited = endpoints.value.split(",").map((s) => s.trim()).filter(Boolean);
    const request = { name: name.value.trim(), scopes: boxes.filter((b) => b.checked).map((b) => b.value) };
    if (limited.length) request.endpoints = limited;
    try {
      const created = await api("POST", "/v1/tokens", request);
      showOnce(shown, created);
      form.reset();
      boxes.forEach((box) => { box.checked = box.value === "invoke"; });
      await refresh();
    } catch (e) { error.textContent = e.message; }
  });
  return form;
}

/** The new token, this once: a read-only field and a copy button; gone when the page is left. */
function showOnce(shown, created) {
  const value = h("input", { id: "created-token", readonly: true, value: created.token, size: 60, "aria-label": "New token" });
  const copy = h("button", { type: "button", class: "small", onclick: async () => {
    try { await navigator.clipboard.writeText(created.token); toast("Token copied"); }
    catch { value.select(); toast("Select and copy the token (the clipboard is not available here)"); }
  } }, "Copy");
  fill(shown, h("div", { class: "banner ok", role: "status" },
    h("p", {}, `Token ${created.id} (${created.name}) created. Copy it now: it will not be shown again.`),
    h("div", { class: "row" }, value, copy,
      h("button", { type: "button", class: "small", onclick: () => fill(shown) }, "Done"))));
  value.select();
}

function row(t, refresh) {
  const revoke = t.revoked_at ? null : h("button", {
    type: "button", class: "small danger", "aria-label": `Revoke ${t.name}`, dataset: { key: `revoke:${t.id}` },
    onclick: async () => {
      if (!window.confirm(`Revoke token ${t.id} (${t.name})? Every request that sends it is refused from now on.`)) return;
      try { await api("DELETE", `/v1/tokens/${enc(t.id)}`); toast(`Revoked ${t.name}`); await refresh(); }
      catch (e) { toast(`Revoke failed: ${e.message}`); }
    },
  }, "Revoke");
  return h("tr", { "data-token": t.id },
    h("td", { "data-label": "ID" }, h("code", {}, t.id)),
    h("td", { "data-label": "Name" }, t.name),
    h("td", { "data-label": "Scopes" }, t.scopes.join(", ")),
    h("td", { "data-label": "Endpoints" }, t.endpoints ? t.endpoints.join(", ") : "all"),
    h("td", { "data-label": "Created" }, when(t.created_at)),
    h("td", { "data-label": "Last used" }, when(t.last_used_at)),
    h("td", { "data-label": "Revoked" }, when(t.revoked_at)),
    h("td", { class: "actions", "data-label": "Actions" }, revoke));
}

export async function renderAudit(main, _params, page) {
  const body = h("tbody");
  const status = h("p", { class: "muted", id: "audit-status", "aria-live": "polite" }, "Loading…");
  fill(main, h("h1", {}, "Audit log"),
    h("p", { class: "muted" }, "Every change (endpoints, jobs, tokens, SageMaker and /v2 mutations), newest first."),
    h("div", { class: "table-wrap" }, h("table", { class: "cards", "aria-describedby": "audit-status" },
      h("thead", {}, h("tr", {},
        h("th", {}, "Time"), h("th", {}, "Token"), h("th", {}, "Source"), h("th", {}, "Action"),
        h("th", {}, "Target"), h("th", { class: "num" }, "Status"), h("th", {}, "Request id"))),
      body)),
    status);
  const refresh = async () => {
    const { items } = await api("GET", "/v1/audit?limit=200");
    if (!page.alive()) return;
    fill(body, items.length ? items.map((e) => h("tr", { "data-audit": e.id },
      h("td", { "data-label": "Time" }, when(e.at)),
      h("td", { "data-label": "Token" }, e.token_name ? `${e.token_id} (${e.token_name})` : e.token_id),
      h("td", { "data-label": "Source" }, e.source || "–"),
      h("td", { "data-label": "Action" }, e.action || `${e.method} ${e.path}`),
      h("td", { "data-label": "Target" }, e.target || "–"),
      h("td", { class: "num", "data-label": "Status" }, String(e.status)),
      h("td", { "data-label": "Request id" }, h("code", {}, e.request_id)))) :
      h("tr", {}, h("td", { colspan: 7, class: "muted" }, "No changes recorded yet.")));
    status.textContent = `${items.length} entr${items.length === 1 ? "y" : "ies"} · refreshed ${new Date().toLocaleTimeString()}`;
  };
  await refresh();
  page.every(5000, refresh);
}
