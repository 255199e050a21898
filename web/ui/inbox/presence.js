// Presence from the page: a toggle online/away (PUT /agents/{me}/presence), a heartbeat every
// 30 s while the page is open (POST /me/heartbeat), and, on a conversation newly assigned to the
// agent, a desktop notification (permission asked on a click) and a short tone (WebAudio).
import { h } from "../lib/dom.js";
import { get, post, put } from "../lib/api.js";
import { t } from "../lib/i18n.js";
import { toast } from "../lib/toast.js";

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

// The page's presence writes (a heartbeat carries the status too) go one after another, each once
// the one before has been answered: on a slow server a heartbeat sent "online" just before the agent
// chose away must not land after that choice and undo it. A write unanswered for WRITE_WAIT_MS no
// longer holds up the next (a connection that died without a word).
const WRITE_WAIT_MS = 15000;
let writes = Promise.resolve();
function inTurn(write) {
  const done = writes.then(write);
  let wait = null;
  const waited = new Promise((resolve) => { wait = setTimeout(resolve, WRITE_WAIT_MS); });
  writes = Promise.race([done, waited]).catch(() => null).finally(() => clearTimeout(wait));
  return done;
}

function beat() {
  return inTurn(() => post("/me/heartbeat", { status }, { quiet: true })).catch(() => null);
}

async function set(me, next) {
  await inTurn(async () => {
    await put(`/agents/${me.id}/presence`, { status: next });
    status = next;
    label();
  });
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
  // Shown while the browser has not been asked yet: asking needs a click.
  notificationsButton() {
    if (!("Notification" in window) || Notification.permission !== "default") return null;
    const button = h("button", { type: "button", id: "notifications", class: "quiet", onclick: async () => {
      unlockAudio();
      await askPermission();
      button.remove();
    } }, t("notify.enable"));
    return button;
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

async function askPermission() {
  if ("Notification" in window && Notification.permission === "default") await Notification.requestPermission();
}

// Browsers let a page make sound only after a gesture: the first click or key unlocks it.
function unlockAudio() {
  if (!audio && window.AudioContext) audio = new AudioContext();
}
for (const type of ["pointerdown", "keydown"]) window.addEventListener(type, unlockAudio, { once: true, capture: true });

export async function notify(event) {
  const conversation = await get(`/conversations/${event.conversation_id}`, { quiet: true }).catch(() => null);
  if (!conversation) return;
  const title = t("notify.assigned_title");
  const body = t("notify.assigned_body", { number: conversation.number });
  if ("Notification" in window && Notification.permission === "granted" && document.hidden) {
    const note = new Notification(title, { body, tag: `conversation-${event.conversation_id}` });
    note.onclick = () => { window.focus(); location.hash = `#/conversations/${event.conversation_id}`; };
  } else {
    toast(body, "info");
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
