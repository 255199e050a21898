// The settings form of each channel kind, from the config keys the API documents. Secret keys are
// write-only: the form never shows them; on edit they are empty with an "unchanged" placeholder
// and sent only when typed. Which kinds this server knows comes from its OpenAPI description.
import { h } from "../lib/dom.js";
import { t } from "../lib/i18n.js";
import { field } from "./common.js";

const SECURITY = ["tls", "starttls", "none"];
const TWILIO = [
  { key: "account_sid", required: true }, { key: "auth_token", secret: true, required: true },
  { key: "from_number", hint: "admin.hint.from_number" }, { key: "messaging_service_sid" },
  { key: "api_base_url", type: "url" }, { key: "send_rate", type: "number", step: "any" },
];

export const KINDS = {
  api: [
    { key: "secret", secret: true, required: true, hint: "admin.hint.secret" },
    { key: "callback_url", type: "url", required: true, hint: "admin.hint.callback_url" },
  ],
  email: [
    { key: "address", type: "email", required: true },
    { key: "imap_host", required: true }, { key: "imap_port", type: "number" },
    { key: "imap_security", options: SECURITY }, { key: "imap_username" },
    { key: "imap_password", secret: true, required: true }, { key: "imap_folder", placeholder: "INBOX" },
    { key: "smtp_host", required: true }, { key: "smtp_port", type: "number" },
    { key: "smtp_security", options: SECURITY }, { key: "smtp_username" }, { key: "smtp_password", secret: true },
    { key: "after_import", placeholder: "seen", hint: "admin.hint.after_import" },
  ],
  sms: [...TWILIO, { key: "voice", type: "bool" }, { key: "voice_greeting" }, { key: "voice_closed_greeting" },
    { key: "voice_language", placeholder: "en-US" }, { key: "voice_max_length", type: "number" }],
  whatsapp: [...TWILIO, { key: "templates", type: "json", hint: "admin.hint.templates" }],
  telegram: [
    { key: "bot_token", secret: true, required: true }, { key: "mode", options: ["webhook", "polling"] },
    { key: "webhook_secret", secret: true, hint: "admin.hint.identity_secret" },
    { key: "long_poll_timeout", type: "number" }, { key: "send_rate", type: "number", step: "any" },
    { key: "api_base_url", type: "url" },
  ],
  twitter: [
    { key: "consumer_key", required: true }, { key: "consumer_secret", secret: true, required: true },
    { key: "access_token", required: true }, { key: "access_token_secret", secret: true, required: true },
    { key: "bearer_token", secret: true }, { key: "user_id", required: true },
    { key: "mentions", type: "bool", default: true }, { key: "direct_messages", type: "bool", default: true },
    { key: "webhooks", type: "bool" }, { key: "import_since_days", type: "number" },
    { key: "poll_interval", type: "number", step: "any" }, { key: "api_base_url", type: "url" },
  ],
  webchat: [
    { key: "allowed_origins", type: "list", required: true, hint: "admin.hint.allowed_origins" },
    { key: "greeting" }, { key: "colour", placeholder: "#1f6feb" },
    { key: "identity_secret", secret: true, hint: "admin.hint.webchat_identity" },
    { key: "pre_chat_form", type: "bool" },
    { key: "fallback_email_channel_id", type: "number", hint: "admin.hint.fallback_email" },
    { key: "team_id", type: "number" }, { key: "max_attachment_bytes", type: "number" },
  ],
};

let known = null;

// The kinds the server takes: the enum of ChannelIn.kind in /openapi.json when it has one, else
// every kind this page has a form for (the server says which it refuses when one is sent).
export async function serverKinds() {
  if (known) return known;
  try {
    const response = await fetch("/openapi.json", { credentials: "same-origin" });
    const doc = await response.json();
    const kind = doc.components.schemas.ChannelIn.properties.kind;
    known = Array.isArray(kind.enum) && kind.enum.length ? kind.enum : Object.keys(KINDS);
  } catch {
    known = Object.keys(KINDS);
  }
  return known;
}

function control(spec, value, editing, secretSet) {
  const name = spec.key;
  if (spec.options) {
    return h("select", { name }, h("option", { value: "" }, t("admin.default")),
      spec.options.map((o) => h("option", { value: o, selected: value === o }, o)));
  }
  if (spec.type === "bool") return h("input", { type: "checkbox", name, checked: Boolean(value ?? spec.default) });
  if (spec.type === "list" || spec.type === "json") {
    const text = value === undefined || value === null ? ""
      : spec.type === "list" ? value.join("\n") : JSON.stringify(value, null, 2);
    return h("textarea", { name, rows: spec.type === "json" ? 5 : 3, value: text });
  }
  const attrs = { name, type: spec.secret ? "password" : spec.type || "text", autocomplete: "off",
    placeholder: spec.placeholder || null, step: spec.step || null };
  if (spec.secret) {
    attrs.autocomplete = "new-password";
    if (editing && secretSet) attrs.placeholder = t("admin.unchanged");
    else attrs.required = spec.required || null;
  } else {
    attrs.value = value === undefined || value === null ? "" : String(value);
    attrs.required = spec.required || null;
  }
  return h("input", attrs);
}

// The fields of one kind; `channel` (on edit) gives the shown values and which secrets are set.
export function kindFields(kind, channel) {
  const specs = KINDS[kind];
  if (!specs) {
    return [field(t("admin.channels.config_json"), h("textarea", { name: "__json", rows: 6,
      value: JSON.stringify(channel ? channel.config : {}, null, 2) }), t("admin.channels.config_json_hint"))];
  }
  const config = channel ? channel.config || {} : {};
  const secrets = channel ? channel.secrets_set || [] : [];
  return specs.map((spec) => {
    const hint = spec.hint ? t(spec.hint) : null;
    const label = h("code", {}, spec.key);
    const el = control(spec, config[spec.key], Boolean(channel), secrets.includes(spec.key));
    const node = field(label, el, hint);
    if (spec.secret) node.classList.add("is-secret");
    return node;
  });
}

// The form's values as the API's config: secrets only when typed; on edit a cleared field is null.
export function readConfig(kind, form, channel) {
  const specs = KINDS[kind];
  if (!specs) return JSON.parse(form.elements.__json.value || "{}");
  const before = channel ? channel.config || {} : {};
  const config = {};
  for (const spec of specs) {
    const el = form.elements[spec.key];
    let value;
    if (spec.type === "bool") value = el.checked;
    else if (spec.type === "list") value = el.value.split(/[\n,]/).map((s) => s.trim()).filter(Boolean);
    else if (spec.type === "json") value = el.value.trim() ? JSON.parse(el.value) : undefined;
    else if (spec.type === "number") value = el.value === "" ? undefined : Number(el.value);
    else value = el.value.trim() === "" ? undefined : el.value.trim();
    if (value === undefined) {
      if (!spec.secret && channel && before[spec.key] !== undefined && before[spec.key] !== null) config[spec.key] = null;
      continue;
    }
    if (spec.type === "bool" && !value && !(spec.key in before) && !spec.default) continue;
    config[spec.key] = value;
  }
  return config;
}
