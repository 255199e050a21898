// Keyboard shortcuts. Global: "/" search, "?" this help, Esc closes it. The view on screen gets the
// rest (list: j/k move, Enter opens; conversation: r reply, n note, e resolve, a assign to me, j/k
// next/previous conversation). Never while typing in a field.
import { h } from "../lib/dom.js";
import { t } from "../lib/i18n.js";

const HELP = [["j / k", "keys.next_prev"], ["Enter", "keys.open"], ["r", "keys.reply"], ["n", "keys.note"],
  ["e", "keys.resolve"], ["a", "keys.assign"], ["/", "keys.search"], ["Ctrl+Enter", "keys.send"],
  ["?", "keys.help"], ["Esc", "keys.close"]];

let overlay = null;
let before = null;

function closeHelp() {
  if (!overlay) return;
  overlay.remove();
  overlay = null;
  if (before) before.focus();
}

export function openHelp() {
  before = document.activeElement;
  const close = h("button", { type: "button", onclick: closeHelp }, t("keys.close"));
  overlay = h("div", { class: "overlay", id: "help", onclick: (e) => { if (e.target === overlay) closeHelp(); } },
    h("div", { class: "card", role: "dialog", "aria-modal": "true", "aria-labelledby": "help-title" },
      h("h2", { id: "help-title" }, t("keys.title")),
      h("table", {}, h("tbody", {}, HELP.map(([key, text]) => h("tr", {}, h("td", {}, h("kbd", {}, key)), h("td", {}, t(text)))))),
      close));
  document.body.append(overlay);
  close.focus();
}

export function shortcuts(ctx, currentView) {
  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    if (overlay) {
      if (e.key === "Escape") { e.preventDefault(); closeHelp(); }
      else if (e.key === "Tab") { e.preventDefault(); overlay.querySelector("button").focus(); }
      return;
    }
    const typing = editing(e.target);
    if (!ctx.me || typing && e.key !== "Escape") return;
    if (e.key === "/") {
      e.preventDefault();
      document.getElementById("search-box")?.focus();
    } else if (e.key === "?") {
      e.preventDefault();
      openHelp();
    } else {
      const view = currentView();
      if (view && view.key) view.key(e, typing);
    }
  });
}

export function editing(target) {
  return target instanceof HTMLElement && (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName));
}
