// One conversation: every message (kept in order, each once, updated in place from the stream),
// the actions (assign, resolve/reopen, snooze, priority), the composer, others typing, and the
// contact panel. Opening it marks it read.
import { h, fill } from "../lib/dom.js";
import { get, post, patch } from "../lib/api.js";
import { t } from "../lib/i18n.js";
import { messageNode, updateMessage } from "./messages.js";
import { composer } from "./composer.js";
import { contactPanel } from "./contact.js";
import { recent } from "./state.js";
import { retrying, newest } from "../lib/retry.js";

const TYPING_SHOWN_MS = 6000;
let agents = null;

export function forgetAgents() {
  agents = null;
}

async function agentList() {
  if (!agents) agents = await get("/agents", { quiet: true }).then((r) => r.items).catch(() => []);
  return agents;
}

function localInput(date) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

export async function conversationView(ctx, id) {
  let conversation = await get(`/conversations/${id}`, { quiet: true }).catch(() => null);
  if (!conversation) {
    return { node: h("section", { class: "empty-state" }, h("h1", { class: "view-title" }, t("conversation.not_found")),
      h("p", { role: "alert" }, t("conversation.not_found_hint")), h("a", { href: "#/mine" }, t("conversation.back"))) };
  }
  await agentList();
  const names = new Map(agents.map((a) => [a.id, a.name]));
  const mctx = { me: ctx.me, contactName: conversation.contact.name, agentName: (aid) => names.get(aid),
    reload: () => refresh() };
  const nodes = new Map();
  const list = h("ol", { class: "messages", id: "messages", "aria-label": t("conversation.messages") });
  const typing = h("p", { class: "typing", id: "typing", "aria-live": "polite" });
  const head = h("div", { class: "conv-head" });
  const typers = new Map();
  let timer = null;
  let gone = false;

  const write = composer(conversation, { onSent: () => refresh() });

  function drawMessages(messages) {
    const fresh = [];
    for (const message of messages) {
      let node = nodes.get(message.id);
      if (!node) {
        node = messageNode(message, mctx);
        nodes.set(message.id, node);
        fresh.push(message);
      } else if (node.dataset.status !== message.status) {
        updateMessage(node, message, mctx);
      }
      list.append(node);  // in the server's order; an existing node only moves
    }
    return fresh;
  }

  // Kept across redraws of the head (a change from the stream must not wipe what the agent typed).
  const until = h("input", { type: "datetime-local", id: "snooze-until", "aria-label": t("conversation.snooze_until"),
    value: localInput(new Date(Date.now() + 24 * 3600 * 1000)) });

  function drawHead() {
    const c = conversation;
    const focused = head.contains(document.activeElement) ? document.activeElement.id : null;
    const assignee = h("select", { id: "assignee", "aria-label": t("conversation.assignee"), onchange: (e) =>
      act(() => post(`/conversations/${c.id}/assign`, { agent_id: e.target.value ? Number(e.target.value) : null })) },
    h("option", { value: "" }, t("conversation.unassigned")),
    agents.filter((a) => a.active !== false).map((a) => h("option", { value: a.id, selected: a.id === c.assignee_id },
      a.id === ctx.me.id ? t("conversation.me", { name: a.name }) : a.name)));
    const priority = h("select", { id: "priority", "aria-label": t("conversation.priority"), onchange: (e) =>
      act(() => patch(`/conversations/${c.id}`, { priority: Number(e.target.value) })) },
    Array.from({ length: 11 }, (_, n) => h("option", { value: n, selected: n === c.priority }, String(n))));
    const snooze = h("button", { type: "button", id: "snooze", onclick: () => {
      const when = new Date(until.value);
      if (Number.isNaN(when.getTime())) return until.focus();
      return act(() => patch(`/conversations/${c.id}`, { status: "snoozed", snoozed_until: when.toISOString() }));
    } }, t("conversation.snooze"));
    fill(head,
      h("h1", { id: "conversation-title" }, t("conversation.title", { number: c.number, name: c.contact.name || t("contact.unknown") })),
      h("span", { class: ["status", `status-${c.status}`], id: "conversation-status", dataset: { status: c.status } },
        t(`status.${c.status}`)),
      c.snoozed_until && c.status === "snoozed" ? h("span", {}, t("conversation.snoozed_until", { time: new Date(c.snoozed_until).toLocaleString() })) : null,
      h("div", { class: "actions" },
        c.assignee_id !== ctx.me.id ? h("button", { type: "button", id: "assign-me", onclick: assignToMe }, t("conversation.assign_me")) : null,
        assignee,
        c.status === "resolved"
          ? h("button", { type: "button", id: "reopen", onclick: () => act(() => post(`/conversations/${c.id}/reopen`)) }, t("conversation.reopen"))
          : h("button", { type: "button", id: "resolve", class: "primary", onclick: resolve }, t("conversation.resolve")),
        h("label", { class: "inline" }, t("conversation.priority"), priority),
        until, snooze));
    // The button pressed may have been replaced by its opposite (resolve <-> reopen): focus that.
    const swapped = { resolve: "reopen", reopen: "resolve", "assign-me": "assignee" };
    if (focused) (document.getElementById(focused) || document.getElementById(swapped[focused]))?.focus();
  }

  // The conversation is fetched again at stream events and answered by each action: the answer of
  // the latest asked is shown, never an older one that came back after it.
  const turn = newest();

  async function act(call) {
    const latest = turn();
    try {
      const answer = await call();
      if (!latest()) return;
      conversation = answer;
      drawHead();
    } catch {
      await refresh();
    }
  }

  const assignToMe = () => act(() => post(`/conversations/${conversation.id}/assign`, { agent_id: ctx.me.id }));
  const resolve = () => act(() => post(`/conversations/${conversation.id}/resolve`));

  const refresh = retrying(async () => {
    const latest = turn();
    const fresh = await get(`/conversations/${id}`, { quiet: true }).catch((err) => (err.status === 404 ? null : undefined));
    if (!latest()) return true;  // a later fetch is on its way: its answer is the newer
    if (fresh === undefined) return false;  // no answer (offline): tried again
    if (fresh === null) {
      gone = true;
      fill(head, h("h1", {}, t("conversation.not_found")), h("p", { role: "alert" }, t("conversation.no_longer")));
      return true;
    }
    conversation = fresh;
    drawHead();
    write.update(conversation);
    const added = drawMessages(conversation.messages);
    const incoming = added.filter((m) => m.direction === "in");
    if (incoming.length) {
      announce(t("conversation.new_messages", { n: incoming.length }));
      markRead();
    }
    return true;
  });

  function announce(text) {
    const live = document.getElementById("live");
    if (live) live.textContent = text;
  }

  // At once (not on a timer a quick move to another view would cancel).
  function markRead() {
    post(`/conversations/${id}/read`, undefined, { quiet: true }).catch(() => null);
  }

  function showTyping() {
    const who = [...typers.keys()].map((aid) => aid === "visitor"
      ? (conversation.contact && conversation.contact.name) || t("conversation.visitor")
      : names.get(aid) || t("message.agent"));
    typing.textContent = who.length ? t("conversation.typing", { names: who.join(", ") }) : "";
  }

  drawHead();
  drawMessages(conversation.messages);
  markRead();
  const panel = await contactPanel(conversation);
  const node = h("section", { class: "conversation", "aria-labelledby": "conversation-title" },
    h("div", { class: "conv-main" }, head, list, typing, write.node), panel);

  function step(delta) {
    const at = recent.ids.indexOf(Number(id));
    const next = recent.ids[at + delta];
    if (at >= 0 && next) ctx.go(`#/conversations/${next}`);
  }

  return {
    node,
    event(e) {
      if (gone || e.conversation_id !== Number(id)) return;
      if ((e.type === "agent.typing" && e.agent_id !== ctx.me.id) || e.type === "visitor.typing") {
        const who = e.type === "visitor.typing" ? "visitor" : e.agent_id;
        clearTimeout(typers.get(who));
        typers.set(who, setTimeout(() => { typers.delete(who); showTyping(); }, TYPING_SHOWN_MS));
        showTyping();
        return;
      }
      const typer = e.type === "message.created" && (e.direction === "in" ? "visitor" : e.agent_id);
      if (typer !== false && typers.has(typer)) {
        clearTimeout(typers.get(typer));
        typers.delete(typer);
        showTyping();
      }
      clearTimeout(timer);
      timer = setTimeout(refresh, 100);
    },
    reload: refresh,
    destroy() {
      clearTimeout(timer);
      refresh.stop();
      typers.forEach((x) => clearTimeout(x));
    },
    key(e, editing) {
      if (editing) return;
      const keys = { r: () => write.setMode("reply"), n: () => write.setMode("note"), e: resolve, a: assignToMe,
        j: () => step(1), k: () => step(-1) };
      if (keys[e.key]) {
        e.preventDefault();
        keys[e.key]();
      }
    },
  };
}
