// Short notices in a polite live region: errors from the server, "view reloaded", ...
import { h } from "./dom.js";

function region() {
  let el = document.getElementById("toasts");
  if (!el) {
    el = h("div", { id: "toasts", class: "toasts", role: "status", "aria-live": "polite" });
    document.body.append(el);
  }
  return el;
}

export function toast(message, kind = "info", ms = 6000) {
  const close = h("button", { type: "button", class: "toast-close", "aria-label": "×", onclick: () => item.remove() }, "×");
  const item = h("div", { class: ["toast", `toast-${kind}`], dataset: { kind } }, h("span", {}, message), close);
  region().append(item);
  if (ms) setTimeout(() => item.remove(), ms);
  return item;
}
