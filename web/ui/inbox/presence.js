// Presence from the page: a toggle online/away (PUT /agents/{me}/presence), a heartbeat every
// 30 s while the page is open (POST /me/heartbeat), and, on a conversation newly assigned to the
// agent, a desktop notification (permission asked on a click) and a short tone (WebAudio).
import { h } from "../lib/dom.js";
import { post, put } from "../lib/api.js";
import { t } from "../lib/i18n.js";

const HEARTBEAT_MS = 30000;
let timer = null;
let status = "online";
let button = null;
let audio = null;

function label() {
  if (!button) return;
  button.textContent = status === "online" ? t("presence.online") : t("presence.away");
  button.setAttribute("aria-pressed", status === "online" ? "true" : "false");
  button.dataset.status = status;
}

async function beat() {
  await post("/me/heartbeat", { status }, { quiet: true }).catch(() => null);
}

async function set(me, next) {
  await put(`/agents/${me.id}/presence`, { status: next });
  status = next;
  label();
  beat();
}

export const presence = {
  start(me) {
    status = me.presence === "away" ? "away" : "online";
    if (me.presence !== status) set(me, status).catch(() => null);
    clearInterval(timer);
    beat();
    timer = setInterval(beat, HEARTBEAT_MS);
  },
  stop() {
    clearInterval(timer);
    timer = null;
  },
  toggle(me) {
    button = h("button", { type: "button", id: "presence", class: "presence", title: t("presence.toggle"),
      onclick: () => {
        askPermission();
        unlockAudio();
        set(me, status === "online" ? "away" : "online").catch(() => null);
      } });
    label();
    return button;
  },
  event(event, me) {
    if (!me) return;
    if (event.type === "agent.presence" && event.agent_id === me.id && event.presence) {
      status = event.presence === "online" ? "online" : "away";
      label();
    }
    // An assignment's event names the new assignee (status changes do not).
    if (event.type === "conversation.updated" && "assignee_id" in event && event.assignee_id === me.id) {
      notify(event);
    }
  },
};

function askPermission() {
  if ("Notification" in window && Notification.permission === "default") Notification.requestPermission();
}

function unlockAudio() {
  if (!audio && window.AudioContext) audio = new AudioContext();
}

export function notify(event) {
  const title = t("notify.assigned_title");
  const body = t("notify.assigned_body", { number: event.number ?? event.conversation_id });
  if ("Notification" in window && Notification.permission === "granted" && document.hidden) {
    const note = new Notification(title, { body, tag: `conversation-${event.conversation_id}` });
    note.onclick = () => { window.focus(); location.hash = `#/conversations/${event.conversation_id}`; };
  }
  beep();
}

function beep() {
  if (!audio) return;
  const osc = audio.createOscillator();
  const gain = audio.createGain();
  osc.frequency.value = 880;
  gain.gain.setValueAtTime(0.08, audio.currentTime);
  gain.gain.exponentialRampToValueAtTime(0.001, audio.currentTime + 0.25);
  osc.connect(gain).connect(audio.destination);
  osc.start();
  osc.stop(audio.currentTime + 0.25);
}
