// Create form: POST /v1/endpoints; on success go to the list where the endpoint moves through its states.
import { api } from "../api.js";
import { fill, h, toast } from "../dom.js";
import { specForm } from "../specform.js";

export async function renderCreate(main) {
  const form = await specForm({ idPrefix: "create" });
  const submit = h("button", { type: "submit", class: "primary" }, "Create endpoint");
  const element = h("form", { class: "panel", novalidate: true, "aria-labelledby": "create-title" },
    h("h1", { id: "create-title" }, "Create an endpoint"), form.element,
    h("div", { class: "row" }, submit, h("a", { href: "#/" }, "Cancel")));
  element.addEventListener("submit", async (event) => {
    event.preventDefault();
    submit.disabled = true;
    form.clearErrors();
    try {
      const created = await api("POST", "/v1/endpoints", form.read());
      toast(`Created ${created.name}: ${created.state}`);
      location.hash = "#/";
    } catch (error) {
      form.showErrors(error);
    } finally {
      submit.disabled = false;
    }
  });
  fill(main, element);
  element.querySelector("input")?.focus();
}
