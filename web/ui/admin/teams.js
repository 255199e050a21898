// Teams: the list with each team's agents, create, rename and delete (a team that conversations
// still belong to is refused by the server, with its reason); each team's routing settings
// (policy, capacities per group, skill wait, sticky time, return on away, reassignment time,
// business hours: PATCH /teams/{id}); and the shop's default business hours and SLA targets
// (PUT /settings/hours, /settings/sla).
import { h, fill } from "../lib/dom.js";
import { get, post, patch, put, del } from "../lib/api.js";
import { t } from "../lib/i18n.js";
import { toast } from "../lib/toast.js";
import { page, field, errorLine, confirmed, run, jsonArea, readJson, capacityInputs, numberOrNull } from "./common.js";

const Q = { quiet: true };
const POLICIES = ["least_loaded", "round_robin", "sticky"];
const HOURS_EXAMPLE = '{"timezone": "Europe/Madrid", "week": {"mon": [["09:00", "18:00"]]}, "country": "ES", "closed": []}';

// A team's routing settings, saved with one PATCH; the answer is shown back.
function routingForm(team) {
  const errors = errorLine(`team-${team.id}-routing-error`);
  const policy = h("select", { name: "policy" }, POLICIES.map((p) =>
    h("option", { value: p, selected: p === team.policy }, t(`admin.policy.${p}`))));
  const capacities = capacityInputs(t("admin.teams.capacities"), team.capacities, t("admin.teams.capacities_hint"));
  const skillWait = h("input", { name: "skill_wait_seconds", type: "number", min: 0, max: 7 * 86400, required: true,
    value: String(team.skill_wait_seconds) });
  const sticky = h("input", { name: "sticky_seconds", type: "number", min: 0, max: 365 * 86400, required: true,
    value: String(team.sticky_seconds) });
  const returnOnAway = h("input", { type: "checkbox", name: "return_on_away", checked: team.return_on_away });
  const reassign = h("input", { name: "reassign_after", type: "number", min: 1, max: 30 * 86400, step: "any",
    value: team.reassign_after === null || team.reassign_after === undefined ? "" : String(team.reassign_after) });
  const hours = jsonArea({ name: "hours", placeholder: HOURS_EXAMPLE, dataset: { label: t("admin.teams.hours") } }, team.hours);
  const save = h("button", { type: "submit", class: "primary" }, t("admin.teams.save_routing"));
  const form = h("form", { class: "admin-form team-routing", onsubmit: (e) => {
    e.preventDefault();
    run(save, errors, async () => {
      const fresh = await patch(`/teams/${team.id}`, { policy: policy.value, capacities: capacities.read(),
        skill_wait_seconds: Number(skillWait.value), sticky_seconds: Number(sticky.value),
        return_on_away: returnOnAway.checked, reassign_after: numberOrNull(reassign), hours: readJson(hours) }, Q);
      Object.assign(team, fresh);
      toast(t("admin.saved"));
    });
  } },
  field(t("admin.teams.policy"), policy, t("admin.teams.policy_hint")),
  capacities.node,
  h("div", { class: "inline-fields" },
    field(t("admin.teams.skill_wait"), skillWait, t("admin.teams.skill_wait_hint")),
    field(t("admin.teams.sticky"), sticky, t("admin.teams.sticky_hint")),
    field(t("admin.teams.reassign"), reassign, t("admin.teams.reassign_hint"))),
  field(t("admin.teams.return_on_away"), returnOnAway, t("admin.teams.return_on_away_hint")),
  field(t("admin.teams.hours"), hours, t("admin.teams.hours_hint")),
  errors.node, h("div", { class: "form-actions" }, save));
  return h("details", { class: "team-routing-box" },
    h("summary", {}, t("admin.teams.routing_of", { name: team.name })), form);
}

