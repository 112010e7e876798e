// Endpoint actions shared by the list and the endpoint page: pause, resume, scale to zero, delete.
import { api, enc } from "../api.js";
import { h, toast } from "../dom.js";

/** Buttons fitting the endpoint's state; `after(action)` runs once the API accepted it. */
export function actionButtons(e, after) {
  const name = e.name;
  const button = (label, run, { danger = false, confirmText } = {}) => h("button", {
    type: "button", class: `small${danger ? " danger" : ""}`, dataset: { key: `${name}:${label}` }, "aria-label": `${label} ${name}`,
    onclick: async () => {
      if (confirmText && !window.confirm(confirmText)) return;
      try { await run(); toast(`${label}: ${name}`); after(label); } catch (error) { toast(`${label} failed: ${error.message}`); }
    },
  }, label);
  const post = (path) => () => api("POST", `/v1/endpoints/${enc(name)}/${path}`);
  const paused = e.state === "paused" || e.state === "pausing"; // pausing: resuming at once is fine
  return [
    paused || e.state === "failed" ? button("Resume", post("resume")) : button("Pause", post("pause")),
    !paused && e.state !== "scaledToZero" && e.state !== "failed" ? button("Scale to zero", post("scale-to-zero")) : null,
    button("Delete", () => api("DELETE", `/v1/endpoints/${enc(name)}`), {
      danger: true, confirmText: `Delete endpoint ${name}? Its replicas stop and its spec is removed.` }),
  ];
}
