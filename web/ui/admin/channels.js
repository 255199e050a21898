// Channels: the list (kind, name, enabled, status, last error, webhook URL to copy), create (kind
// first, then that kind's settings), edit, enable/disable, test (the same settings sent again:
// the server re-runs its check) and delete.
import { h, fill } from "../lib/dom.js";
import { get, post, patch, del } from "../lib/api.js";
import { t } from "../lib/i18n.js";
import { toast } from "../lib/toast.js";
import { page, field, errorLine, copyable, confirmed, run, yesNo } from "./common.js";
import { serverKinds, kindFields, readConfig } from "./kinds.js";

const Q = { quiet: true };

// "WhatsApp", "Web chat", ...; a kind without a name in the catalogue shows as it is called.
export function kindName(kind) {
  const key = `admin.kind.${kind}`;
  const name = t(key);
  return name === key ? kind : name;
}

function statusChip(channel) {
  return h("span", { class: ["chip", `channel-${channel.status}`], dataset: { status: channel.status } },
    t(`admin.channels.status_${channel.status}`));
}

async function testChannel(channel, button, out) {
  out.textContent = t("admin.channels.testing");
  out.dataset.result = "";
  try {
    const fresh = await patch(`/channels/${channel.id}`, { config: {} }, Q);
    button.disabled = false;
    out.dataset.result = fresh.status === "error" ? "error" : "ok";
    out.textContent = fresh.status === "error" ? t("admin.channels.test_failed", { reason: fresh.last_error || "" })
      : t("admin.channels.test_ok");
    return fresh;
  } catch (err) {
    out.dataset.result = "error";
    out.textContent = t("admin.channels.test_failed", { reason: err.detail });
    return null;
  }
}

export async function channelsList(ctx) {
  const errors = errorLine("channels-error");
  const body = h("tbody");
  const table = h("table", { class: "admin-table", id: "channels-table" },
    h("caption", { class: "visually-hidden" }, t("admin.channels")),
    h("thead", {}, h("tr", {}, ["kind", "name", "enabled", "status", "last_error", "webhook", "actions"]
      .map((c) => h("th", { scope: "col" }, t(`admin.channels.col_${c}`))))),
    body);

  function row(channel) {
    const result = h("p", { class: "test-result", role: "status" });
    const toggle = h("button", { type: "button", onclick: () => run(toggle, errors, async () => {
      await patch(`/channels/${channel.id}`, { enabled: !channel.enabled }, Q);
      await load();
    }) }, channel.enabled ? t("admin.disable") : t("admin.enable"));
    const test = h("button", { type: "button", onclick: async () => {
      test.disabled = true;
      const fresh = await testChannel(channel, test, result);
      test.disabled = false;
      if (fresh) tr.querySelector(".status-cell").replaceChildren(statusChip(fresh));
    } }, t("admin.channels.test"));
    const remove = h("button", { type: "button", class: "danger", onclick: () => {
      if (!confirmed(t("admin.channels.confirm_delete", { name: channel.name }))) return;
      run(remove, errors, async () => {
        const done = await del(`/channels/${channel.id}`, Q);
        toast(t("admin.deleted", { name: channel.name }));
        if (done && done.warning) toast(done.warning, "error");  // deleted, but the provider kept its webhook
        await load();
      });
    } }, t("admin.delete"));
    const tr = h("tr", { dataset: { id: channel.id, kind: channel.kind } },
      h("td", {}, h("span", { class: "chip" }, kindName(channel.kind))),
      h("th", { scope: "row" }, h("a", { href: `#/admin/channels/${channel.id}` }, channel.name)),
      h("td", {}, yesNo(channel.enabled)),
      h("td", { class: "status-cell" }, statusChip(channel)),
      h("td", { class: "last-error" }, channel.last_error || ""),
      h("td", { class: "webhook-cell" }, copyable(t("admin.channels.webhook_of", { name: channel.name }),
        channel.webhook_url, { id: `webhook-${channel.id}` })),
      h("td", {}, h("div", { class: "row-actions" }, h("a", { href: `#/admin/channels/${channel.id}`, class: "button-link" },
        t("admin.edit")), toggle, test, remove, result)));
    return tr;
  }

  async function load() {
    try {
      const answer = await get("/channels", Q);
      fill(body, answer.items.length ? answer.items.map(row)
        : h("tr", {}, h("td", { colspan: 7, class: "empty" }, t("admin.channels.none"))));
    } catch (err) {
      fill(body, h("tr", {}, h("td", { colspan: 7, class: "empty" }, t("admin.load_failed"))));
      errors.show(err);
    }
  }
  await load();
  return {
    node: page("channels", t("admin.channels"),
      h("p", {}, h("a", { href: "#/admin/channels/new", class: "button-link primary", id: "new-channel" },
        t("admin.channels.new"))),
      errors.node, h("div", { class: "table-wrap" }, table)),
    reload: load,
  };
}

