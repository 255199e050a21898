// The admin pages, routed under #/admin/<page>[/<id or "new">]; only admins get past the guard.
import { notAllowed } from "./common.js";
import { channelsList, channelForm } from "./channels.js";
import { agentsList, agentForm } from "./agents.js";
import { teamsPage } from "./teams.js";
import { cannedList, cannedForm } from "./canned.js";
import { rulesList, ruleForm } from "./rules.js";

export const ADMIN_ROUTE = /^\/admin(?:\/(channels|agents|teams|rules|canned))?(?:\/(new|\d+))?$/;

const LISTS = { channels: channelsList, agents: agentsList, teams: teamsPage, rules: rulesList, canned: cannedList };
const FORMS = { channels: channelForm, agents: agentForm, canned: cannedForm, rules: ruleForm };

let styled = null;

// The admin pages' own stylesheet, added once (and waited for, so nothing shows unstyled).
function styles() {
  styled = styled || new Promise((resolve) => {
    const link = document.createElement("link");
    link.rel = "stylesheet";
    link.href = "/ui/admin/admin.css";
    link.onload = link.onerror = resolve;
    document.head.append(link);
  });
  return styled;
}

export async function adminView(ctx, name = "channels", id) {
  if (!ctx.me || ctx.me.role !== "admin") return notAllowed();
  await styles();
  if (id && FORMS[name] && !(name === "agents" && id === "new")) return FORMS[name](ctx, id);
  return LISTS[name](ctx);
}
