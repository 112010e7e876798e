// Per-task playground inputs (controls -> request body) and result views (answer -> readable elements).
import { fill, h } from "./dom.js";

let n = 0;
const uid = (key) => `pg-${key}-${++n}`;

function control(label, element, hint) {
  element.id = element.id || uid(element.name || "f");
  return h("div", { class: "field" }, h("label", { for: element.id }, label, hint ? h("span", { class: "hint" }, ` — ${hint}`) : null), element);
}
const text = (name, value, rows = 3) => h("textarea", { name, rows }, value);
const line = (name, value, extra = {}) => h("input", { name, value, autocomplete: "off", ...extra });
const int = (name, value, min = 1, max = 100) => h("input", { name, type: "number", min, max, step: 1, value });
const optional = (params, key, input) => { if (input.value.trim() !== "") params[key] = Number(input.value); };

/** Inputs for one task: {element, body()} where body() builds the request JSON. */
export function taskInputs(task) {
  if (task === "question-answering") {
    const q = line("question", "Where does Clara live?");
    const c = text("context", "My name is Clara and I live in Berkeley.", 4);
    const k = int("top_k", "");
    return { element: h("div", {}, control("Question", q), control("Context", c), control("top_k", k, "optional")),
      body: () => { const p = {}; optional(p, "top_k", k); return withParams({ inputs: { question: q.value, context: c.value } }, p); },
      context: () => c.value };
  }
  if (task === "fill-mask") {
    const t = line("masked", "Paris is the [MASK] of France.");
    const k = int("top_k", 5);
    return { element: h("div", {}, control("Masked sentence", t, "[MASK] for BERT models, <mask> for RoBERTa"), control("top_k", k)),
      body: () => { const p = {}; optional(p, "top_k", k); return withParams({ inputs: t.value }, p); } };
  }
  if (task === "zero-shot-classification") {
    const t = text("text", "I want to book a flight to Lisbon next week.");
    const labels = line("candidate_labels", "travel, cooking, sport");
    const multi = h("input", { type: "checkbox", name: "multi_label", id: uid("multi") });
    return { element: h("div", {}, control("Text", t), control("Candidate labels", labels, "comma-separated"),
      h("div", { class: "field inline" }, multi, h("label", { for: multi.id }, "Several labels may be true (multi_label)"))),
      body: () => ({ inputs: t.value, parameters: { candidate_labels: labels.value.split(",").map((s) => s.trim()).filter(Boolean), multi_label: multi.checked } }) };
  }
  if (task === "token-classification") {
    const t = text("text", "My name is Sarah and I live in London.");
    const agg = h("select", { name: "aggregation_strategy" }, ["simple", "none", "first", "average", "max"].map((v) => h("option", { value: v }, v)));
    return { element: h("div", {}, control("Text", t), control("Aggregation strategy", agg)),
      body: () => withParams({ inputs: t.value }, agg.value === "none" ? {} : { aggregation_strategy: agg.value }), context: () => t.value };
  }
  if (task === "sentence-similarity") {
    const s = line("source_sentence", "A cat sits on the mat.");
    const others = text("sentences", "A cat is on the mat.\nA dog plays outside.\nThe sky is blue.");
    return { element: h("div", {}, control("Source sentence", s), control("Sentences to compare", others, "one a line")),
      body: () => ({ inputs: { source_sentence: s.value, sentences: others.value.split("\n").map((x) => x.trim()).filter(Boolean) } }),
      sentences: () => others.value.split("\n").map((x) => x.trim()).filter(Boolean) };
  }
  if (task === "text-generation") {
    // Streamed by default: the text appears token by token, with the time to the first one.
    const t = text("text", "Once upon a time", 4);
    const max = int("max_new_tokens", 20, 1, 2048);
    const stream = h("input", { type: "checkbox", name: "stream", id: uid("stream"), checked: true });
    return { element: h("div", {}, control("Text", t), control("max_new_tokens", max),
      h("div", { class: "field inline" }, stream, h("label", { for: stream.id }, "Stream tokens as they are made"))),
      body: () => {
        const p = {}; optional(p, "max_new_tokens", max);
        const body = withParams({ inputs: t.value }, p);
        return stream.checked ? { ...body, stream: true } : body;
      },
      streams: () => stream.checked };
  }
  if (["summarization", "translation", "text2text-generation"].includes(task)) {
    const t = text("text", "The tower is 324 metres tall, about the same height as an 81-storey building.", 4);
    const max = int("max_new_tokens", 20, 1, 2048);
    return { element: h("div", {}, control("Text", t), control("max_new_tokens", max)),
      body: () => { const p = {}; optional(p, "max_new_tokens", max); return withParams({ inputs: t.value }, p); } };
  }
  // text-classification, feature-extraction, sentence-embeddings and anything else: one text box.
  const t = text("text", "I love this movie, the acting is wonderful.");
  const k = task === "text-classification" ? int("top_k", "") : null;
  return { element: h("div", {}, control("Text", t), k ? control("top_k", k, "optional: how many labels") : null),
    body: () => { const p = {}; if (k) optional(p, "top_k", k); return withParams({ inputs: t.value }, p); } };
}

