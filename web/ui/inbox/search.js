// Search results (GET /search?q=): messages and contacts, each with its conversation.
import { h } from "../lib/dom.js";
import { t } from "../lib/i18n.js";

export async function searchView(ctx, params) {
  return { node: h("section", {}, h("h1", {}, t("search.title", { q: params.get("q") || "" }))) };
}
