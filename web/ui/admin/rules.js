// Routing rules: the list in the order they run (position, then id) with a one-line summary of
// conditions -> actions; create and edit (conditions and actions as JSON, the server's reason
// shown when it refuses them: router.rules checks them), enable/disable and delete.
import { h, fill } from "../lib/dom.js";
import { get, post, patch, del } from "../lib/api.js";
import { t } from "../lib/i18n.js";
import { toast } from "../lib/toast.js";
import { page, field, errorLine, confirmed, run, yesNo, jsonArea, readJson, numberOrNull } from "./common.js";

const Q = { quiet: true };

export const EXAMPLE_CONDITIONS = [{ type: "words", any: ["refund", "reembolso"] }];
export const EXAMPLE_ACTIONS = [{ type: "set_priority", value: "high" }, { type: "add_tag", value: "refund" }];

const list = (values) => (Array.isArray(values) ? values.join(", ") : String(values));

function condition(c) {
  switch (c.type) {
    case "channel_kind": return t("admin.rules.if_kind", { values: list(c.in) });
    case "channel": return t("admin.rules.if_channel", { values: list(c.in) });
    case "language": return t("admin.rules.if_language", { values: list(c.in) });
    case "words": return t("admin.rules.if_words", { values: list(c.any) });
    case "contact": return t("admin.rules.if_contact", { attribute: c.attribute, value: String(c.equals) });
    case "business_hours": return t(c.is === "closed" ? "admin.rules.if_closed" : "admin.rules.if_open");
    default: return JSON.stringify(c);
  }
}

function action(a, teams) {
  switch (a.type) {
    case "set_priority": return t("admin.rules.then_priority", { value: t(`admin.priority.${a.value}`) });
    case "set_team": return t("admin.rules.then_team", { name: teams.get(a.team_id) || `#${a.team_id}` });
    case "add_skill": return t("admin.rules.then_skill", { value: a.value });
    case "add_tag": return t("admin.rules.then_tag", { value: a.value });
    default: return JSON.stringify(a);
  }
}

// "text has refund, reembolso -> priority High; tag refund" (`teams`: id -> name).
export function summary(rule, teams = new Map()) {
  const when = rule.conditions.length ? rule.conditions.map(condition).join(t("admin.rules.and"))
    : t("admin.rules.always");
  return `${when} → ${rule.actions.map((a) => action(a, teams)).join("; ")}`;
}

async function teamNames() {
  const answer = await get("/teams", Q).catch(() => ({ items: [] }));
  return new Map(answer.items.map((team) => [team.id, team.name]));
}

export async function rulesList(ctx) {
  const errors = errorLine("rules-error");
  const body = h("tbody");

  function row(rule, teams) {
    const toggle = h("button", { type: "button", class: "rule-toggle", onclick: () => run(toggle, errors, async () => {
      await patch(`/rules/${rule.id}`, { enabled: !rule.enabled }, Q);
      toast(t("admin.saved"));
      await load();
    }) }, rule.enabled ? t("admin.disable") : t("admin.enable"));
    const remove = h("button", { type: "button", class: "danger", onclick: () => {
      if (!confirmed(t("admin.rules.confirm_delete", { name: rule.name }))) return;
      run(remove, errors, async () => {
        await del(`/rules/${rule.id}`, Q);
        toast(t("admin.deleted", { name: rule.name }));
        await load();
      });
    } }, t("admin.delete"));
    return h("tr", { dataset: { id: rule.id }, class: rule.enabled ? null : "is-inactive" },
      h("td", { class: "num" }, String(rule.position)),
      h("th", { scope: "row" }, h("a", { href: `#/admin/rules/${rule.id}` }, rule.name)),
      h("td", { class: "rule-enabled" }, yesNo(rule.enabled)),
      h("td", { class: "rule-summary" }, summary(rule, teams)),
      h("td", {}, h("div", { class: "row-actions" },
        h("a", { href: `#/admin/rules/${rule.id}`, class: "button-link" }, t("admin.edit")), toggle, remove)));
  }

  async function load() {
    try {
      const [answer, teams] = await Promise.all([get("/rules", Q), teamNames()]);
      fill(body, answer.items.length ? answer.items.map((rule) => row(rule, teams))
        : h("tr", {}, h("td", { colspan: 5, class: "empty" }, t("admin.rules.none"))));
    } catch (err) {
      fill(body, h("tr", {}, h("td", { colspan: 5, class: "empty" }, t("admin.load_failed"))));
      errors.show(err);
    }
  }
  await load();
  return {
    node: page("rules", t("admin.rules"),
      h("p", { class: "hint" }, t("admin.rules.intro")),
      h("p", {}, h("a", { href: "#/admin/rules/new", class: "button-link primary", id: "new-rule" }, t("admin.rules.new"))),
      errors.node,
      h("div", { class: "table-wrap" }, h("table", { class: "admin-table", id: "rules-table" },
        h("caption", { class: "visually-hidden" }, t("admin.rules")),
        h("thead", {}, h("tr", {}, ["position", "name", "enabled", "summary", "actions"].map((c) =>
          h("th", { scope: "col" }, t(`admin.rules.col_${c}`))))), body))),
    reload: load,
  };
}

