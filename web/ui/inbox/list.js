// The conversation list: Mine / Unassigned / All, filtered by status, channel and team, with
// unread badges, the time waiting, the SLA due time and a reply window's end on each item. Stream events about
// conversations refetch the list (debounced), so new items arrive and everything re-sorts live.
import { h, fill } from "../lib/dom.js";
import { get } from "../lib/api.js";
import { t, duration, formatTime } from "../lib/i18n.js";
import { recent } from "./state.js";
import { retrying, newest } from "../lib/retry.js";

const STATUSES = ["open", "pending", "snoozed", "resolved"];
let channels = null;
let teams = null;

const countsTurn = newest();

// The header's counts into its badges. False when the server could not be asked (the badges keep
// what they showed, for the caller to try again).
export async function countsInto(nav) {
  const latest = countsTurn();
  const counts = await get("/conversations/counts", { quiet: true }).catch(() => null);
  if (!latest()) return true;  // a later fetch is on its way: its answer is the newer
  if (!counts) return false;
  for (const badge of nav.querySelectorAll(".badge[data-count]")) {
    const n = counts[badge.dataset.count];
    badge.textContent = n ? String(n) : "";
    badge.hidden = !n;
    if (n) badge.setAttribute("aria-label", t("list.count", { n }));
  }
  return true;
}

let looked = null;

// Channel and team names, fetched once (one promise: views rendered at once share it).
function lookups(me) {
  if (!looked) {
    looked = Promise.all([
      // Channels are listed for admins only; agents filter by the channels of what they see.
      me.role === "admin" ? get("/channels", { quiet: true }).then((r) => r.items).catch(() => []) : [],
      get("/teams", { quiet: true }).then((r) => r.items).catch(() => []),
    ]).then(([c, x]) => { channels = c; teams = x; });
  }
  return looked;
}

// Signed out: the next agent's lookups are their own.
export function forgetLookups() {
  looked = null;
  channels = null;
  teams = null;
}

export function query(view, filters, me) {
  const params = new URLSearchParams({ view, limit: "100" });
  // The view's meaning in the older filters too (the server applies both, they agree).
  if (view === "mine") params.set("assignee_id", me.id);
  if (view === "unassigned") params.set("unassigned", "true");
  const status = filters.status || (view === "unassigned" ? "open" : "");
  if (status) params.set("status", status);
  if (filters.channel_id) params.set("channel_id", filters.channel_id);
  if (filters.team_id) params.set("team_id", filters.team_id);
  return `/conversations?${params}`;
}

function sortKey(item) {
  return item.last_message_at || item.created_at || "";
}

export function itemRow(item, { selected = false } = {}) {
  const waiting = item.waiting_since && item.status !== "resolved"
    ? h("span", { class: "waiting", title: t("list.waiting_since", { time: formatTime(item.waiting_since) }) },
      t("list.waiting", { time: duration(item.waiting_since) })) : null;
  const replyWindow = item.reply_window_ends_at ? (new Date(item.reply_window_ends_at) > new Date()
    ? h("span", { class: "window" }, t("list.window_ends", { time: duration(item.reply_window_ends_at) }))
    : h("span", { class: "window closed" }, t("list.window_closed"))) : null;
  const due = item.status !== "resolved" ? (item.first_response_due || item.next_response_due) : null;
  const sla = due ? (new Date(due) > new Date()
    ? h("span", { class: "sla", title: t("list.sla_due_at", { time: formatTime(due) }) },
      t("list.sla_due", { time: duration(due) }))
    : h("span", { class: "sla breached", title: t("list.sla_due_at", { time: formatTime(due) }) },
      t("list.sla_breached"))) : null;
  const unread = item.unread ? h("span", { class: "unread badge", "aria-label": t("list.unread", { n: item.unread }) },
    String(item.unread)) : null;
  return h("li", { class: ["conv-item", item.unread && "is-unread", selected && "is-selected"],
    dataset: { id: item.id, status: item.status } },
  h("a", { href: `#/conversations/${item.id}`, class: "conv-link" },
    h("span", { class: "conv-top" },
      h("strong", { class: "conv-name" }, item.contact?.name || t("contact.unknown")),
      h("span", { class: "conv-number" }, `#${item.number}`),
      h("span", { class: ["chip", `kind-${item.channel_kind || "channel"}`] }, item.channel_kind
        ? t(`channel.${item.channel_kind}`) : t("channel.generic")),
      unread),
    h("span", { class: "conv-preview" }, item.preview || item.subject || ""),
    h("span", { class: "conv-meta" },
      h("span", { class: ["status", `status-${item.status}`] }, t(`status.${item.status}`)),
      item.priority ? h("span", { class: "prio" }, t("list.priority", { n: item.priority })) : null,
      waiting, sla, replyWindow,
      h("time", { datetime: item.last_message_at || "" }, formatTime(item.last_message_at)))));
}

