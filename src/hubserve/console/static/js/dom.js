// Tiny DOM helpers: build elements without innerHTML (no escaping mistakes), format numbers.

/** h("div", {class: "x", onclick: fn}, child, "text", [children]) -> Element */
export function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") element.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(element.dataset, value);
    else if (key === "value" || key === "checked") element[key] = value;
    else element.setAttribute(key, value === true ? "" : String(value));
  }
  append(element, children);
  return element;
}

function append(parent, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(parent, child);
    else parent.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replace an element's children. */
export function fill(element, ...children) {
  element.replaceChildren();
  append(element, children);
  return element;
}

let fieldCounter = 0;
/** A labelled control: <div class=field><label for>..</label>control<div class=error></div></div>. */
export function field(label, control, { hint, errorFor } = {}) {
  const id = control.id || `f${++fieldCounter}`;
  control.id = id;
  const error = h("div", { class: "error", id: `${id}-error`, "data-error-for": errorFor || "" });
  control.setAttribute("aria-describedby", `${id}-error`);
  return h("div", { class: "field" }, h("label", { for: id }, label, hint ? h("span", { class: "hint" }, ` — ${hint}`) : null), control, error);
}

export function fmt(value, digits = 1) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  return Number(value).toLocaleString("en-US", { maximumFractionDigits: digits });
}

export function ms(value) { return value === null || value === undefined ? "–" : `${fmt(value, value < 10 ? 2 : 1)} ms`; }

// An amount of money to the cent, as `hubserve cost` prints it (cost/money.py): a trace under half a cent is "<$0.01".
export function usd(value) {
  if (value === null || value === undefined) return "–";
  if (value !== 0 && Math.abs(value) < 0.005) return value > 0 ? "<$0.01" : "-<$0.01";
  const cents = Math.abs(value).toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  return `${value < 0 ? "-" : ""}$${cents}`;
}

export function toast(message) {
  const box = document.getElementById("toast");
  const item = h("div", {}, message);
  box.append(item);
  setTimeout(() => item.remove(), 4000);
}

/** A state badge; failed states carry their reason in an expandable <details>. */
export function stateBadge(state, reason) {
  const badge = h("span", { class: `state ${state}`, title: reason || state }, state);
  if (!reason) return badge;
  return h("div", {}, badge, h("details", { class: "reason" }, h("summary", {}, "why"), h("p", {}, reason)));
}
