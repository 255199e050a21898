// The contact panel: who the customer is (name, email, phone, their identities on each channel)
// and their other conversations on every channel (only those the agent may see).
import { h } from "../lib/dom.js";
import { get } from "../lib/api.js";
import { t, formatTime } from "../lib/i18n.js";

export async function contactPanel(conversation) {
  const basic = conversation.contact;
  const full = await get(`/contacts/${basic.id}`, { quiet: true }).catch(() => null);
  const contact = full || basic;
  const others = (full?.conversations || []).filter((c) => c.id !== conversation.id);
  const rows = [
    [t("contact.name"), contact.name || t("contact.unknown")],
    contact.email ? [t("contact.email"), contact.email] : null,
    contact.phone ? [t("contact.phone"), contact.phone] : null,
    ...(full?.identities || []).map((i) => [t(`channel.${i.channel_kind}`), i.external_id]),
  ].filter(Boolean);
  return h("aside", { class: "contact-panel", "aria-labelledby": "contact-title" },
    h("h2", { id: "contact-title" }, t("contact.title")),
    h("dl", {}, rows.map(([term, value]) => [h("dt", {}, term), h("dd", {}, value)])),
    full ? h("h2", { class: "others-title" }, t("contact.others")) : null,
    full ? (others.length
      ? h("ul", { class: "others" }, others.map((c) => h("li", {},
        h("a", { href: `#/conversations/${c.id}` }, `#${c.number}`), " ",
        h("span", { class: "chip" }, c.channel_kind ? t(`channel.${c.channel_kind}`) : t("channel.generic")), " ",
        h("span", {}, t(`status.${c.status}`)), " ",
        h("time", { datetime: c.last_message_at || "" }, formatTime(c.last_message_at)))))
      : h("p", { class: "empty" }, t("contact.no_others"))) : null);
}
