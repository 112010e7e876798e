// Playground: a form fitted to the endpoint's task, the answer shown readably and raw, the timing
// headers, and the same request as curl / Python / `hubserve invoke` to copy. Text generation streams:
// the text grows token by token as the server-sent events arrive, with the time to the first token.
// A multi-model endpoint gets a model picker: the run goes to /endpoints/NAME/models/MODEL.
import { api, enc, invocationPath, invoke, invokeStream } from "../api.js";
import { fill, h, ms } from "../dom.js";
import { taskInputs, taskResult } from "../tasks.js";
import { modelNames } from "./endpoint_models.js";

export async function renderPlayground(main, [name]) {
  const e = await api("GET", `/v1/endpoints/${enc(name)}`);
  const task = e.model.task || "text-classification";
  const inputs = taskInputs(task);
  const run = h("button", { type: "submit", class: "primary" }, "Run");
  const meta = h("div", { class: "row", id: "pg-meta", "aria-live": "polite" });
  const readable = h("div", { id: "pg-result" });
  const raw = h("pre", { id: "pg-raw", tabindex: 0, "aria-label": "Raw JSON answer" }, "(run the model to see its answer)");
  const snippets = h("div", { id: "pg-snippets" });
  const picker = e.model.multi_model ? await modelPicker(name) : null;
  const chosen = () => (picker ? picker.select.value || null : null);
  const form = h("form", { class: "panel", "aria-label": `Try ${name}` }, h("h2", {}, `Input (${task})`),
    picker && picker.element, inputs.element, run);

  const showSnippets = () => fill(snippets, snippetTabs(name, inputs.body(), chosen()));
  form.addEventListener("input", showSnippets);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    run.disabled = true;
    fill(meta, h("span", { class: "muted" }, "Running… (a scaled-to-zero endpoint starts a replica first)"));
    try {
      if (inputs.streams && inputs.streams()) {
        await runStream(name, inputs.body(), { meta, readable, raw }, chosen());
        return;
      }
      const answer = await invoke(name, inputs.body(), { model: chosen() });
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

/** The model a multi-model endpoint's run goes to: a select of the models in its folder now. */
async function modelPicker(name) {
  const names = await modelNames(name);
  const select = h("select", { id: "pg-model", required: true },
    names.map((model) => h("option", { value: model }, model)));
  const hint = names.length ? "each model loads on its first call" : "no models in the endpoint's folder yet";
  const element = h("div", { class: "field" }, h("label", { for: "pg-model" }, "Model", h("span", { class: "hint" }, ` — ${hint}`)), select);
  return { element, select };
}

const num = (value) => (value === null ? null : Number(value));
const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

/** A streamed run: the text grows as each token's event arrives; TTFT shows as soon as the first one does. */
async function runStream(name, body, { meta, readable, raw }, model) {
  const text = h("blockquote", { class: "answer-text", id: "pg-stream", "aria-live": "polite" });
  const ttft = h("span", { class: "pill", id: "pg-ttft" }, "first token …");
  const count = h("span", { class: "pill", id: "pg-tokens" }, "0 tokens");
  fill(readable, text);
  fill(meta, h("span", { class: "pill", id: "pg-streaming" }, "streaming"), ttft, count);
  fill(raw, "");
  const started = performance.now();
  let first = null, tokens = 0, last = null;
  const answer = await invokeStream(name, body, ({ data }) => {
    const now = performance.now();
    if (first === null) { first = now - started; ttft.textContent = `first token ${ms(first)}`; }
    tokens += 1;
    count.textContent = plural(tokens, "token");
    const token = data && typeof data === "object" ? data.token : null;
    text.append(token ? (token.special ? "" : token.text) : typeof data === "string" ? data : "");
    raw.append(`${JSON.stringify(data)}\n`);
    last = data;
  }, { model });
  const total = performance.now() - started;
  const made = last && typeof last === "object" && last.details && last.details.generated_tokens;
  if (Number.isInteger(made)) { tokens = made; count.textContent = plural(tokens, "token"); } // the last event may carry only the summary
  if (!answer.streamed) { // refused before the stream: the error as JSON, as a plain run shows it
    fill(meta, h("span", { class: "pill cold", "data-status": answer.status }, `HTTP ${answer.status}`));
    fill(raw, answer.json !== null ? JSON.stringify(answer.json, null, 2) : answer.text);
    fill(readable, h("div", { class: "banner bad", role: "alert" }, (answer.json && answer.json.error && answer.json.error.message) || answer.text));
    return;
  }
  const decoding = first !== null && tokens > 1 ? (tokens - 1) / ((total - first) / 1000) : null;
  fill(meta,
    h("span", { class: `pill${answer.ok ? "" : " cold"}`, "data-status": answer.status }, answer.ok ? `HTTP ${answer.status}` : "failed mid-stream"),
    ttft, count,
    h("span", { class: "pill", id: "pg-rate" }, decoding === null ? "– tokens/s" : `${decoding.toFixed(1)} tokens/s`),
    h("span", { class: "pill" }, `round trip ${ms(total)}`),
    h("span", { class: `pill${answer.coldStart === "true" ? " cold" : ""}`, id: "pg-cold" }, answer.coldStart === "true" ? "cold start" : "warm"));
  if (last && typeof last === "object" && typeof last.generated_text === "string") text.dataset.done = "true";
  if (answer.error) {
    const message = (answer.error.error && answer.error.error.message) || answer.error.error || JSON.stringify(answer.error);
    readable.append(h("div", { class: "banner bad", role: "alert" }, `The stream failed: ${message}`));
  }
}

function snippetTabs(name, body, model = null) {
  const url = `${location.origin}${invocationPath(name, model)}`;
  const target = model ? `, target_model=${pyLiteral(model)}` : "";
  const cliModel = model ? ` --target-model '${model.replace(/'/g, "'\\''")}'` : "";
  const json = JSON.stringify(body);
  const shell = `'${json.replace(/'/g, "'\\''")}'`;
  if (body.stream) {
    const { stream, ...plain } = body;
    const cli = `'${JSON.stringify(plain).replace(/'/g, "'\\''")}'`;
    return tabbed({
      curl: `curl -N ${url} \\\n  -H 'Content-Type: application/json' \\\n  -d ${shell}`,
      Python: `from hubserve import Client\n\nclient = Client(url="${location.origin}")\nfor event in client.stream("${name}", ${pyLiteral(plain)}${target}):\n    print(event.text, end="", flush=True)\nprint()`,
      "hubserve invoke": `hubserve invoke ${name} ${cli} --url ${location.origin} --stream${cliModel}`,
    });
  }
  return tabbed({
    curl: `curl -s ${url} \\\n  -H 'Content-Type: application/json' \\\n  -d ${shell} -i`,
    Python: `from hubserve import Client\n\nclient = Client(url="${location.origin}")  # invocations need no token\nanswer = client.invoke("${name}", ${pyLiteral(body)}${target})\nprint(answer.body, answer.model_latency_ms, answer.cold_start)`,
    "hubserve invoke": `hubserve invoke ${name} ${shell} --url ${location.origin} -v${cliModel}`,
  });
}

/** Snippet tabs (each names the chosen model of a multi-model endpoint). */
function tabbed(snippets) {
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
