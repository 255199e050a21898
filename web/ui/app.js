// The inbox page: who is signed in, the layout (header, nav), the hash router, and the live
// stream handed to the view on screen. Views are functions (ctx, ...params) returning
// {node, event?(e), reload?(), destroy?()}; ctx = {me, go, refreshCounts}.
import { h, fill, $ } from "./lib/dom.js";
import { get, patch, del, setCsrf, onSignedOut } from "./lib/api.js";
import { t, setLocale, pick, getLocale, LOCALES, LOCALE_NAMES } from "./lib/i18n.js";
import * as stream from "./lib/stream.js";
import { toast } from "./lib/toast.js";
import { retrying } from "./lib/retry.js";
import { showSignIn, wireSignIn, inviteView } from "./inbox/signin.js";
import { listView, countsInto, forgetLookups } from "./inbox/list.js";
import { conversationView, forgetAgents } from "./inbox/conversation.js";
import { searchView } from "./inbox/search.js";
import { presence } from "./inbox/presence.js";
import { shortcuts, openHelp } from "./inbox/keys.js";
import { ADMIN_ROUTE, adminView } from "./admin/index.js";

// [pattern on the part after "#", view, needs a signed-in agent]
export const ROUTES = [
  [/^\/invite\/([^/]+)$/, inviteView, false],
  [/^\/conversations\/(\d+)$/, conversationView, true],
  [/^\/search$/, searchView, true],
  [/^\/(mine|unassigned|all)?$/, listView, true],
  [ADMIN_ROUTE, adminView, true],
];
// Header navigation: [hash, catalogue key, admins only, counts key]
export const NAV = [
  ["#/mine", "nav.mine", false, "mine"],
  ["#/unassigned", "nav.unassigned", false, "unassigned"],
  ["#/all", "nav.all", false, "all"],
  ["#/admin", "admin.nav", true, null],
];

const state = { me: null, view: null, shell: null, counts: null };

function go(hash) {
  if (location.hash === hash) render();
  else location.hash = hash;
}

// Tried again while the server cannot be asked; nothing to do once signed out.
const refreshCounts = retrying(async () => !state.me || !state.counts || countsInto(state.counts));

const ctx = { get me() { return state.me; }, go, refreshCounts, signedIn: (session) => onSignedIn(session) };

function header() {
  const me = state.me;
  const language = h("select", { id: "language", "aria-label": t("layout.language"), onchange: async (e) => {
    const code = e.target.value;
    await patch("/me", { locale: code }).catch(() => null);
    localStorage.setItem("omnidesk.locale", code);
    await setLocale(code);
    layout();
  } }, LOCALES.map((code) => h("option", { value: code, selected: code === getLocale(), lang: code }, LOCALE_NAMES[code])));
  const signOut = h("button", { type: "button", class: "quiet", onclick: signOutNow }, t("layout.sign_out"));
  const counts = h("span", { hidden: true });
  const links = NAV.filter(([, , adminOnly]) => !adminOnly || me.role === "admin").map(([href, key, , count]) =>
    h("a", { href, class: "nav-link", dataset: { nav: href } }, t(key),
      count ? h("span", { class: "badge", dataset: { count } }) : null));
  state.counts = h("nav", { class: "nav", "aria-label": t("layout.nav") }, links, counts);
  return h("header", { class: "topbar" },
    h("a", { class: "brand", href: "#/mine" }, "omnidesk"),
    state.counts,
    h("form", { class: "search-form", role: "search", onsubmit: (e) => {
      e.preventDefault();
      const q = e.target.elements.q.value.trim();
      if (q) go(`#/search?q=${encodeURIComponent(q)}`);
    } }, h("input", { name: "q", type: "search", id: "search-box", "aria-label": t("search.label"),
      placeholder: t("search.placeholder") })),
    h("div", { class: "me" },
      h("span", { class: "me-name", id: "me-name" }, me.name),
      presence.toggle(me),
      presence.notificationsButton(),
      language,
      h("button", { type: "button", class: "quiet", id: "help-button", "aria-label": t("keys.title"), title: t("keys.title"),
        onclick: openHelp }, "?"),
      signOut));
}

