// The live event stream (GET /api/v1/events, Server-Sent Events). The browser's EventSource
// resumes by itself after a drop, sending Last-Event-ID, and the server answers exactly what was
// missed, in order. Should the EventSource give up (an HTTP error while reconnecting), a new one
// resumes with ?after=<last id seen>. Each event is handed on once: ids only grow, so an id at or
// below the last one seen is a repeat and dropped. {"type": "reset"}: what was missed is gone
// (pruned); the handler reloads its view. {"type": "reset", "local": true} is the page's own: it
// lost its place without having seen any event, and reloads quietly.

let source = null;
let lastId = null;
let handler = () => {};
let retryTimer = null;
let stopped = true;

export function lastEventId() { return lastId; }

function open() {
  clearTimeout(retryTimer);
  if (source) source.close();
  const url = lastId === null ? "/api/v1/events" : `/api/v1/events?after=${lastId}`;
  source = new EventSource(url, { withCredentials: true });
  source.onmessage = (message) => {
    const id = Number(message.lastEventId);
    if (lastId !== null && Number.isFinite(id) && id <= lastId) return;  // a repeat
    if (Number.isFinite(id) && message.lastEventId !== "") lastId = id;
    let data;
    try { data = JSON.parse(message.data); } catch { return; }
    handler({ ...data, id });
  };
  source.onopen = () => document.body.classList.remove("stream-down");
  source.onerror = () => {
    document.body.classList.add("stream-down");
    if (source.readyState === EventSource.CLOSED && !stopped) {
      // The browser gave up (e.g. an error answer): start again, from where we were. The
      // handler hears of it first ("stream.closed"): the session may have ended.
      handler({ type: "stream.closed", id: null, local: true });
      retryTimer = setTimeout(() => {
        if (lastId === null) handler({ type: "reset", id: null, local: true });
        open();
      }, 3000);
    }
  };
}

// Start following the stream; onEvent gets each event's data with its id.
export function connect(onEvent) {
  handler = onEvent;
  stopped = false;
  open();
}

export function disconnect() {
  stopped = true;
  clearTimeout(retryTimer);
  if (source) source.close();
  source = null;
  lastId = null;
}

// The browser says the network is gone (a lid closed, Wi-Fi lost): the connection is dead even
// if it does not know it yet. Close it, and on the way back resume after the last id seen (or,
// having seen none, reload the view: a stream opened now starts at the newest event).
window.addEventListener("offline", () => {
  if (stopped || !source) return;
  source.close();
  source = null;
  document.body.classList.add("stream-down");
});
window.addEventListener("online", () => {
  if (stopped || (source && source.readyState === EventSource.OPEN)) return;
  if (lastId === null) handler({ type: "reset", id: null, local: true });
  open();
});
