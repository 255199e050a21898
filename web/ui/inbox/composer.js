// The composer: reply or private note, attachments, canned responses ("/shortcut" or the button;
// placeholders filled by the server for this conversation), Ctrl+Enter sends, and "typing" told to
// colleagues (at most every 4 s while the agent types).
import { h, fill } from "../lib/dom.js";
import { get, post } from "../lib/api.js";
import { t } from "../lib/i18n.js";

const TYPING_EVERY_MS = 4000;

export function composer(conversation, { onSent }) {
  let mode = "reply";
  let lastTyping = 0;
  let canned = [];
  let chosen = 0;
  const id = conversation.id;

  const text = h("textarea", { id: "composer-text", name: "text", rows: 5, "aria-describedby": "composer-hint",
    "aria-autocomplete": "list", "aria-controls": "canned-list" });
  const label = h("label", { for: "composer-text" });
  const files = h("input", { type: "file", id: "composer-files", name: "files", multiple: true });
  const chosenFiles = h("span", { class: "files-chosen" });
  const list = h("ul", { class: "canned", id: "canned-list", role: "listbox", "aria-label": t("composer.canned"), hidden: true });
  const replyButton = h("button", { type: "button", "aria-pressed": "true", onclick: () => setMode("reply") }, t("composer.reply"));
  const noteButton = h("button", { type: "button", "aria-pressed": "false", onclick: () => setMode("note") }, t("composer.note"));
  const send = h("button", { type: "submit", class: "primary" });
  const windowNote = h("p", { class: "window closed", id: "composer-window", hidden: true }, t("composer.window_closed"));
  const form = h("form", { class: "composer", id: "composer", "aria-label": t("composer.label"), onsubmit: (e) => {
    e.preventDefault();
    submit();
  } },
  h("div", { class: "mode", role: "group", "aria-label": t("composer.mode") }, replyButton, noteButton),
  label, windowNote, text, list,
  h("p", { id: "composer-hint", class: "hint" }, t("composer.hint")),
  h("div", { class: "composer-bar" },
    h("label", { for: "composer-files", class: "files-label" }, t("composer.attach")), files, chosenFiles,
    h("button", { type: "button", onclick: () => openCanned("") }, t("composer.canned")),
    send));

  // A channel's reply window (WhatsApp's 24 hours) closed: say so before the agent writes a reply
  // the server will refuse (notes are always possible).
  function windowClosed() {
    const ends = conversation.reply_window_ends_at;
    return Boolean(ends) && new Date(ends) <= new Date();
  }

  function setMode(next, focus = true) {
    mode = next;
    windowNote.hidden = !(mode === "reply" && windowClosed());
    form.classList.toggle("is-note", mode === "note");
    replyButton.setAttribute("aria-pressed", String(mode === "reply"));
    noteButton.setAttribute("aria-pressed", String(mode === "note"));
    label.textContent = mode === "note" ? t("composer.note_label") : t("composer.reply_label");
    send.textContent = mode === "note" ? t("composer.add_note") : t("composer.send");
    if (focus) text.focus();
  }
  setMode("reply", false);

  files.addEventListener("change", () => {
    fill(chosenFiles, [...files.files].map((f) => f.name).join(", "));
  });

  async function submit() {
    const body = text.value.trim();
    if (!body && !files.files.length) {
      text.focus();
      return;
    }
    send.disabled = true;
    try {
      let payload = { text: body, private: mode === "note" };
      if (files.files.length) {
        payload = new FormData();
        payload.append("text", body);
        payload.append("private", mode === "note" ? "true" : "false");
        for (const file of files.files) payload.append("files", file, file.name);
      }
      await post(`/conversations/${id}/messages`, payload);
      text.value = "";
      files.value = "";
      fill(chosenFiles);
      closeCanned();
      await onSent();
    } catch {
      // api() told the agent why (a toast); the text stays for another try
    } finally {
      send.disabled = false;
      text.focus();
    }
  }

  // -- canned responses ------------------------------------------------------------------------
  function slashWord() {
    const before = text.value.slice(0, text.selectionStart);
    const match = before.match(/(^|\s)\/([\w-]*)$/);
    return match ? { word: match[2], start: before.length - match[2].length - 1 } : null;
  }

  async function openCanned(q) {
    const params = new URLSearchParams({ conversation_id: id });
    if (q) params.set("q", q);
    const answer = await get(`/canned-responses?${params}`, { quiet: true }).catch(() => null);
    canned = answer ? answer.items : [];
    chosen = 0;
    drawCanned();
    if (!q) text.focus();
  }

  function drawCanned() {
    list.hidden = false;
    if (!canned.length) {
      fill(list, h("li", { class: "empty" }, t("composer.no_canned")));
      return;
    }
    fill(list, canned.map((c, i) => h("li", { role: "option", id: `canned-${c.id}`, "aria-selected": String(i === chosen),
      onmousedown: (e) => { e.preventDefault(); insertCanned(i); } },
    h("strong", {}, `/${c.shortcut}`), " ", c.title)));
    text.setAttribute("aria-activedescendant", `canned-${canned[chosen].id}`);
  }

  function closeCanned() {
    list.hidden = true;
    canned = [];
    text.removeAttribute("aria-activedescendant");
  }

  function insertCanned(i) {
    const item = canned[i];
    if (!item) return;
    const body = item.rendered ?? item.text;
    const slash = slashWord();
    if (slash) {
      text.value = text.value.slice(0, slash.start) + body + text.value.slice(text.selectionStart);
      text.selectionStart = text.selectionEnd = slash.start + body.length;
    } else {
      const at = text.selectionStart;
      text.value = text.value.slice(0, at) + body + text.value.slice(text.selectionEnd);
      text.selectionStart = text.selectionEnd = at + body.length;
    }
    closeCanned();
    text.focus();
  }

  text.addEventListener("input", () => {
    const slash = slashWord();
    if (slash) openCanned(slash.word);
    else if (!list.hidden) closeCanned();
    if (mode === "reply" || mode === "note") {
      const now = Date.now();
      if (now - lastTyping > TYPING_EVERY_MS && text.value) {
        lastTyping = now;
        post(`/conversations/${id}/typing`, undefined, { quiet: true }).catch(() => null);
      }
    }
  });

  text.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      submit();
    } else if (!list.hidden && canned.length && ["ArrowDown", "ArrowUp"].includes(e.key)) {
      e.preventDefault();
      chosen = (chosen + (e.key === "ArrowDown" ? 1 : canned.length - 1)) % canned.length;
      drawCanned();
    } else if (!list.hidden && canned.length && (e.key === "Enter" || e.key === "Tab")) {
      e.preventDefault();
      insertCanned(chosen);
    } else if (e.key === "Escape") {
      if (!list.hidden) { e.stopPropagation(); closeCanned(); } else text.blur();
    }
  });

  function update(fresh) {
    conversation = fresh;
    windowNote.hidden = !(mode === "reply" && windowClosed());
  }

  return { node: form, setMode, update, focus: () => text.focus() };
}
