// What every admin page shares: the admin-only guard, the admin sub-navigation, labelled fields,
// inline error lines, copyable one-time values (links, tokens) and the confirm step.
import { h } from "../lib/dom.js";
import { t } from "../lib/i18n.js";
import { toast } from "../lib/toast.js";

export const PAGES = ["channels", "agents", "teams", "canned"];

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
