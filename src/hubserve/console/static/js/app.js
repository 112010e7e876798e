// The console's shell: sign-in, hash routing, and timers that stop when the page changes.
import { api, token, whenUnauthorized } from "./api.js";
import { fill, h } from "./dom.js";
import { renderList } from "./pages/list.js";
import { renderCreate } from "./pages/create.js";
import { renderEndpoint } from "./pages/endpoint.js";
import { renderPlayground } from "./pages/playground.js";
import { renderAudit, renderTokens } from "./pages/tokens.js";
import { renderModels } from "./pages/models.js";

const ROUTES = [
  [/^#?\/?$/, renderList],
  [/^#\/create$/, renderCreate],
  [/^#\/tokens$/, renderTokens],
  [/^#\/models$/, renderModels],
  [/^#\/audit$/, renderAudit],
  [/^#\/endpoints\/([a-z0-9-]+)\/playground$/, renderPlayground],
  [/^#\/endpoints\/([a-z0-9-]+)$/, renderEndpoint],
];

const main = document.getElementById("main");
// Whether the server asks for a token at all: without one there is nothing to sign out of.
const serverConfig = fetch("/console/config").then((r) => (r.ok ? r.json() : { auth_required: true }))
  .catch(() => ({ auth_required: true }));
let timers = [];
let generation = 0;

/** What a page gets: timers tied to it, and whether it is still the page on screen. */
function pageContext(mine) {
  return {
    every(intervalMs, fn) {
      const tick = async () => { if (mine === generation) { try { await fn(); } catch (e) { console.warn(e); } } };
      timers.push(setInterval(tick, intervalMs));
    },
    alive: () => mine === generation,
  };
}

function leavePage() {
  timers.forEach(clearInterval);
  timers = [];
  return ++generation;
}

async function route() {
  const mine = leavePage();
  if (!(await signedIn())) return renderLogin();
  document.getElementById("logout").hidden = !(await serverConfig).auth_required;
  document.getElementById("nav").hidden = false;
  const hash = location.hash || "#/";
  for (const link of document.querySelectorAll("#nav a")) {
    link.toggleAttribute("aria-current", link.getAttribute("href") === hash);
    if (link.hasAttribute("aria-current")) link.setAttribute("aria-current", "page");
  }
  for (const [pattern, render] of ROUTES) {
    const match = hash.match(pattern);
    if (match) {
      fill(main);
      try { await render(main, match.slice(1), pageContext(mine)); }
      catch (error) { if (mine === generation) fill(main, h("div", { class: "banner bad", role: "alert" }, error.message)); }
      return;
    }
  }
  fill(main, h("h1", {}, "Not found"), h("p", {}, h("a", { href: "#/" }, "Back to the endpoints")));
}

let checked = false;
async function signedIn() {
  if (checked) return true;
  try { await api("GET", "/v1/console/options"); checked = true; return true; }
  catch (error) { if (error.status === 401) return false; throw error; }
}

function renderLogin(message) {
  document.getElementById("nav").hidden = true;
  const input = h("input", { id: "token", type: "password", autocomplete: "current-password", required: true });
  const error = h("div", { class: "error", role: "alert" }, message || "");
  const form = h("form", { class: "panel login", "aria-labelledby": "login-title" },
    h("h1", { id: "login-title" }, "Sign in to hubserve"),
    h("p", { class: "muted" }, "Paste the server's management token (", h("code", {}, "hubserve serve --token"),
      " or HUBSERVE_TOKEN). It is kept in this tab's session storage only."),
    h("div", { class: "field" }, h("label", { for: "token" }, "Token"), input),
    error,
    h("button", { type: "submit", class: "primary" }, "Sign in"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    token.set(input.value.trim());
    checked = false;
    try {
      if (await signedIn()) return route();
      error.textContent = "That token was refused (401).";
    } catch (e) { error.textContent = e.message; }
    token.clear();
  });
  fill(main, form);
  input.focus();
}

whenUnauthorized(() => { leavePage(); checked = false; token.clear(); renderLogin("Your token was refused; sign in again."); });
document.getElementById("logout").addEventListener("click", () => { leavePage(); token.clear(); checked = false; renderLogin(); });
window.addEventListener("hashchange", () => { route(); main.focus(); });
route();