export async function listView(ctx, view, params) {
  view = view || "mine";
  await lookups(ctx.me);
  const filters = { status: params.get("status") || "", channel_id: params.get("channel_id") || "",
    team_id: params.get("team_id") || "" };
  const list = h("ul", { class: "conv-list", id: "conversations", "aria-label": t(`nav.${view}`) });
  const empty = h("p", { class: "empty", hidden: true }, t("list.empty"));
  let items = [];
  let timer = null;

  function select(name, options, label) {
    return h("label", { class: "filter" }, label,
      h("select", { name, onchange: (e) => {
        filters[name] = e.target.value;
        const q = new URLSearchParams(Object.entries(filters).filter(([, v]) => v));
        ctx.go(`#/${view}${q.toString() ? "?" + q : ""}`);
      } }, h("option", { value: "" }, t("list.any")),
      options.map(([value, text]) => h("option", { value, selected: String(value) === String(filters[name]) }, text))));
  }

  const turn = newest();
  const load = retrying(async () => {
    const latest = turn();
    const answer = await get(query(view, filters, ctx.me), { quiet: true }).catch(() => null);
    if (!latest()) return true;  // a later load is on its way: its answer is the newer
    if (!answer) return false;
    items = answer.items.filter((i) => view !== "mine" || i.assignee_id === ctx.me.id);
    items.sort((a, b) => sortKey(b).localeCompare(sortKey(a)) || b.id - a.id);
    recent.ids = items.map((i) => i.id);
    recent.view = view;
    const focused = document.activeElement?.closest?.(".conv-item")?.dataset.id;
    fill(list, items.map((item) => itemRow(item)));
    empty.hidden = items.length > 0;
    if (focused) list.querySelector(`[data-id="${focused}"] a`)?.focus();
    return true;
  });

  await load();
  // Channels by name for admins; for agents (who may not list channels), those of the conversations
  // they see, by kind and number.
  const channelOptions = channels.length ? channels.map((c) => [c.id, c.name])
    : [...new Map(items.map((i) => [i.channel_id, `${i.channel_kind ? t(`channel.${i.channel_kind}`) : t("channel.generic")} ${i.channel_id}`])).entries()];
  if (filters.channel_id && !channelOptions.some(([value]) => String(value) === filters.channel_id)) {
    channelOptions.push([filters.channel_id, `${t("channel.generic")} ${filters.channel_id}`]);
  }
  const node = h("section", { class: "inbox-list" },
    h("h1", { class: "view-title" }, t(`nav.${view}`)),
    h("div", { class: "filters" },
      select("status", STATUSES.map((s) => [s, t(`status.${s}`)]), t("list.status")),
      channelOptions.length ? select("channel_id", channelOptions, t("list.channel")) : null,
      teams.length ? select("team_id", teams.map((x) => [x.id, x.name]), t("list.team")) : null),
    list, empty);
  return {
    node,
    list: () => items.map((i) => i.id),
    event(e) {
      if (!e.conversation_id || e.type === "agent.typing" || e.type === "visitor.typing") return;
      clearTimeout(timer);
      timer = setTimeout(load, 150);
    },
    reload: load,
    destroy() { clearTimeout(timer); load.stop(); },
    key(e, editing) {
      if (editing || !["j", "k"].includes(e.key)) return;
      e.preventDefault();
      const links = [...list.querySelectorAll(".conv-link")];
      const at = links.indexOf(document.activeElement);
      const next = links[e.key === "j" ? Math.min(at + 1, links.length - 1) : Math.max(at - 1, 0)];
      if (next) next.focus();  // Enter opens it (a link)
    },
  };
}
