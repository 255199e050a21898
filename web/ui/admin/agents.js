// Agents: the list (name, email, role, presence, capacity, languages, teams, active); invite (the
// agent is created, then a one-time link to copy); edit role, capacity (in all and per group of
// channel kinds), languages, skills, teams and language of the page; reset password (a new link); deactivate / reactivate (the server keeps
// the last active admin: its reason is shown); a new API token (shown once).
import { h, fill } from "../lib/dom.js";
import { get, post, patch } from "../lib/api.js";
import { t, LOCALES, LOCALE_NAMES } from "../lib/i18n.js";
import { toast } from "../lib/toast.js";
import { page, field, errorLine, copyable, confirmed, run, yesNo, capacityInputs } from "./common.js";

const Q = { quiet: true };

async function teamsById() {
  const answer = await get("/teams", Q).catch(() => ({ items: [] }));
  return new Map(answer.items.map((team) => [team.id, team.name]));
}

function languagesOf(text) {
  return text.split(/[\s,]+/).map((s) => s.trim().toLowerCase()).filter(Boolean);
}

// "returns, B2B" -> ["returns", "B2B"]: free-form skills keep their case and inner spaces.
function skillsOf(text) {
  return [...new Set(text.split(",").map((s) => s.trim()).filter(Boolean))];
}

function roleSelect(value, id) {
  return h("select", { name: "role", id }, ["agent", "admin"].map((r) =>
    h("option", { value: r, selected: r === value }, t(`admin.role.${r}`))));
}

export async function agentsList(ctx) {
  const errors = errorLine("agents-error");
  const body = h("tbody");
  const invited = h("div", { id: "invite-result", "aria-live": "polite" });

  async function load() {
    try {
      const [answer, teams] = await Promise.all([get("/agents", Q), teamsById()]);
      fill(body, answer.items.map((agent) => h("tr", { dataset: { id: agent.id }, class: agent.active ? null : "is-inactive" },
        h("th", { scope: "row" }, h("a", { href: `#/admin/agents/${agent.id}` }, agent.name)),
        h("td", {}, agent.email),
        h("td", {}, t(`admin.role.${agent.role}`)),
        h("td", {}, h("span", { class: "presence", dataset: { status: agent.presence } }, t(`admin.presence.${agent.presence}`))),
        h("td", { class: "num" }, `${agent.active_conversations} / ${agent.capacity}`),
        h("td", {}, agent.languages.join(", ")),
        h("td", { class: "teams-cell" }, agent.teams.map((id) => teams.get(id) || `#${id}`).join(", ")),
        h("td", {}, yesNo(agent.active)))));
    } catch (err) {
      errors.show(err);
    }
  }

  const name = h("input", { name: "name", required: true, maxlength: 200, autocomplete: "off" });
  const email = h("input", { name: "email", type: "email", required: true, autocomplete: "off" });
  const role = roleSelect("agent");
  const send = h("button", { type: "submit", class: "primary" }, t("admin.agents.invite"));
  const inviteErrors = errorLine("invite-error");
  const form = h("form", { class: "admin-form card inline-form", id: "invite-form", "aria-labelledby": "invite-title",
    onsubmit: (e) => {
      e.preventDefault();
      run(send, inviteErrors, async () => {
        const agent = await post("/agents", { name: name.value.trim(), email: email.value.trim(), role: role.value }, Q);
        const link = await post(`/agents/${agent.id}/invite`, undefined, Q);
        fill(invited, h("div", { class: "card notice" },
          h("p", {}, t("admin.agents.invited", { name: agent.name })),
          copyable(t("admin.agents.invite_link"), link.url, { id: "invite-link", once: true })));
        form.reset();
        await load();
        document.getElementById("invite-link").focus();
      });
    } },
  h("h2", { id: "invite-title" }, t("admin.agents.invite_title")),
  h("div", { class: "inline-fields" }, field(t("admin.agents.name"), name), field(t("admin.agents.email"), email),
    field(t("admin.agents.role"), role)),
  inviteErrors.node, h("div", { class: "form-actions" }, send));

  await load();
  const head = ["name", "email", "role", "presence", "load", "languages", "teams", "active"];
  return {
    node: page("agents", t("admin.agents"), form, invited, errors.node,
      h("div", { class: "table-wrap" }, h("table", { class: "admin-table", id: "agents-table" },
        h("caption", { class: "visually-hidden" }, t("admin.agents")),
        h("thead", {}, h("tr", {}, head.map((c) => h("th", { scope: "col" }, t(`admin.agents.col_${c}`))))), body))),
    reload: load,
  };
}