function help() {
  const code = (text) => h("code", {}, text);
  return h("section", { class: "card admin-aside", "aria-labelledby": "rule-help-title" },
    h("h2", { id: "rule-help-title" }, t("admin.rules.help")),
    h("p", { class: "hint" }, t("admin.rules.help_conditions")),
    h("ul", { class: "rule-help" },
      h("li", {}, code('{"type": "channel_kind", "in": ["email", "whatsapp"]}')),
      h("li", {}, code('{"type": "channel", "in": [3]}')),
      h("li", {}, code('{"type": "language", "in": ["ca", "es"]}')),
      h("li", {}, code('{"type": "words", "any": ["refund", "broken"]}')),
      h("li", {}, code('{"type": "contact", "attribute": "email_domain", "equals": "bigshop.example"}')),
      h("li", {}, code('{"type": "business_hours", "is": "closed"}'))),
    h("p", { class: "hint" }, t("admin.rules.help_actions")),
    h("ul", { class: "rule-help" },
      h("li", {}, code('{"type": "set_priority", "value": "urgent"}')),
      h("li", {}, code('{"type": "set_team", "team_id": 2}')),
      h("li", {}, code('{"type": "add_skill", "value": "B2B"}')),
      h("li", {}, code('{"type": "add_tag", "value": "complaint"}'))));
}

export async function ruleForm(ctx, id) {
  const editing = id !== "new";
  let rule = null;
  if (editing) {
    try {
      rule = await get(`/rules/${id}`, Q);
    } catch (err) {
      return { node: page("rules", t("admin.rules"), h("p", { class: "empty", role: "alert" }, err.detail)) };
    }
  }
  const errors = errorLine("rule-error");
  const name = h("input", { name: "name", id: "rule-name", required: true, maxlength: 200, value: rule ? rule.name : "" });
  const position = h("input", { name: "position", id: "rule-position", type: "number", min: -1000000, max: 1000000,
    value: rule ? String(rule.position) : "" });
  const enabled = h("input", { type: "checkbox", name: "enabled", id: "rule-enabled", checked: rule ? rule.enabled : true });
  const conditions = jsonArea({ name: "conditions", id: "rule-conditions", dataset: { label: t("admin.rules.conditions") } },
    rule ? rule.conditions : EXAMPLE_CONDITIONS);
  const actions = jsonArea({ name: "actions", id: "rule-actions", required: true, dataset: { label: t("admin.rules.actions") } },
    rule ? rule.actions : EXAMPLE_ACTIONS);
  const save = h("button", { type: "submit", class: "primary" }, editing ? t("admin.save") : t("admin.rules.create"));

  const form = h("form", { class: "admin-form card", id: "rule-form", onsubmit: (e) => {
    e.preventDefault();
    run(save, errors, async () => {
      const body = { name: name.value.trim(), enabled: enabled.checked,
        conditions: readJson(conditions, []), actions: readJson(actions, []) };
      const at = numberOrNull(position);
      if (at !== null) body.position = at;
      if (editing) rule = await patch(`/rules/${rule.id}`, body, Q);
      else await post("/rules", body, Q);
      toast(t("admin.saved"));
      ctx.go("#/admin/rules");
    });
  } },
  field(t("admin.rules.name"), name),
  field(t("admin.rules.position"), position, t("admin.rules.position_hint")),
  field(t("admin.rules.enabled"), enabled),
  field(t("admin.rules.conditions"), conditions, t("admin.rules.conditions_hint")),
  field(t("admin.rules.actions"), actions, t("admin.rules.actions_hint")),
  errors.node,
  h("div", { class: "form-actions" }, save, h("a", { href: "#/admin/rules", class: "button-link" }, t("admin.back"))));
  return {
    node: page("rules", editing ? t("admin.rules.edit_named", { name: rule.name }) : t("admin.rules.new"),
      h("div", { class: "admin-split" }, form, help())),
  };
}