function withParams(body, params) { return Object.keys(params).length ? { ...body, parameters: params } : body; }

/** A readable view of an answer for `task`; falls back to nothing (the raw JSON is always shown). */
export function taskResult(task, answer, inputs) {
  try {
    if (task === "text-classification") return bars(flat(answer).map((x) => [x.label, x.score]));
    if (task === "fill-mask") return bars(flat(answer).map((x) => [x.token_str, x.score]));
    if (task === "zero-shot-classification") { const a = Array.isArray(answer) ? answer[0] : answer; return bars(a.labels.map((l, i) => [l, a.scores[i]])); }
    if (task === "question-answering") { const a = Array.isArray(answer) ? answer[0] : answer; return span(inputs.context(), [{ start: a.start, end: a.end, tag: `answer ${pct(a.score)}` }], `Answer: ${a.answer}`); }
    if (task === "token-classification") {
      const entities = flat(answer).filter((x) => Number.isInteger(x.start));
      return span(inputs.context(), entities.map((x) => ({ start: x.start, end: x.end, tag: `${x.entity_group || x.entity} ${pct(x.score)}` })), `${entities.length} entities`);
    }
    if (task === "sentence-similarity") return bars(inputs.sentences().map((s, i) => [s, answer.similarities[i]]));
    if (task === "sentence-embeddings" || task === "feature-extraction") {
      const vector = answer.embeddings || answer;
      const dims = []; let v = vector; while (Array.isArray(v)) { dims.push(v.length); v = v[0]; }
      return h("p", {}, `A tensor of shape [${dims.join(" × ")}]`);
    }
    const first = flat(answer)[0] || {};
    const key = Object.keys(first).find((k) => k.endsWith("_text"));
    if (key) return h("blockquote", { class: "answer-text" }, first[key]);
  } catch (error) { return h("p", { class: "muted" }, `No readable view for this answer (${error.message}); see the raw JSON.`); }
  return null;
}

const flat = (answer) => (Array.isArray(answer) && Array.isArray(answer[0]) ? answer[0] : Array.isArray(answer) ? answer : [answer]);
const pct = (score) => `${(100 * score).toFixed(1)}%`;

function bars(rows) {
  return h("div", { class: "bars", role: "list", "aria-label": "Scores" }, rows.map(([label, score]) => h("div", { class: "bar", role: "listitem" },
    h("span", { title: label }, label), h("div", { class: "track", "aria-hidden": "true" }, h("div", { class: "fill", style: `width: ${Math.max(0, Math.min(100, 100 * score)).toFixed(1)}%` })),
    h("span", { class: "score" }, pct(score)))));
}

/** The input text with [start, end) spans highlighted as <mark>s. */
function span(textValue, spans, caption) {
  const out = h("p", { class: "answer-text" });
  let at = 0;
  for (const s of [...spans].sort((a, b) => a.start - b.start)) {
    if (s.start < at) continue;
    out.append(textValue.slice(at, s.start), h("mark", {}, textValue.slice(s.start, s.end), h("span", { class: "tag" }, s.tag)));
    at = s.end;
  }
  out.append(textValue.slice(at));
  return fill(h("div", {}), h("p", {}, h("strong", {}, caption)), out);
}