export async function agentForm(ctx, id) {
  let agent;
  try {
    agent = await get(`/agents/${id}`, Q);
  } catch (err) {
    return { node: page("agents", t("admin.agents"), h("p", { class: "empty", role: "alert" }, err.detail)) };
  }
  const teams = await teamsById();
  const errors = errorLine("agent-error");
  const shown = h("div", { id: "agent-once", "aria-live": "polite" });

  const name = h("input", { name: "name", required: true, maxlength: 200, value: agent.name });
  const role = roleSelect(agent.role, "agent-role");
  const capacity = h("input", { name: "capacity", id: "agent-capacity", type: "number", min: 0, max: 1000, value: agent.capacity });
  const languages = h("input", { name: "languages", id: "agent-languages", value: agent.languages.join(", ") });
  const capacities = capacityInputs(t("admin.agents.capacities"), agent.capacities, t("admin.agents.capacities_hint"));
  capacities.node.id = "agent-capacities";
  const skills = h("input", { name: "skills", id: "agent-skills", value: (agent.skills || []).join(", ") });
  const locale = h("select", { name: "locale", id: "agent-locale" }, LOCALES.map((code) =>
    h("option", { value: code, lang: code, selected: code === (agent.locale || "en") }, LOCALE_NAMES[code])));
  const teamBoxes = h("fieldset", { class: "checks", id: "agent-teams" }, h("legend", {}, t("admin.agents.teams")),
    teams.size ? [...teams].map(([teamId, teamName]) => h("label", { class: "check" },
      h("input", { type: "checkbox", name: "teams", value: teamId, checked: agent.teams.includes(teamId) }), " ", teamName))
      : h("p", { class: "hint" }, t("admin.agents.no_teams")));
  const save = h("button", { type: "submit", class: "primary" }, t("admin.save"));

  const form = h("form", { class: "admin-form card", id: "agent-form", onsubmit: (e) => {
    e.preventDefault();
    run(save, errors, async () => {
      const chosen = [...form.querySelectorAll("input[name=teams]:checked")].map((box) => Number(box.value));
      agent = await patch(`/agents/${agent.id}`, { name: name.value.trim(), role: role.value, capacity: Number(capacity.value),
        languages: languagesOf(languages.value), teams: chosen, locale: locale.value, capacities: capacities.read(),
        skills: skillsOf(skills.value) }, Q);
      toast(t("admin.saved"));
    });
  } },
  field(t("admin.agents.name"), name), h("p", {}, h("strong", {}, t("admin.agents.email")), " ", agent.email),
  field(t("admin.agents.role"), role), field(t("admin.agents.capacity"), capacity, t("admin.agents.capacity_hint")),
  capacities.node,
  field(t("admin.agents.languages"), languages, t("admin.agents.languages_hint")),
  field(t("admin.agents.skills"), skills, t("admin.agents.skills_hint")),
  teamBoxes, field(t("admin.agents.locale"), locale), h("div", { class: "form-actions" }, save,
    h("a", { href: "#/admin/agents", class: "button-link" }, t("admin.back"))));

  const reset = h("button", { type: "button", id: "agent-reset", onclick: () => {
    if (!confirmed(t("admin.agents.confirm_reset", { name: agent.name }))) return;
    run(reset, errors, async () => {
      const link = await post(`/agents/${agent.id}/invite`, undefined, Q);
      fill(shown, copyable(t("admin.agents.reset_link"), link.url, { id: "reset-link", once: true }));
    });
  } }, t("admin.agents.reset"));
  const token = h("button", { type: "button", id: "agent-token", onclick: () => run(token, errors, async () => {
    const made = await post(`/agents/${agent.id}/token`, undefined, Q);
    fill(shown, copyable(t("admin.agents.token"), made.token, { id: "new-token", once: true }));
  }) }, t("admin.agents.new_token"));
  const active = h("button", { type: "button", id: "agent-active", class: agent.active ? "danger" : null, onclick: () => {
    if (agent.active && !confirmed(t("admin.agents.confirm_deactivate", { name: agent.name }))) return;
    run(active, errors, async () => {
      agent = await patch(`/agents/${agent.id}`, { active: !agent.active }, Q);
      drawActive();
      toast(t(agent.active ? "admin.agents.reactivated" : "admin.agents.deactivated", { name: agent.name }));
    });
  } });
  const state = h("p", { id: "agent-state" });
  function drawActive() {
    active.textContent = agent.active ? t("admin.agents.deactivate") : t("admin.agents.reactivate");
    active.className = agent.active ? "danger" : "";
    state.textContent = agent.active ? t("admin.agents.is_active") : t("admin.agents.is_inactive");
    token.disabled = !agent.active;
  }
  drawActive();

  return {
    node: page("agents", t("admin.agents.edit_named", { name: agent.name }),
      errors.node,
      h("div", { class: "admin-split" }, form,
        h("section", { class: "card admin-aside", "aria-labelledby": "agent-access" },
          h("h2", { id: "agent-access" }, t("admin.agents.access")), state,
          h("div", { class: "form-actions" }, reset, token, active), shown))),
  };
}
