// Playground: a form fitted to the endpoint's task, the answer shown readably and raw, the timing
// headers, and the same request as curl / Python / `hubserve invoke` to copy.
import { api, enc, invoke } from "../api.js";
import { fill, h, ms } from "../dom.js";
import { taskInputs, taskResult } from "../tasks.js";

export async function renderPlayground(main, [name]) {
  const e = await api("GET", `/v1/endpoints/${enc(name)}`);
  const task = e.model.task || "text-classification";
  const inputs = taskInputs(task);
  const run = h("button", { type: "submit", class: "primary" }, "Run");
  const meta = h("div", { class: "row", id: "pg-meta", "aria-live": "polite" });
  const readable = h("div", { id: "pg-result" });
  const raw = h("pre", { id: "pg-raw", tabindex: 0, "aria-label": "Raw JSON answer" }, "(run the model to see its answer)");
  const snippets = h("div", { id: "pg-snippets" });
  const form = h("form", { class: "panel", "aria-label": `Try ${name}` }, h("h2", {}, `Input (${task})`), inputs.element, run);

  const showSnippets = () => fill(snippets, snippetTabs(name, inputs.body()));
  form.addEventListener("input", showSnippets);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    run.disabled = true;
    fill(meta, h("span", { class: "muted" }, "Running… (a scaled-to-zero endpoint starts a replica first)"));
    try {
      const answer = await invoke(name, inputs.body());
      fill(meta,
        h("span", { class: `pill${answer.ok ? "" : " cold"}`, "data-status": answer.status }, `HTTP ${answer.status}`),
        h("span", { class: "pill" }, `model ${ms(num(answer.modelMs))}`),
        h("span", { class: "pill" }, `overhead ${ms(num(answer.overheadMs))}`),
        h("span", { class: "pill" }, `round trip ${ms(answer.clientMs)}`),
        h("span", { class: `pill${answer.coldStart === "true" ? " cold" : ""}`, id: "pg-cold" }, answer.coldStart === "true" ? "cold start" : "warm"));
      fill(raw, answer.json !== null ? JSON.stringify(answer.json, null, 2) : answer.text);
      const view = answer.ok && answer.json !== null ? taskResult(task, answer.json, inputs) : null;
      fill(readable, view || (answer.ok ? "" : h("div", { class: "banner bad", role: "alert" }, (answer.json && answer.json.error && answer.json.error.message) || answer.text)));
    } catch (error) {
      fill(meta, h("span", { class: "error" }, error.message));
    } finally { run.disabled = false; }
  });

  fill(main,
    h("p", {}, h("a", { href: `#/endpoints/${name}` }, `← ${name}`)),
    h("h1", {}, `Playground: ${name}`),
    h("p", { class: "muted" }, `${task} · ${e.model.source} · state ${e.state}`),
    h("div", { class: "grid2" }, form,
      h("section", { class: "panel", "aria-labelledby": "pg-out" }, h("h2", { id: "pg-out" }, "Result"), meta, h("div", { style: "height:8px" }), readable,
        h("h3", { style: "margin-top:12px" }, "Raw JSON"), raw)),
    h("section", { class: "panel", "aria-labelledby": "pg-code" }, h("h2", { id: "pg-code" }, "The same request in code"), snippets));
  showSnippets();
  main.querySelector("textarea, input")?.focus();
}

const num = (value) => (value === null ? null : Number(value));

function snippetTabs(name, body) {
  const url = `${location.origin}/endpoints/${name}`;
  const json = JSON.stringify(body);
  const shell = `'${json.replace(/'/g, "'\\''")}'`;
  const snippets = {
    curl: `curl -s ${url} \\\n  -H 'Content-Type: application/json' \\\n  -d ${shell} -i`,
    Python: `from hubserve import Client\n\nclient = Client(url="${location.origin}")  # invocations need no token\nanswer = client.invoke("${name}", ${pyLiteral(body)})\nprint(answer.body, answer.model_latency_ms, answer.cold_start)`,
    "hubserve invoke": `hubserve invoke ${name} ${shell} --url ${location.origin} -v`,
  };
  const panel = h("div", {});
  const tabs = h("div", { class: "tabs", role: "tablist", "aria-label": "Snippet language" });
  const show = (key) => {
    tabs.querySelectorAll("button").forEach((b) => b.setAttribute("aria-selected", String(b.dataset.key === key)));
    const code = h("pre", { tabindex: 0, "data-snippet": key }, snippets[key]);
    const copy = h("button", { type: "button", class: "small", onclick: async () => {
      try { await navigator.clipboard.writeText(snippets[key]); copy.textContent = "Copied"; }
      catch { getSelection().selectAllChildren(code); copy.textContent = "Selected: press Ctrl+C"; }
    } }, `Copy ${key}`);
    fill(panel, code, h("div", { style: "margin-top:6px" }, copy));
  };
  for (const key of Object.keys(snippets)) {
    tabs.append(h("button", { type: "button", role: "tab", dataset: { key }, onclick: () => show(key) }, key));
  }
  show("curl");
  return [tabs, panel];
}

/** JSON as a Python literal (true/false/null spelled the Python way). */
function pyLiteral(value) {
  if (value === null) return "None";
  if (value === true) return "True";
  if (value === false) return "False";
  if (Array.isArray(value)) return `[${value.map(pyLiteral).join(", ")}]`;
  if (typeof value === "object") return `{${Object.entries(value).map(([k, v]) => `${JSON.stringify(k)}: ${pyLiteral(v)}`).join(", ")}}`;
  return JSON.stringify(value);
}
