// The endpoint spec form, shared by create (POST) and edit (PUT): fields, reading, and API errors beside fields.
import { api, enc } from "./api.js";
import { field, h } from "./dom.js";

let optionsCache = null;
export async function options() {
  optionsCache = optionsCache || (await api("GET", "/v1/console/options"));
  return optionsCache;
}

function select(name, values, selected, labels = {}) {
  return h("select", { name }, values.map((v) => h("option", { value: v, selected: String(v) === String(selected) }, labels[v] ?? v)));
}

function number(name, value, min, max) {
  return h("input", { name, type: "number", inputmode: "numeric", min, max, step: 1, value: value ?? "" });
}

/**
 * specForm({spec, editing}) -> {element, read, showErrors, clearErrors}
 * `spec` pre-fills the fields (a describe answer when editing); `editing` locks the name.
 */
export async function specForm({ spec = null, editing = false, idPrefix = "spec" } = {}) {
  const opts = await options();
  const s = spec || { model: {}, compute: { type: "serverless", ...opts.serverless_defaults }, env: {}, custom_code: false };
  const sl = s.compute.type === "serverless" ? s.compute : opts.serverless_defaults;
  const dd = s.compute.type === "dedicated" ? s.compute : opts.dedicated_defaults;
  const id = (key) => `${idPrefix}-${key.replace(/\./g, "-")}`;
  const control = (key, element) => { element.id = id(key); element.dataset.field = key; return element; };

  const name = control("name", h("input", { name: "name", value: s.name || "", required: true, autocomplete: "off", readonly: editing || null, pattern: "[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?" }));
  const source = control("model.source", h("input", { name: "source", value: s.model.source || "", required: true, placeholder: "/models/my-model or org/name", autocomplete: "off" }));
  const revision = control("model.revision", h("input", { name: "revision", value: s.model.revision || "", placeholder: "main", autocomplete: "off" }));
  const task = control("model.task", select("task", ["", ...opts.tasks], s.model.task || "", { "": "Infer from the model's config" }));
  const runtime = control("model.runtime", select("runtime", opts.runtimes, s.model.runtime || "torch"));
  const taskHint = h("p", { class: "hint", id: id("task-hint"), "aria-live": "polite" });

  const typeRadio = (value, label) => h("label", { class: "row" },
    h("input", { type: "radio", name: `${idPrefix}-compute-type`, value, checked: s.compute.type === value, onchange: syncCompute }), label);
  const memory = control("compute.memory_mb", select("memory_mb", opts.memory_sizes_mb, sl.memory_mb, Object.fromEntries(opts.memory_sizes_mb.map((m) => [m, `${m} MB`]))));
  const maxConcurrency = control("compute.max_concurrency", number("max_concurrency", sl.max_concurrency, 1, 200));
  const provisioned = control("compute.provisioned_concurrency", number("provisioned_concurrency", sl.provisioned_concurrency, 0, 200));
  const idle = control("compute.idle_timeout_s", number("idle_timeout_s", sl.idle_timeout_s, 1, 86400));
  const sizes = Object.keys(opts.instance_sizes);
  const instance = control("compute.instance", select("instance", sizes, dd.instance, Object.fromEntries(sizes.map((k) => {
    const v = opts.instance_sizes[k];
    return [k, `${k} (${v.vcpus} vCPU, ${v.memory_mb / 1024} GB${v.accelerator === "gpu" ? ", GPU" : ""})`];
  }))));
  const minReplicas = control("compute.min_replicas", number("min_replicas", dd.min_replicas, 0, 64));
  const maxReplicas = control("compute.max_replicas", number("max_replicas", dd.max_replicas, 1, 64));
  const target = control("compute.target_concurrency", number("target_concurrency", dd.target_concurrency, 1, 1000));
  const scaleToZero = control("compute.scale_to_zero_after_s", number("scale_to_zero_after_s", dd.scale_to_zero_after_s, 1, 86400));
  const customCode = control("custom_code", h("input", { type: "checkbox", name: "custom_code", checked: !!s.custom_code }));
  const env = control("env", h("textarea", { name: "env", rows: 3, placeholder: "KEY=value" },
    Object.entries(s.env || {}).map(([k, v]) => `${k}=${v}`).join("\n")));

  const serverless = h("div", { class: "grid2", "data-compute": "serverless" },
    field("Memory size", memory, { errorFor: "compute.memory_mb", hint: "vCPUs follow memory" }),
    field("Max concurrency", maxConcurrency, { errorFor: "compute.max_concurrency", hint: "1–200" }),
    field("Provisioned concurrency", provisioned, { errorFor: "compute.provisioned_concurrency", hint: "warm slots, 0–max" }),
    field("Idle timeout (s)", idle, { errorFor: "compute.idle_timeout_s", hint: "then scale to zero" }));
  const dedicated = h("div", { class: "grid2", "data-compute": "dedicated" },
    field("Instance size", instance, { errorFor: "compute.instance" }),
    field("Target concurrency per replica", target, { errorFor: "compute.target_concurrency" }),
    field("Min replicas", minReplicas, { errorFor: "compute.min_replicas", hint: "0 allows scale to zero" }),
    field("Max replicas", maxReplicas, { errorFor: "compute.max_replicas" }),
    field("Scale to zero after (s)", scaleToZero, { errorFor: "compute.scale_to_zero_after_s", hint: "with min replicas 0" }));
  const summary = h("div", { class: "banner bad", role: "alert", hidden: true });

  const element = h("div", { class: "spec-form" },
    summary,
    h("fieldset", {}, h("legend", {}, "Endpoint and model"),
      h("div", { class: "grid2" },
        field("Name", name, { errorFor: "name", hint: "lowercase letters, digits and -" }),
        field("Model source", source, { errorFor: "model.source", hint: "local folder or Hub repo id" }),
        field("Revision", revision, { errorFor: "model.revision", hint: "Hub only: branch, tag or commit" }),
        h("div", {}, field("Task", task, { errorFor: "model.task" }), taskHint),
        field("Runtime", runtime, { errorFor: "model.runtime" }))),
    h("fieldset", { "data-error-slot": "compute" }, h("legend", {}, "Compute"),
      h("div", { class: "row", role: "radiogroup", "aria-label": "Compute type" },
        typeRadio("serverless", "Serverless (scale to zero, sized by memory)"), typeRadio("dedicated", "Dedicated (always-on replicas)")),
      h("div", { class: "error", "data-error-for": "compute" }),
      serverless, dedicated),
    h("fieldset", {}, h("legend", {}, "Code and environment"),
      h("div", { class: "field inline" }, customCode, h("label", { for: customCode.id }, "Run custom code from the model folder (handler.py / code/inference.py)")),
      h("div", { class: "error", "data-error-for": "custom_code" }),
      field("Environment variables", env, { errorFor: "env", hint: "one KEY=value a line" })));

  function computeType() { return element.querySelector(`input[name="${idPrefix}-compute-type"]:checked`)?.value || "serverless"; }
  function syncCompute() {
    const type = computeType();
    serverless.hidden = type !== "serverless";
    dedicated.hidden = type !== "dedicated";
  }
  syncCompute();

  // Pre-fill the task from the model's config while the user has not picked one.
  let userPicked = !!s.model.task && editing;
  task.addEventListener("change", () => { userPicked = task.value !== ""; });
  let timer = null;
  const inferTask = async () => {
    const value = source.value.trim();
    if (!value) { taskHint.textContent = ""; return; }
    try {
      const answer = await api("GET", `/v1/console/infer-task?source=${enc(value)}${revision.value ? `&revision=${enc(revision.value)}` : ""}`);
      if (answer.task) {
        taskHint.textContent = `From the model's config: ${answer.task}`;
        if (!userPicked) task.value = answer.task;
      } else {
        taskHint.textContent = answer.message ? `Could not infer the task: ${answer.message}` : "";
      }
    } catch (error) { taskHint.textContent = error.message; }
  };
  source.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(inferTask, 400); });
  source.addEventListener("change", inferTask);
  if (!editing && s.model.source) inferTask();

  const int = (input) => (input.value.trim() === "" ? undefined : Number(input.value));

  function read() {
    const spec = { name: name.value.trim(), model: { source: source.value.trim(), runtime: runtime.value }, custom_code: customCode.checked };
    if (revision.value.trim()) spec.model.revision = revision.value.trim();
    if (task.value) spec.model.task = task.value;
    if (computeType() === "serverless") {
      spec.compute = { type: "serverless", memory_mb: Number(memory.value), max_concurrency: int(maxConcurrency),
        provisioned_concurrency: int(provisioned), idle_timeout_s: int(idle) };
    } else {
      spec.compute = { type: "dedicated", instance: instance.value, min_replicas: int(minReplicas), max_replicas: int(maxReplicas),
        target_concurrency: int(target), scale_to_zero_after_s: int(scaleToZero) };
    }
    spec.env = {};
    for (const line of env.value.split("\n")) {
      if (!line.trim()) continue;
      const at = line.indexOf("=");
      spec.env[(at < 0 ? line : line.slice(0, at)).trim()] = at < 0 ? "" : line.slice(at + 1);
    }
    if (editing && spec.compute && s.batching) spec.batching = s.batching; // fields the form has no controls for
    if (editing && s.async_inference) spec.async_inference = s.async_inference;
    if (editing && s.access) spec.access = s.access;
    if (editing && s.model.dtype) spec.model.dtype = s.model.dtype;
    return JSON.parse(JSON.stringify(spec)); // drops undefined: the server's defaults apply
  }

  function clearErrors() {
    summary.hidden = true;
    element.querySelectorAll(".error[data-error-for]").forEach((e) => { e.textContent = ""; });
    element.querySelectorAll("[aria-invalid]").forEach((e) => e.removeAttribute("aria-invalid"));
  }

  /** 422 details [{field, message}] beside their fields (the longest matching prefix); the rest in the summary. */
  function showErrors(error) {
    clearErrors();
    const leftover = [];
    for (const detail of error.details || []) {
      const slot = findSlot(detail.field);
      if (!slot) { leftover.push(`${detail.field}: ${detail.message}`); continue; }
      slot.textContent = slot.textContent ? `${slot.textContent}; ${detail.message}` : detail.message;
      element.querySelector(`[data-field="${CSS.escape(slot.dataset.errorFor)}"]`)?.setAttribute("aria-invalid", "true");
    }
    if (!(error.details || []).length) leftover.push(error.message);
    if (leftover.length) { summary.hidden = false; summary.textContent = leftover.join("\n"); }
    (element.querySelector("[aria-invalid]") || summary).focus?.();
  }

  function findSlot(fieldName) {
    const parts = String(fieldName || "").split(".");
    for (let n = parts.length; n > 0; n--) {
      const slot = element.querySelector(`.error[data-error-for="${CSS.escape(parts.slice(0, n).join("."))}"]`);
      if (slot) return slot;
    }
    return null;
  }

  summary.tabIndex = -1;
  return { element, read, showErrors, clearErrors };
}
