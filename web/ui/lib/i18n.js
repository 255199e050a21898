// t(key, vars): the agent's language (their `locale` from /me), falling back to English, then to
// the key itself. Catalogues are web/ui/i18n/<locale>.json; placeholders are {name}.
export const LOCALES = ["en", "es", "ca", "pt", "pl"];
export const LOCALE_NAMES = { en: "English", es: "Español", ca: "Català", pt: "Português", pl: "Polski" };

let english = {};
let current = {};
let locale = "en";

async function catalogue(code) {
  const response = await fetch(`/ui/i18n/${code}.json`, { credentials: "same-origin" });
  if (!response.ok) throw new Error(`no catalogue ${code}`);
  return response.json();
}

export function pick(wanted) {
  for (const code of [wanted, ...(navigator.languages || [])]) {
    const short = String(code || "").slice(0, 2).toLowerCase();
    if (LOCALES.includes(short)) return short;
  }
  return "en";
}

export async function setLocale(code) {
  code = LOCALES.includes(code) ? code : "en";
  if (!Object.keys(english).length) english = await catalogue("en");
  current = code === "en" ? english : await catalogue(code).catch(() => english);
  locale = code;
  document.documentElement.lang = code;
  translateStatic();
  return code;
}

export function getLocale() { return locale; }

export function t(key, vars = {}) {
  const text = current[key] ?? english[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (whole, name) => (name in vars ? String(vars[name]) : whole));
}

// Elements written in index.html carry data-i18n="key" (their text) and data-i18n-attr="attr:key".
export function translateStatic(root = document) {
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-attr]")) {
    for (const pair of el.dataset.i18nAttr.split(";")) {
      const [attr, key] = pair.split(":");
      el.setAttribute(attr, t(key));
    }
  }
}

export function formatTime(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  const today = new Date().toDateString() === date.toDateString();
  return new Intl.DateTimeFormat(locale, today ? { hour: "2-digit", minute: "2-digit" }
    : { day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" }).format(date);
}

// "5 min", "2 h", "3 d": how long since (or until, for a future time) iso.
export function duration(iso, now = Date.now()) {
  const seconds = Math.abs(now - new Date(iso).getTime()) / 1000;
  if (seconds < 3600) return t("time.minutes", { n: Math.max(1, Math.floor(seconds / 60)) });
  if (seconds < 86400) return t("time.hours", { n: Math.floor(seconds / 3600) });
  return t("time.days", { n: Math.floor(seconds / 86400) });
}