// The shop's defaults: business hours (teams without their own) and SLA targets.
async function shopSettings() {
  const hoursErrors = errorLine("shop-hours-error");
  const slaErrors = errorLine("shop-sla-error");
  let hoursNow = null;
  let slaNow = null;
  try {
    [hoursNow, slaNow] = await Promise.all([get("/settings/hours", Q), get("/settings/sla", Q)]);
  } catch (err) {
    hoursErrors.show(err);
  }
  const hours = jsonArea({ name: "hours", id: "shop-hours", placeholder: HOURS_EXAMPLE, dataset: { label: t("admin.shop.hours") } },
    hoursNow ? hoursNow.hours : null);
  const sla = jsonArea({ name: "sla", id: "shop-sla", rows: 10, dataset: { label: t("admin.shop.sla") } }, slaNow);
  const saveHours = h("button", { type: "submit" }, t("admin.shop.save_hours"));
  const saveSla = h("button", { type: "submit" }, t("admin.shop.save_sla"));
  const hoursForm = h("form", { class: "admin-form", id: "shop-hours-form", onsubmit: (e) => {
    e.preventDefault();
    run(saveHours, hoursErrors, async () => {
      const saved = await put("/settings/hours", { hours: readJson(hours) }, Q);
      hours.value = saved.hours === null ? "" : JSON.stringify(saved.hours, null, 2);
      toast(t("admin.saved"));
    });
  } }, field(t("admin.shop.hours"), hours, t("admin.shop.hours_hint")), hoursErrors.node, h("div", { class: "form-actions" }, saveHours));
  const slaForm = h("form", { class: "admin-form", id: "shop-sla-form", onsubmit: (e) => {
    e.preventDefault();
    run(saveSla, slaErrors, async () => {
      const saved = await put("/settings/sla", readJson(sla, {}), Q);
      sla.value = JSON.stringify(saved, null, 2);
      toast(t("admin.saved"));
    });
  } }, field(t("admin.shop.sla"), sla, t("admin.shop.sla_hint")), slaErrors.node, h("div", { class: "form-actions" }, saveSla));
  return h("section", { class: "card admin-form", id: "shop-settings", "aria-labelledby": "shop-settings-title" },
    h("h2", { id: "shop-settings-title" }, t("admin.shop.title")), hoursForm, slaForm);
}

export async function teamsPage(ctx) {
  const errors = errorLine("teams-error");
  const list = h("ul", { class: "admin-list", id: "teams-list" });

  function item(team, members) {
    const input = h("input", { name: "name", value: team.name, required: true, maxlength: 100,
      "aria-label": t("admin.teams.name_of", { name: team.name }) });
    const save = h("button", { type: "submit" }, t("admin.teams.rename"));
    const remove = h("button", { type: "button", class: "danger", onclick: () => {
      if (!confirmed(t("admin.teams.confirm_delete", { name: team.name }))) return;
      run(remove, errors, async () => {
        await del(`/teams/${team.id}`, Q);
        toast(t("admin.deleted", { name: team.name }));
        await load();
      });
    } }, t("admin.delete"));
    return h("li", { class: "card team", dataset: { id: team.id } },
      h("form", { class: "inline-form", onsubmit: (e) => {
        e.preventDefault();
        run(save, errors, async () => {
          await patch(`/teams/${team.id}`, { name: input.value.trim() }, Q);
          toast(t("admin.saved"));
          await load();
        });
      } }, input, save, remove),
      h("p", { class: "hint" }, members.length ? t("admin.teams.members", { names: members.join(", ") }) : t("admin.teams.no_members")),
      routingForm(team));
  }

  async function load() {
    try {
      const [teams, agents] = await Promise.all([get("/teams", Q), get("/agents", Q)]);
      fill(list, teams.items.length ? teams.items.map((team) => item(team,
        agents.items.filter((a) => a.teams.includes(team.id)).map((a) => a.name)))
        : h("li", { class: "empty" }, t("admin.teams.none")));
    } catch (err) {
      errors.show(err);
    }
  }

  const name = h("input", { name: "name", id: "team-name", required: true, maxlength: 100 });
  const create = h("button", { type: "submit", class: "primary" }, t("admin.teams.create"));
  const form = h("form", { class: "admin-form card inline-form", id: "team-form", onsubmit: (e) => {
    e.preventDefault();
    run(create, errors, async () => {
      await post("/teams", { name: name.value.trim() }, Q);
      form.reset();
      await load();
    });
  } }, field(t("admin.teams.new"), name), create);

  await load();
  const shop = await shopSettings();
  return { node: page("teams", t("admin.teams"), form, errors.node, list, shop), reload: load };
}
