// One message as the agent sees it: in / out / private note told apart, the text (as text), the
// customer's HTML only inside a sandboxed frame, attachments to download, and on replies the
// delivery tick (pending, sent, delivered, read) or the failure's reason with a Retry button.
import { h, fill } from "../lib/dom.js";
import { post } from "../lib/api.js";
import { t, formatTime } from "../lib/i18n.js";

// The frame's own policy: nothing may load but inline styles and data: images; remote images,
// scripts, fonts and forms are blocked (and the frame's sandbox forbids scripts in any case).
const FRAME_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:";
const TICKS = { pending: "🕓", sending: "🕓", sent: "✓", delivered: "✓✓", read: "✓✓", failed: "⚠" };

export function sandboxed(html) {
  return h("iframe", {
    class: "msg-html",
    sandbox: "",  // no scripts, no same origin, no forms, no popups, no top navigation
    referrerpolicy: "no-referrer",
    title: t("message.html_title"),
    srcdoc: `<!doctype html><html><head><meta charset="utf-8"><meta http-equiv="Content-Security-Policy" content="${FRAME_CSP}"></head><body>${html}</body></html>`,
  });
}

function size(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${Math.round(bytes / 1024)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

export function tick(message) {
  if (message.direction !== "out" || message.private) return null;
  const status = message.status;
  return h("span", { class: ["tick", `tick-${status}`], dataset: { status }, title: t(`tick.${status}`) },
    h("span", { "aria-hidden": "true" }, TICKS[status] || ""), " ", t(`tick.${status}`));
}

function author(message, ctx) {
  if (message.direction === "in") return ctx.contactName || t("contact.unknown");
  if (message.author_agent_id === ctx.me.id) return t("message.you");
  return ctx.agentName(message.author_agent_id) || (message.automatic ? t("message.automatic") : t("message.agent"));
}

function failure(message, onRetry) {
  if (message.status !== "failed") return null;
  const button = h("button", { type: "button", class: "retry", onclick: async () => {
    button.disabled = true;
    try { await post(`/messages/${message.id}/retry`); await onRetry(); } finally { button.disabled = false; }
  } }, t("message.retry"));
  return h("p", { class: "failure", role: "alert" },
    h("span", {}, t("message.failed", { reason: message.status_reason || t("message.no_reason") })), " ", button);
}

export function messageNode(message, ctx) {
  const node = h("li", { class: ["msg", message.private && "is-private"], id: `message-${message.id}`,
    dataset: { id: message.id, direction: message.direction, private: message.private ? "true" : "false" } });
  return updateMessage(node, message, ctx);
}

// Fill (or refill) the node from the message: a status change redraws only this message.
export function updateMessage(node, message, ctx) {
  node.dataset.status = message.status;
  const kind = message.private ? t("message.note") : message.direction === "in" ? t("message.in") : t("message.out");
  fill(node,
    h("div", { class: "msg-head" },
      h("strong", {}, author(message, ctx)),
      h("span", { class: "msg-kind" }, kind),
      h("time", { datetime: message.created_at }, formatTime(message.created_at)),
      tick(message)),
    message.subject ? h("p", { class: "msg-subject" }, message.subject) : null,
    message.html ? sandboxed(message.html) : h("div", { class: "msg-text" }, message.text),
    message.html && message.text ? h("details", {}, h("summary", {}, t("message.as_text")),
      h("div", { class: "msg-text" }, message.text)) : null,
    message.quoted ? h("details", {}, h("summary", {}, t("message.quoted")), h("div", { class: "msg-text" }, message.quoted)) : null,
    message.parse_error ? h("p", { class: "failure" }, t("message.parse_error", { error: message.parse_error })) : null,
    message.attachments.length ? h("ul", { class: "attachments", "aria-label": t("message.attachments") },
      message.attachments.map((a) => h("li", {}, h("a", { href: `/api/v1/attachments/${a.id}`, download: a.filename },
        `📎 ${a.filename}`), ` (${size(a.size)})`))) : null,
    failure(message, ctx.reload));
  return node;
}
