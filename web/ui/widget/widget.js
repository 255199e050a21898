// omnidesk web chat widget: <script src="{omnidesk}/widget.js" data-channel="{id}" async></script>
// Plain JS, no framework. Everything lives in a closed shadow root with its own stylesheet (a
// constructed one where the browser has them, so a strict style-src CSP is no obstacle); customer
// and agent text is only ever set with textContent.
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || window.__omnideskChat) return;
  window.__omnideskChat = true;
  var BASE = new URL(script.src).origin;
  var CHANNEL = script.getAttribute("data-channel");
  var IDENTITY = script.getAttribute("data-identity"); // JSON {id, email, name, hash} from the shop's server
  var API = BASE + "/webchat/" + CHANNEL;
  var KEY = "omnidesk-chat-" + CHANNEL;
  var T = {
    en: { open: "Chat with us", close: "Close", send: "Send", placeholder: "Write a message…", typing: "typing…",
      nobody: "Nobody is here right now. Leave your email and we will answer there.", email: "Your email", name: "Your name",
      save: "Save", saved: "Thanks! We will write to {email}.", read: "Read", file: "Attach a file", offline: "Reconnecting…",
      start: "Start chat", refused: "This chat is not available on this page.", agent: "Agent" },
    es: { open: "Chatea con nosotros", close: "Cerrar", send: "Enviar", placeholder: "Escribe un mensaje…", typing: "escribiendo…",
      nobody: "Ahora no hay nadie. Déjanos tu email y te responderemos allí.", email: "Tu email", name: "Tu nombre",
      save: "Guardar", saved: "¡Gracias! Te escribiremos a {email}.", read: "Leído", file: "Adjuntar un archivo",
      offline: "Reconectando…", start: "Empezar", refused: "Este chat no está disponible en esta página.", agent: "Agente" },
    ca: { open: "Xateja amb nosaltres", close: "Tanca", send: "Envia", placeholder: "Escriu un missatge…", typing: "escrivint…",
      nobody: "Ara no hi ha ningú. Deixa'ns el teu correu i et respondrem allà.", email: "El teu correu", name: "El teu nom",
      save: "Desa", saved: "Gràcies! T'escriurem a {email}.", read: "Llegit", file: "Adjunta un fitxer",
      offline: "Reconnectant…", start: "Comença", refused: "Aquest xat no està disponible en aquesta pàgina.", agent: "Agent" },
    pt: { open: "Fale connosco", close: "Fechar", send: "Enviar", placeholder: "Escreva uma mensagem…", typing: "a escrever…",
      nobody: "Não está ninguém agora. Deixe o seu email e responderemos aí.", email: "O seu email", name: "O seu nome",
      save: "Guardar", saved: "Obrigado! Vamos escrever para {email}.", read: "Lida", file: "Anexar um ficheiro",
      offline: "A religar…", start: "Começar", refused: "Este chat não está disponível nesta página.", agent: "Agente" },
    pl: { open: "Napisz do nas", close: "Zamknij", send: "Wyślij", placeholder: "Napisz wiadomość…", typing: "pisze…",
      nobody: "Nikogo teraz nie ma. Zostaw e-mail, odpowiemy tam.", email: "Twój e-mail", name: "Twoje imię",
      save: "Zapisz", saved: "Dziękujemy! Napiszemy na {email}.", read: "Przeczytana", file: "Załącz plik",
      offline: "Łączenie…", start: "Rozpocznij", refused: "Ten czat nie jest dostępny na tej stronie.", agent: "Konsultant" }
  };
  function pick() {
    var langs = [document.documentElement.lang].concat(navigator.languages || [navigator.language]);
    for (var i = 0; i < langs.length; i++) {
      var l = String(langs[i] || "").slice(0, 2).toLowerCase();
      if (T[l]) return l;
    }
    return "en";
  }
  var LANG = pick();
  function t(k, v) { return T[LANG][k].replace("{email}", (v && v.email) || ""); }

  var CSS = ":host{all:initial}*{box-sizing:border-box;font:14px/1.4 system-ui,sans-serif}" +
    ".launcher{position:fixed;right:20px;bottom:20px;border:0;border-radius:24px;padding:12px 18px;color:#fff;" +
    "background:var(--c);cursor:pointer;z-index:2147483000;box-shadow:0 2px 8px #0004}" +
    ".panel{position:fixed;right:20px;bottom:80px;width:340px;max-width:calc(100vw - 40px);height:480px;max-height:calc(100vh - 100px);" +
    "display:flex;flex-direction:column;background:#fff;color:#222;border-radius:12px;box-shadow:0 4px 24px #0005;z-index:2147483000;overflow:hidden}" +
    ".panel[hidden],[hidden]{display:none}.head{background:var(--c);color:#fff;padding:10px 12px;display:flex;justify-content:space-between}" +
    ".head button{background:none;border:0;color:#fff;cursor:pointer;font-size:18px}" +
    ".log{flex:1;overflow-y:auto;padding:10px;display:flex;flex-direction:column;gap:6px}" +
    ".msg{max-width:80%;padding:6px 10px;border-radius:10px;white-space:pre-wrap;word-wrap:break-word}" +
    ".in{align-self:flex-end;background:var(--c);color:#fff}.out{align-self:flex-start;background:#eee}" +
    ".who{font-size:11px;opacity:.7;display:block}.tick{font-size:11px;opacity:.8;display:block;text-align:right}" +
    ".msg img{max-width:100%;display:block;margin-top:4px}.msg a{color:inherit}" +
    ".note{font-size:12px;color:#555;padding:6px 10px}.typing{font-size:12px;color:#666;padding:0 12px;min-height:18px}" +
    "form{display:flex;gap:6px;padding:8px;border-top:1px solid #ddd}textarea,input{flex:1;border:1px solid #ccc;border-radius:6px;padding:6px;resize:none}" +
    "form button,.pick{border:0;border-radius:6px;background:var(--c);color:#fff;padding:6px 10px;cursor:pointer}";

  function el(tag, attrs, kids) {
    var n = document.createElement(tag);
    for (var k in attrs || {}) {
      if (k === "text") n.textContent = attrs[k];
      else if (k.slice(0, 2) === "on") n.addEventListener(k.slice(2), attrs[k]);
      else n.setAttribute(k, attrs[k]);
    }
    (kids || []).forEach(function (c) { if (c) n.appendChild(c); });
    return n;
  }

  function clip() { // drawn: an emoji needs a font not every system has
    var ns = "http://www.w3.org/2000/svg", svg = document.createElementNS(ns, "svg"), path = document.createElementNS(ns, "path");
    var a = { viewBox: "0 0 24 24", width: "16", height: "16", fill: "none", stroke: "currentColor", "stroke-width": "2",
      "stroke-linecap": "round", "aria-hidden": "true" };
    for (var k in a) svg.setAttribute(k, a[k]);
    path.setAttribute("d", "M21 11.5l-8.5 8.5a5 5 0 0 1-7-7L14 4.5a3.5 3.5 0 0 1 5 5L10.5 18a2 2 0 0 1-3-3L15 7.5");
    svg.appendChild(path);
    return svg;
  }

  var host = el("div", { "data-omnidesk-chat": "" });
  var root = host.attachShadow({ mode: "open" });
  function style(colour) {
    var text = CSS.replace(/var\(--c\)/g, colour);
    try {
      var sheet = new CSSStyleSheet();
      sheet.replaceSync(text);
      root.adoptedStyleSheets = [sheet];
    } catch (e) {
      root.appendChild(el("style", { text: text }));
    }
  }

  var state = load();
  function load() {
    try { return JSON.parse(localStorage.getItem(KEY)) || {}; } catch (e) { return {}; }
  }
  function save() {
    var now = load();
    now.token = state.token; now.open = state.open; now.outbox = state.outbox; now.last = state.last;
    try { localStorage.setItem(KEY, JSON.stringify(now)); } catch (e) { /* private mode */ }
  }
  state.outbox = state.outbox || [];
  var shown = {}; // message id -> node
  var pending = {}; // client id -> node, until stored

  var launcher = el("button", { class: "launcher", type: "button", part: "launcher", text: t("open"), onclick: toggle });
  var log = el("div", { class: "log", role: "log", "aria-live": "polite" });
  var typing = el("div", { class: "typing" });
  var note = el("div", { class: "note", hidden: "" });
  var input = el("textarea", { rows: "2", placeholder: t("placeholder"), "aria-label": t("placeholder") });
  var fileInput = el("input", { type: "file", hidden: "", accept: "image/*,application/pdf,text/plain" });
  var form = el("form", {}, [input, el("button", { type: "button", class: "pick", title: t("file"), "aria-label": t("file"),
    onclick: function () { fileInput.click(); } }, [clip()]), fileInput, el("button", { type: "submit", text: t("send") })]);
  var emailForm = el("form", { class: "email", hidden: "" }, [
    el("input", { type: "email", required: "", placeholder: t("email"), "aria-label": t("email"), name: "email" }),
    el("button", { type: "submit", text: t("save") })]);
  var panel = el("div", { class: "panel", hidden: "", role: "dialog", "aria-label": t("open") }, [
    el("div", { class: "head" }, [el("span", { class: "title", text: t("open") }),
      el("button", { type: "button", "aria-label": t("close"), text: "×", onclick: toggle })]),
    log, typing, note, emailForm, form]);
  root.appendChild(launcher);
  root.appendChild(panel);

  function toggle() {
    state.open = panel.hidden;
    panel.hidden = !state.open;
    save();
    if (state.open) { input.focus(); markRead(); }
  }

  function call(method, path, body) {
    var headers = { "X-Omnidesk-Visitor": state.token || "" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    return fetch(API + path, { method: method, headers: headers, body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "omit", mode: "cors" }).then(function (r) {
      if (!r.ok) { var e = new Error("HTTP " + r.status); e.status = r.status; throw e; }
      return r.status === 204 ? null : r.json();
    });
  }

  function bubble(m) {
    var node = el("div", { class: "msg " + (m.direction === "in" ? "in" : "out"), "data-id": m.id || "" });
    if (m.direction !== "in") node.appendChild(el("span", { class: "who", text: m.agent || t("agent") }));
    node.appendChild(el("span", { class: "text", text: m.text || "" }));
    (m.files || []).forEach(function (f) {
      var url = API + "/files/" + f.id + "?token=" + encodeURIComponent(state.token);
      node.appendChild(/^image\//.test(f.content_type) ? el("img", { src: url, alt: f.filename })
        : el("a", { href: url, target: "_blank", rel: "noopener", text: f.filename }));
    });
    return node;
  }

  function place(node, id) { // stored messages in id order, then those still being sent
    var before = null;
    for (var i = 0; i < log.children.length && !before; i++) {
      var n = log.children[i], nid = Number(n.getAttribute("data-id"));
      if ((nid && nid > id) || n.hasAttribute("data-pending")) before = n;
    }
    log.insertBefore(node, before);
  }

  function show(m) {
    var node = shown[m.id];
    if (!node) {
      node = shown[m.id] = bubble(m);
      place(node, m.id);
      log.scrollTop = log.scrollHeight;
    }
    if (m.direction === "in") {
      var tick = node.querySelector(".tick") || node.appendChild(el("span", { class: "tick" }));
      tick.textContent = m.status === "read" ? t("read") : "✓";
    }
    state.last = Math.max(state.last || 0, m.id);
    if (m.direction === "out") typing.textContent = "";
  }

  var fetching = null, again = false;
  function refresh() {
    if (fetching) { again = true; return fetching; }
    fetching = call("GET", "/messages?after=0").then(function (r) {
      r.items.forEach(show);
      var read = r.items.filter(function (m) { return m.direction === "out" && m.status === "read"; });
      r.items.forEach(function (m) { if (m.direction === "out") shown[m.id].setAttribute("data-status", m.status); });
      if (read.length || r.items.length) markRead();
      save();
    }).catch(function () {}).then(function () {
      fetching = null;
      if (again) { again = false; refresh(); }
    });
    return fetching;
  }

  function markRead() {
    if (panel.hidden || document.hidden || !state.last) return;
    var unread = Object.keys(shown).some(function (id) {
      var n = shown[id]; return n.classList.contains("out") && n.getAttribute("data-status") !== "read";
    });
    if (unread) call("POST", "/read", { up_to: state.last }).catch(function () {});
  }
  document.addEventListener("visibilitychange", markRead);

  function newId() {
    var a = new Uint8Array(12);
    crypto.getRandomValues(a);
    return Array.prototype.map.call(a, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }

  var flushing = false;
  function flush() { // one at a time, in the order written: the store keeps that order
    if (flushing || !state.outbox.length) return;
    var m = state.outbox[0];
    flushing = true;
    call("POST", "/messages", { id: m.id, text: m.text, files: m.files || [], language: LANG }).then(function () {
      done(m);
    }).catch(function (e) {
      if (e.status && e.status < 500 && e.status !== 429) done(m); // refused: never stored, not retried
      flushing = false;
      if (!e.status || e.status >= 500 || e.status === 429) setTimeout(flush, 3000);
    });
    function done(m) {
      state.outbox = state.outbox.filter(function (x) { return x.id !== m.id; });
      save();
      var node = pending[m.id];
      delete pending[m.id];
      if (node && node.parentNode) node.parentNode.removeChild(node);
      flushing = false;
      refresh();
      flush();
    }
  }

  function queue(text, files) {
    var m = { id: newId(), text: text, files: files };
    state.outbox.push(m);
    save();
    var node = bubble({ direction: "in", text: text, files: [] });
    node.setAttribute("data-id", "");
    node.setAttribute("data-pending", m.id);
    pending[m.id] = node;
    log.appendChild(node);
    log.scrollTop = log.scrollHeight;
    flush();
  }

  form.addEventListener("submit", function (e) {
    e.preventDefault();
    var text = input.value.trim();
    if (!text) return;
    input.value = "";
    queue(text, []);
  });
  input.addEventListener("keydown", function (e) {
    if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); form.requestSubmit(); }
  });
  var lastTyping = 0;
  input.addEventListener("input", function () {
    var now = Date.now();
    if (now - lastTyping > 3000 && input.value) { lastTyping = now; call("POST", "/typing").catch(function () {}); }
  });
  fileInput.addEventListener("change", function () {
    var f = fileInput.files[0];
    if (!f) return;
    if (f.size > (state.maxBytes || 10485760)) { fileInput.value = ""; return; }
    var reader = new FileReader();
    reader.onload = function () {
      var data = String(reader.result).split(",")[1] || "";
      queue(f.name, [{ filename: f.name, content_type: f.type || "application/octet-stream", data: data }]);
      fileInput.value = "";
    };
    reader.readAsDataURL(f);
  });
  emailForm.addEventListener("submit", function (e) {
    e.preventDefault();
    var email = emailForm.elements.email.value.trim();
    call("POST", "/email", { email: email }).then(function () {
      emailForm.hidden = true;
      note.hidden = false;
      note.textContent = t("saved", { email: email });
    }).catch(function () {});
  });

  var typingTimer;
  var source;
  function listen() {
    if (source) source.close();
    var url = API + "/events?token=" + encodeURIComponent(state.token);
    source = new EventSource(url);
    source.onopen = function () { typing.textContent = ""; refresh(); flush(); };
    source.onmessage = function (e) {
      var data = JSON.parse(e.data);
      if (data.type === "agent.typing") {
        typing.textContent = t("typing");
        clearTimeout(typingTimer);
        typingTimer = setTimeout(function () { typing.textContent = ""; }, 6000);
      } else refresh();
    };
    source.onerror = function () { typing.textContent = t("offline"); };
  }
  window.addEventListener("online", function () { flush(); refresh(); });
  window.addEventListener("storage", function (e) { if (e.key === KEY) refresh(); });

  function start() {
    var body = { token: state.token || null };
    if (IDENTITY) { try { body.identity = JSON.parse(IDENTITY); } catch (e) { /* ignored: anonymous */ } }
    call("POST", "/session", body).then(function (s) {
      if (state.token !== s.token) { state.token = s.token; if (!IDENTITY) state.outbox = state.outbox || []; }
      state.maxBytes = s.max_attachment_bytes;
      save();
      style(s.colour);
      if (s.greeting) log.appendChild(el("div", { class: "msg out greeting" }, [el("span", { class: "text", text: s.greeting })]));
      if (!s.someone_there || s.pre_chat_form) {
        note.hidden = false;
        note.textContent = s.email ? t("saved", { email: s.email }) : t("nobody");
        emailForm.hidden = !!s.email;
      }
      document.body.appendChild(host);
      panel.hidden = !state.open;
      listen();
    }).catch(function (e) {
      style("#555");
      host.setAttribute("data-refused", String(e.status || "network"));
      launcher.textContent = t("refused");
      launcher.disabled = true;
      document.body.appendChild(host);
    });
  }
  if (document.body) start(); else document.addEventListener("DOMContentLoaded", start);
})();
