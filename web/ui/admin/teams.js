// Teams: the list with each team's agents, create, rename and delete (a team that conversations
// still belong to is refused by the server, with its reason).
import { h, fill } from "../lib/dom.js";
import { get, post, patch, del } from "../lib/api.js";
import { t } from "../lib/i18n.js";
import { toast } from "../lib/toast.js";
import { page, field, errorLine, confirmed, run } from "./common.js";

const Q = { quiet: true };

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
      h("p", { class: "hint" }, members.length ? t("admin.teams.members", { names: members.join(", ") }) : t("admin.teams.no_members")));
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
  return { node: page("teams", t("admin.teams"), form, errors.node, list), reload: load };
}
