// Shared by every page: API calls (session cookie + CSRF header), who is logged in, the
// navigation a role may use, and the small formatting helpers.

export const el = (id) => document.getElementById(id);

const REQUEST_TIMEOUT_MS = 4000;

export function toLogin() {
  location.assign(`/login?next=${encodeURIComponent(location.pathname + location.search)}`);
}

function cookie(name) {
  const found = document.cookie.split("; ").find((c) => c.startsWith(`${name}=`));
  return found ? decodeURIComponent(found.slice(name.length + 1)) : "";
}

// The API's error bodies are {"error": {"code", "message"}}; say the message plainly.
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function answer(url, response) {
  if (response.status === 401) toLogin(); // session expired or ended
  let body = null;
  try {
    body = await response.json();
  } catch (_) { /* not JSON */ }
  if (!response.ok) {
    const error = (body && body.error) || {};
    throw new ApiError(response.status, error.code || `http_${response.status}`,
      error.message || `${url}: HTTP ${response.status}`);
  }
  return body;
}

export async function getJSON(url) {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), REQUEST_TIMEOUT_MS);
  try {
    const response = await fetch(url, { signal: abort.signal, cache: "no-store", credentials: "same-origin" });
    return await answer(url, response);
  } finally {
    clearTimeout(timer);
  }
}

// State-changing calls carry the session's CSRF token (the readable edge_csrf cookie).
export async function postJSON(url, body) {
  const response = await fetch(url, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": cookie("edge_csrf") },
    body: JSON.stringify(body || {}),
  });
  return await answer(url, response);
}

export const DECISIONS = { c: "clear", s: "search", t: "threat" };
export const DECISION_WORDS = { clear: "CLEAR", search: "SEARCH BAG", threat: "THREAT CONFIRMED" };

export function decide(frameId, decision) {
  return postJSON(`/api/frames/${encodeURIComponent(frameId)}/decision`, { decision });
}

// Who is logged in; fills the header's name, the log-out button and the navigation
// (links to pages the role has no use for are not shown).
export async function loadMe() {
  const me = await getJSON("/api/me");
  const user = el("user");
  if (user) user.textContent = `${me.name} (${me.role})`;
  for (const link of document.querySelectorAll("[data-needs]")) {
    link.hidden = !link.dataset.needs.split(" ").some((action) => me.may.includes(action));
  }
  const logout = el("logout");
  if (logout) {
    logout.addEventListener("click", () => {
      postJSON("/api/logout").catch((err) => console.warn("logout failed", err)).finally(toLogin);
    });
  }
  return me;
}

export const keyOf = (f) => `${f.id}@${f.time}`;

// Thumbnails (the strip of recent bags, the history list) are asked for at this size
// (longer side, pixels: twice the largest box they fill, for high-density screens).
export const THUMB_MAX = 256;

// The receive time makes the URL unique even when a restarted service reuses an id.
// `max`: a thumbnail, shrunk by the appliance before it is sent.
export function imageUrl(f, view = "pseudo", max = null) {
  const v = view === "pseudo" ? "" : `&view=${view}`;
  const m = max ? `&max=${max}` : "";
  return `/api/frames/${encodeURIComponent(f.id)}/image?t=${encodeURIComponent(f.time)}${v}${m}`;
}

export function clockTime(iso) {
  const d = new Date(iso);
  return isNaN(d) ? iso : d.toLocaleTimeString([], { hour12: false });
}

export function dateTime(iso) {
  const d = new Date(iso);
  return isNaN(d) ? iso : `${d.toLocaleDateString()} ${d.toLocaleTimeString([], { hour12: false })}`;
}

export function stateOf(f) {
  if (f.state !== "SCREENED") return { cls: "unscreened", word: "NOT SCREENED" };
  return f.alarm ? { cls: "alarm", word: "ALARM" } : { cls: "clear", word: "CLEAR" };
}

export function alarmClasses(f) {
  const best = new Map();
  for (const d of f.detections) best.set(d.class, Math.max(best.get(d.class) || 0, d.score));
  return [...best].sort((a, b) => b[1] - a[1]).map(([c, s]) => `${c} ${Math.round(s * 100)}%`);
}

export function formatBytes(n) {
  if (n == null) return "—";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i += 1; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

export function modelWords(id) {
  if (!id) return null;
  const at = id.lastIndexOf("@");
  return at < 0 ? id : `${id.slice(0, at)} v${id.slice(at + 1)}`;
}

// A table cell or any element with text, in one call.
export function make(tag, text, className) {
  const node = document.createElement(tag);
  if (text != null) node.textContent = text;
  if (className) node.className = className;
  return node;
}
