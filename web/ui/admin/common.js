// What every admin page shares: the admin-only guard, the admin sub-navigation, labelled fields,
// inline error lines, copyable one-time values (links, tokens), the confirm step, JSON textareas
// and the capacity-per-group inputs (agents and teams).
import { h } from "../lib/dom.js";
import { t } from "../lib/i18n.js";
import { toast } from "../lib/toast.js";

export const PAGES = ["channels", "agents", "teams", "rules", "canned"];

// The groups of channel kinds a capacity is set for (connectors.CAPACITY_GROUPS on the server).
export const GROUPS = ["email", "chat", "messaging"];

// The view for an agent who is not an admin (the API refuses them too).
export function notAllowed() {
  return { node: h("section", { id: "admin-denied" },
    h("h1", { class: "view-title" }, t("admin.denied_title")),
    h("p", { class: "empty", role: "alert" }, t("admin.denied"))) };
}

// An admin page: its sub-navigation, a heading and the content.
export function page(current, title, ...content) {
  const nav = h("nav", { class: "admin-nav", "aria-label": t("admin.nav_label") },
    PAGES.map((name) => h("a", { href: `#/admin/${name}`, class: "admin-tab",
      "aria-current": name === current ? "page" : "false" }, t(`admin.${name}`))));
  return h("section", { class: "admin", id: `admin-${current}` }, nav,
    h("h1", { class: "view-title" }, title), ...content);
}

let fieldSeq = 0;

// <label> + control (+ hint), tied by id; the control keeps what the caller set.
export function field(labelText, control, hint) {
  control.id = control.id || `f${++fieldSeq}`;
  const hintNode = hint ? h("p", { class: "hint", id: `${control.id}-hint` }, hint) : null;
  if (hintNode) control.setAttribute("aria-describedby", hintNode.id);
  if (control.type === "checkbox") {
    return h("div", { class: "field field-check" }, control, h("label", { for: control.id }, labelText), hintNode);
  }
  return h("div", { class: "field" }, h("label", { for: control.id }, labelText), control, hintNode);
}

// A line that shows a failure (the server's detail) where the admin is looking.
export function errorLine(id) {
  const el = h("p", { class: "form-error", role: "alert", id });
  return {
    node: el,
    show(err) { el.textContent = (err && (err.detail || err.message)) || String(err || ""); },
    clear() { el.textContent = ""; },
  };
}

async function copy(input) {
  try {
    await navigator.clipboard.writeText(input.value);
  } catch {
    input.select(); // plain http on a LAN has no clipboard API: the older way
    document.execCommand("copy");
  }
  toast(t("admin.copied"), "info", 3000);
}

// A read-only value with a Copy button (webhook URLs, invite links, tokens).
export function copyable(labelText, value, { id, once = false } = {}) {
  const input = h("input", { type: "text", readonly: true, value, class: "copy-value", id: id || `f${++fieldSeq}`,
    onfocus: (e) => e.target.select() });
  return h("div", { class: ["copyable", once && "is-once"] },
    h("label", { for: input.id }, labelText),
    h("div", { class: "copy-row" }, input,
      h("button", { type: "button", class: "copy", onclick: () => copy(input),
        "aria-label": t("admin.copy_what", { what: labelText }) }, t("admin.copy"))),
    once ? h("p", { class: "hint" }, t("admin.shown_once")) : null);
}

export function confirmed(question) {
  return window.confirm(question);
}

// Run a write: disable the button meanwhile, show the failure on the error line.
export async function run(button, errors, work) {
  if (button) button.disabled = true;
  errors.clear();
  try {
    return await work();
  } catch (err) {
    errors.show(err);
    return undefined;
  } finally {
    if (button) button.disabled = false;
  }
}

export function yesNo(value) {
  return value ? t("admin.yes") : t("admin.no");
}

// A textarea holding JSON (pretty-printed); null shows as empty.
export function jsonArea(attrs, value) {
  return h("textarea", { rows: 6, spellcheck: "false", class: "json", ...attrs,
    value: value === null || value === undefined ? "" : JSON.stringify(value, null, 2) });
}

// The value of a JSON textarea: `empty` when blank, else the parsed JSON; bad JSON throws an
// Error saying so, for the form's error line.
export function readJson(textarea, empty = null) {
  const text = textarea.value.trim();
  if (!text) return empty;
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new Error(t("admin.bad_json_in", { field: textarea.dataset.label || textarea.name, reason: err.message }));
  }
}

// One number input per group (empty: not set here), in a fieldset; read() gives the map.
export function capacityInputs(legend, capacities, hint) {
  const inputs = GROUPS.map((group) => h("input", { type: "number", name: `capacity_${group}`, min: 0, max: 1000,
    value: capacities && capacities[group] !== undefined ? String(capacities[group]) : "" }));
  const node = h("fieldset", { class: "checks capacities" }, h("legend", {}, legend),
    GROUPS.map((group, i) => field(t(`admin.group.${group}`), inputs[i])),
    hint ? h("p", { class: "hint" }, hint) : null);
  return {
    node,
    read() {
      const out = {};
      GROUPS.forEach((group, i) => { if (inputs[i].value.trim() !== "") out[group] = Number(inputs[i].value); });
      return out;
    },
  };
}

// null when empty, else the number typed.
export function numberOrNull(input) {
  return input.value.trim() === "" ? null : Number(input.value);
}