export async function channelForm(ctx, id) {
  const editing = id !== "new";
  let channel = null;
  const errors = errorLine("channel-error");
  if (editing) {
    try {
      channel = await get(`/channels/${id}`, Q);
    } catch (err) {
      return { node: page("channels", t("admin.channels.edit"), h("p", { class: "empty", role: "alert" }, err.detail)) };
    }
  }
  const kinds = editing ? [channel.kind] : await serverKinds();
  const kindSelect = h("select", { name: "kind", id: "channel-kind", required: true, disabled: editing },
    h("option", { value: "" }, t("admin.channels.choose_kind")),
    kinds.map((k) => h("option", { value: k, selected: channel && channel.kind === k }, kindName(k))));
  const settings = h("fieldset", { class: "kind-settings", id: "kind-settings", hidden: !editing },
    h("legend", {}, t("admin.channels.settings")));
  const name = h("input", { name: "name", id: "channel-name", required: true, maxlength: 200, value: channel ? channel.name : "" });
  const enabled = h("input", { type: "checkbox", name: "enabled", id: "channel-enabled", checked: channel ? channel.enabled : true });
  const result = h("p", { class: "test-result", id: "channel-test-result", role: "status" });
  const save = h("button", { type: "submit", class: "primary" }, editing ? t("admin.save") : t("admin.channels.create"));

  function drawSettings() {
    const kind = kindSelect.value;
    settings.hidden = !kind;
    fill(settings, h("legend", {}, t("admin.channels.settings_of", { kind: kind ? kindName(kind) : "" })),
      kind ? kindFields(kind, channel) : null);
  }
  kindSelect.addEventListener("change", drawSettings);
  if (editing) drawSettings();

  const form = h("form", { class: "admin-form card", id: "channel-form", novalidate: false, onsubmit: (e) => {
    e.preventDefault();
    const kind = kindSelect.value;
    run(save, errors, async () => {
      let config;
      try {
        config = readConfig(kind, form, channel);
      } catch (err) {
        throw new Error(t("admin.bad_json", { reason: err.message }));
      }
      if (editing) {
        channel = await patch(`/channels/${channel.id}`, { name: name.value.trim(), enabled: enabled.checked, config }, Q);
        toast(t("admin.saved"));
        drawSettings();
      } else {
        const made = await post("/channels", { kind, name: name.value.trim(), enabled: enabled.checked, config }, Q);
        toast(t("admin.channels.created", { name: made.name }));
        ctx.go(`#/admin/channels/${made.id}`);
      }
    });
  } },
  field(t("admin.channels.kind"), kindSelect),
  field(t("admin.channels.name"), name),
  field(t("admin.channels.enabled"), enabled),
  settings, errors.node,
  h("div", { class: "form-actions" }, save, h("a", { href: "#/admin/channels", class: "button-link" }, t("admin.back"))));

  const extra = [];
  if (editing) {
    const test = h("button", { type: "button", id: "channel-test", onclick: async () => {
      test.disabled = true;
      const fresh = await testChannel(channel, test, result);
      test.disabled = false;
      if (fresh) { channel = fresh; fill(statusLine, statusChip(fresh), " ", fresh.last_error || ""); }
    } }, t("admin.channels.test"));
    const statusLine = h("p", { id: "channel-status" }, statusChip(channel), " ", channel.last_error || "");
    extra.push(h("section", { class: "card admin-aside", "aria-labelledby": "channel-about" },
      h("h2", { id: "channel-about" }, t("admin.channels.about")),
      statusLine,
      ...(channel.kind === "webchat"
        ? [copyable(t("admin.channels.snippet"), `<script src="${new URL(channel.webhook_url).origin}/widget.js" `
          + `data-channel="${channel.id}" async></script>`, { id: "channel-snippet" })]
        : [copyable(t("admin.channels.webhook"), channel.webhook_url, { id: "channel-webhook" }),
          // Further URLs the provider calls (an SMS number's voice URL), to set by hand where omnidesk does not.
          ...Object.entries(channel.webhook_urls || {}).filter(([, url]) => url !== channel.webhook_url)
            .map(([name, url]) => copyable(`${t("admin.channels.webhook")}: ${name}`, url, { id: `channel-webhook-${name}` }))]),
      h("div", { class: "form-actions" }, test), result));
  }
  return {
    node: page("channels", editing ? t("admin.channels.edit_named", { name: channel.name }) : t("admin.channels.new"),
      h("div", { class: "admin-split" }, form, ...extra)),
  };
}
