// Canned responses: the list, create, edit and delete, with the placeholders the server fills in
// for the conversation at hand (store.canned renders them; unknown ones stay as written).
import { h, fill } from "../lib/dom.js";
import { get, post, patch, del } from "../lib/api.js";
import { t } from "../lib/i18n.js";
import { toast } from "../lib/toast.js";
import { page, field, errorLine, confirmed, run } from "./common.js";

const Q = { quiet: true };
const PLACEHOLDERS = ["contact.name", "contact.first_name", "contact.email", "conversation.number",
  "agent.name", "agent.first_name"];

function help() {
  return h("section", { class: "card admin-aside", "aria-labelledby": "placeholders-title" },
    h("h2", { id: "placeholders-title" }, t("admin.canned.placeholders")),
    h("p", { class: "hint" }, t("admin.canned.placeholders_hint")),
    h("dl", { class: "placeholders" }, PLACEHOLDERS.map((name) => [
      h("dt", {}, h("code", {}, `{{${name}}}`)), h("dd", {}, t(`admin.canned.ph.${name}`))])));
}

export async function cannedList(ctx) {
  const errors = errorLine("canned-error");
  const body = h("tbody");

  async function load() {
    try {
      const answer = await get("/canned-responses", Q);
      fill(body, answer.items.length ? answer.items.map((item) => {
        const remove = h("button", { type: "button", class: "danger", onclick: () => {
          if (!confirmed(t("admin.canned.confirm_delete", { name: `/${item.shortcut}` }))) return;
          run(remove, errors, async () => {
            await del(`/canned-responses/${item.id}`, Q);
            toast(t("admin.deleted", { name: `/${item.shortcut}` }));
            await load();
          });
        } }, t("admin.delete"));
        return h("tr", { dataset: { id: item.id } },
          h("th", { scope: "row" }, h("a", { href: `#/admin/canned/${item.id}` }, h("code", {}, `/${item.shortcut}`))),
          h("td", {}, item.title),
          h("td", { class: "clip" }, item.text),
          h("td", {}, h("div", { class: "row-actions" }, h("a", { href: `#/admin/canned/${item.id}`, class: "button-link" }, t("admin.edit")), remove)));
      }) : h("tr", {}, h("td", { colspan: 4, class: "empty" }, t("admin.canned.none"))));
    } catch (err) {
      fill(body, h("tr", {}, h("td", { colspan: 4, class: "empty" }, t("admin.load_failed"))));
      errors.show(err);
    }
  }
  await load();
  return {
    node: page("canned", t("admin.canned"),
      h("p", {}, h("a", { href: "#/admin/canned/new", class: "button-link primary", id: "new-canned" }, t("admin.canned.new"))),
      errors.node,
      h("div", { class: "table-wrap" }, h("table", { class: "admin-table", id: "canned-table" },
        h("caption", { class: "visually-hidden" }, t("admin.canned")),
        h("thead", {}, h("tr", {}, ["shortcut", "title", "text", "actions"].map((c) =>
          h("th", { scope: "col" }, t(`admin.canned.col_${c}`))))), body))),
    reload: load,
  };
}

export async function cannedForm(ctx, id) {
  const editing = id !== "new";
  let item = null;
  if (editing) {
    try {
      item = await get(`/canned-responses`, Q).then((r) => r.items.find((c) => String(c.id) === id));
    } catch (err) {
      return { node: page("canned", t("admin.canned"), h("p", { class: "empty", role: "alert" }, err.detail)) };
    }
    if (!item) return { node: page("canned", t("admin.canned"), h("p", { class: "empty", role: "alert" }, t("admin.canned.missing"))) };
  }
  const errors = errorLine("canned-form-error");
  const shortcut = h("input", { name: "shortcut", id: "canned-shortcut", required: true, maxlength: 50, pattern: "[^\\s/]+",
    value: item ? item.shortcut : "", autocomplete: "off" });
  const title = h("input", { name: "title", id: "canned-title", required: true, maxlength: 200, value: item ? item.title : "" });
  const text = h("textarea", { name: "text", id: "canned-text", required: true, rows: 8, value: item ? item.text : "" });
  const save = h("button", { type: "submit", class: "primary" }, editing ? t("admin.save") : t("admin.canned.create"));
  const form = h("form", { class: "admin-form card", id: "canned-form", onsubmit: (e) => {
    e.preventDefault();
    run(save, errors, async () => {
      const body = { shortcut: shortcut.value.trim(), title: title.value.trim(), text: text.value };
      if (editing) await patch(`/canned-responses/${item.id}`, body, Q);
      else await post("/canned-responses", body, Q);
      toast(t("admin.saved"));
      ctx.go("#/admin/canned");
    });
  } },
  field(t("admin.canned.shortcut"), shortcut, t("admin.canned.shortcut_hint")),
  field(t("admin.canned.title"), title),
  field(t("admin.canned.text"), text),
  errors.node,
  h("div", { class: "form-actions" }, save, h("a", { href: "#/admin/canned", class: "button-link" }, t("admin.back"))));
  return {
    node: page("canned", editing ? t("admin.canned.edit_named", { name: `/${item.shortcut}` }) : t("admin.canned.new"),
      h("div", { class: "admin-split" }, form, help())),
  };
}
