// fetch for the page: same-origin credentials (the session cookie), the session's CSRF token on
// every write, JSON in and out, and errors turned into readable toasts (and thrown as ApiError).
import { toast } from "./toast.js";
import { t } from "./i18n.js";

let csrf = "";
const listeners = new Set();

export class ApiError extends Error {
  constructor(status, detail, headers) {
    super(detail);
    this.status = status;
    this.detail = detail;
    this.headers = headers;
  }
}

export function setCsrf(token) { csrf = token || ""; }

// Called with no arguments when the server says the session has ended (401).
export function onSignedOut(fn) { listeners.add(fn); }

export async function api(method, path, body, { quiet = false, raw = false } = {}) {
  const headers = { Accept: "application/json" };
  if (method !== "GET" && method !== "HEAD" && csrf) headers["X-CSRF-Token"] = csrf;
  let payload;
  if (body instanceof FormData) {
    payload = body;
  } else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(`/api/v1${path}`, { method, headers, body: payload, credentials: "same-origin" });
  } catch (err) {
    const error = new ApiError(0, t("error.network"));
    if (!quiet) toast(error.detail, "error");
    throw error;
  }
  if (raw && response.ok) return response;
  let data = null;
  if (response.status !== 204) {
    const text = await response.text();
    try { data = text ? JSON.parse(text) : null; } catch { data = { detail: text }; }
  }
  if (!response.ok) {
    const detail = (data && typeof data.detail === "string" && data.detail) || t("error.status", { status: response.status });
    const error = new ApiError(response.status, detail, response.headers);
    if (response.status === 401 && path !== "/session") listeners.forEach((fn) => fn());
    else if (!quiet) toast(detail, "error");
    throw error;
  }
  return data;
}

export const get = (path, opts) => api("GET", path, undefined, opts);
export const post = (path, body, opts) => api("POST", path, body, opts);
export const patch = (path, body, opts) => api("PATCH", path, body, opts);
export const put = (path, body, opts) => api("PUT", path, body, opts);
export const del = (path, opts) => api("DELETE", path, undefined, opts);
