// One conversation: every message, the composer and the actions.
import { h } from "../lib/dom.js";
import { get } from "../lib/api.js";
import { t } from "../lib/i18n.js";

export async function conversationView(ctx, id) {
  const conversation = await get(`/conversations/${id}`, { quiet: true }).catch(() => null);
  if (!conversation) return { node: h("p", { class: "empty", role: "alert" }, t("conversation.not_found")) };
  return { node: h("section", {}, h("h1", {}, `#${conversation.number}`)) };
}