function layout() {
  document.title = t("layout.title");
  const shell = $("#shell");
  state.shell = h("main", { id: "view", tabindex: "-1" });
  fill(shell, header(), state.shell,
    h("div", { id: "live", class: "visually-hidden", "aria-live": "polite" }));
  shell.hidden = false;
  $("#signin").hidden = true;
  $("#public").hidden = true;
  refreshCounts();
  render();
}

function routeOf() {
  const raw = location.hash.replace(/^#/, "") || "/";
  const [path, query] = raw.split("?");
  return { path, params: new URLSearchParams(query || "") };
}

let renders = 0;

async function render() {
  const { path, params } = routeOf();
  const turn = ++renders;  // a later render (the address changed meanwhile) wins over this one
  for (const [pattern, view, signedIn] of ROUTES) {
    const match = path.match(pattern);
    if (!match) continue;
    if (signedIn && !state.me) return showSignIn();
    if (state.view && state.view.destroy) state.view.destroy();
    state.view = null;
    const made = await view(ctx, ...match.slice(1).map((p) => p && decodeURIComponent(p)), params);
    if (turn !== renders) {
      if (made.destroy) made.destroy();
      return;
    }
    state.view = made;
    if (!signedIn) {
      for (const id of ["shell", "signin"]) $(`#${id}`).hidden = true;
      fill($("#public"), made.node);
      $("#public").hidden = false;
      return;
    }
    fill(state.shell, made.node);
    for (const link of document.querySelectorAll(".nav-link")) {
      link.setAttribute("aria-current", location.hash.startsWith(link.dataset.nav) ? "page" : "false");
    }
    return;
  }
  fill(state.shell, h("p", { class: "empty" }, t("error.not_found")));
}

function onEvent(event) {
  if (event.type === "stream.closed") {
    get("/session", { quiet: true }).catch((err) => {
      if (err.status === 401 && state.me) {
        ended();
        toast(t("signin.ended"), "info");
      }
    });
    return;
  }
  if (event.type === "reset") {
    if (!event.local) toast(t("stream.reset"), "info", 10000);
    refreshCounts();
    if (state.view && state.view.reload) state.view.reload();
    return;
  }
  presence.event(event, state.me);
  if (state.view && state.view.event) state.view.event(event);
  if (/^conversation\.|^message\.created/.test(event.type)) scheduleCounts();
}

let countsTimer = null;
function scheduleCounts() {
  clearTimeout(countsTimer);
  countsTimer = setTimeout(refreshCounts, 300);
}

// Signing in once, however many ask at the same moment (the form, and the page's first look at
// its session answering after the form signed in).
let signingIn = null;
function onSignedIn(session) {
  if (!signingIn) signingIn = showSignedIn(session).finally(() => { signingIn = null; });
  return signingIn;
}

async function showSignedIn(session) {
  setCsrf(session.csrf_token);
  state.me = await get("/me");
  await setLocale(state.me.locale || localStorage.getItem("omnidesk.locale") || pick());
  stream.connect(onEvent);
  presence.start(state.me);
  if (location.pathname !== "/") history.replaceState(null, "", "/" + location.hash);
  if (!location.hash || location.hash.startsWith("#/invite/")) location.hash = "#/mine";
  layout();
}

async function signOutNow() {
  await del("/session").catch(() => null);
  ended();
}

function ended() {
  stream.disconnect();
  forgetLookups();
  forgetAgents();
  presence.stop();
  state.me = null;
  setCsrf("");
  $("#shell").hidden = true;
  showSignIn();
}

async function boot() {
  wireSignIn(onSignedIn);
  // An invite link is /invite/<token>: the same page, routed by hash.
  const invite = location.pathname.match(/^\/invite\/([^/]+)$/);
  if (invite) history.replaceState(null, "", `/#/invite/${invite[1]}`);
  await setLocale(localStorage.getItem("omnidesk.locale") || pick());
  onSignedOut(() => { if (state.me) { ended(); toast(t("signin.ended"), "info"); } });
  window.addEventListener("hashchange", render);
  shortcuts(ctx, () => state.view);
  const { path } = routeOf();
  if (path.startsWith("/invite/")) return render();
  const session = await get("/session", { quiet: true }).catch(() => null);
  if (state.me || signingIn) return;  // the form signed in while this was asked (a quick agent)
  if (session) await onSignedIn(session);
  else showSignIn();
}

boot();
