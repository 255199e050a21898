// Signing in (the form written in index.html, so it exists before any script runs) and accepting
// an invite (#/invite/<token>: set a password, be signed in).
import { h, $ } from "../lib/dom.js";
import { get, post } from "../lib/api.js";
import { t } from "../lib/i18n.js";

let wired = false;

function minutes(headers) {
  const seconds = Number(headers && headers.get("Retry-After"));
  return Number.isFinite(seconds) && seconds > 0 ? Math.ceil(seconds / 60) : 15;
}

export function showSignIn() {
  for (const id of ["shell", "public"]) $(`#${id}`).hidden = true;
  $("#signin").hidden = false;
  document.title = t("signin.title");
  $("#signin-form").elements.email.focus();
}

// Wired as soon as the page's script runs (before anything is fetched), so a quick submit never
// falls through to the browser's own form post.
export function wireSignIn(onSignedIn) {
  const form = $("#signin-form");
  const error = $("#signin-error");
  if (wired) return;
  wired = true;
  form.querySelector("button[type=submit]").disabled = false;
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    error.textContent = "";
    const button = form.querySelector("button");
    button.disabled = true;
    try {
      const session = await post("/session", { email: form.elements.email.value.trim(),
        password: form.elements.password.value }, { quiet: true });
      form.elements.password.value = "";
      await onSignedIn(session);
    } catch (err) {
      if (err.status === 401) error.textContent = t("signin.wrong");
      else if (err.status === 429) error.textContent = t("signin.rate_limited", { minutes: minutes(err.headers) });
      else error.textContent = err.detail || t("error.network");
      form.elements.password.focus();
    } finally {
      button.disabled = false;
    }
  });
}

export async function inviteView(ctx, token) {
  const node = h("div", { class: "card signin-card" });
  let invite;
  try {
    invite = await get(`/invites/${encodeURIComponent(token)}`, { quiet: true });
  } catch (err) {
    node.append(h("h1", {}, t("invite.title")),
      h("p", { class: "form-error", role: "alert" }, err.status === 410 ? t("invite.gone") : t("invite.unknown")),
      h("a", { href: "/" }, t("invite.to_sign_in")));
    return { node };
  }
  const error = h("p", { class: "form-error", role: "alert" });
  const password = h("input", { id: "invite-password", name: "password", type: "password", required: true,
    minlength: 10, autocomplete: "new-password" });
  const again = h("input", { id: "invite-again", name: "again", type: "password", required: true,
    autocomplete: "new-password" });
  const form = h("form", { method: "post", action: "/", onsubmit: async (e) => {
    e.preventDefault();
    error.textContent = "";
    if (password.value !== again.value) {
      error.textContent = t("invite.mismatch");
      return;
    }
    try {
      const session = await post(`/invites/${encodeURIComponent(token)}`, { password: password.value }, { quiet: true });
      history.replaceState(null, "", "/#/mine");
      ctx.signedIn(session);
    } catch (err) {
      error.textContent = err.status === 410 ? t("invite.gone") : err.detail;
    }
  } },
    h("h1", {}, t("invite.title")),
    h("p", {}, t("invite.welcome", { name: invite.name, email: invite.email })),
    h("label", { for: "invite-password" }, t("invite.password")), password,
    h("label", { for: "invite-again" }, t("invite.again")), again,
    error,
    h("button", { type: "submit", class: "primary" }, t("invite.submit")));
  node.append(form);
  return { node };
}
