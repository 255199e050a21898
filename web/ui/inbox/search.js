// Search results (GET /search?q=): messages (with the matching snippet) and contacts, each with
// its conversation; only what the agent may see (the server's rule).
import { h, fill } from "../lib/dom.js";
import { get } from "../lib/api.js";
import { t, formatTime } from "../lib/i18n.js";
import { itemRow } from "./list.js";
import { recent } from "./state.js";

export async function searchView(ctx, params) {
  const q = params.get("q") || "";
  const box = document.getElementById("search-box");
  if (box && box.value !== q) box.value = q;
  const results = h("ul", { class: "results", id: "search-results", "aria-label": t("search.results") });
  const status = h("p", { class: "empty", role: "status" });
  let next = null;
  const more = h("button", { type: "button", hidden: true, onclick: () => load(next) }, t("search.more"));

  async function load(cursor) {
    const query = new URLSearchParams({ q, limit: "20" });
    if (cursor) query.set("cursor", cursor);
    const answer = await get(`/search?${query}`).catch(() => null);
    if (!answer) {
      status.textContent = t("search.failed");
      return;
    }
    if (!cursor) fill(results);
    for (const item of answer.items) {
      const row = itemRow(item.conversation);
      row.dataset.kind = item.message ? "message" : "contact";
      const detail = item.message
        ? h("p", { class: "snippet" }, h("span", { class: "chip" }, t("search.message")), " ", item.message.snippet,
          " ", h("time", { datetime: item.message.created_at }, formatTime(item.message.created_at)))
        : item.contact ? h("p", { class: "snippet" }, h("span", { class: "chip" }, t("search.contact")), " ",
          [item.contact.name, item.contact.email, item.contact.phone].filter(Boolean).join(" · ")) : null;
      if (detail) row.querySelector(".conv-link").append(detail);
      results.append(row);
    }
    recent.ids = [...results.querySelectorAll(".conv-item")].map((li) => Number(li.dataset.id));
    next = answer.next;
    more.hidden = !next;
    status.textContent = results.children.length ? t("search.count", { n: results.children.length }) : t("search.none");
  }

  if (q) await load(null);
  return {
    node: h("section", {}, h("h1", { class: "view-title" }, t("search.title", { q })), status, results, more),
  };
}
