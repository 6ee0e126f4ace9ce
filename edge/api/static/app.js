// Operator page: polls the API once a second, shows the newest bag (or a chosen one) with
// its boxes, the screening state in words, the recent bags and the service health.
"use strict";

const POLL_MS = 1000;
const REQUEST_TIMEOUT_MS = 2500;
const STALE_AFTER_MS = 3500;
const STRIP_SIZE = 8;
const SVG_NS = "http://www.w3.org/2000/svg"; // an XML namespace name, not fetched
// High-contrast against the orange/green/blue pseudo-colour palette.
const PALETTE = ["#ff2d55", "#ffe600", "#00e5ff", "#ff5cf4", "#b6ff00", "#ffffff", "#ff8a00", "#9d8cff"];

const el = (id) => document.getElementById(id);
const ui = {
  model: el("model"), health: el("health"), connection: el("connection"),
  banner: el("banner"), bannerReason: el("banner-reason"),
  state: el("state"), stateDetail: el("state-detail"), frameMeta: el("frame-meta"),
  live: el("live"), view: el("view"), bag: el("bag"), boxes: el("boxes"), thumbs: el("thumbs"),
  user: el("user"), logout: el("logout"),
};

let classes = [];        // the model's class list, for stable colours
let recent = [];         // newest first
let pinned = null;       // a frame record the operator chose; null = follow the newest
let shown = null;        // the record on screen
let wanted = null;       // key of the record whose image is loading
let lastOk = 0;

const keyOf = (f) => `${f.id}@${f.time}`;
// The receive time makes the URL unique even when a restarted service reuses an id.
const imageUrl = (f) => `/api/frames/${encodeURIComponent(f.id)}/image?t=${encodeURIComponent(f.time)}`;

function colourOf(name) {
  let i = classes.indexOf(name);
  if (i < 0) {
    i = 0;
    for (const ch of name) i = (i * 31 + ch.charCodeAt(0)) >>> 0;
  }
  return PALETTE[i % PALETTE.length];
}

function clockTime(iso) {
  const d = new Date(iso);
  return isNaN(d) ? iso : d.toLocaleTimeString([], { hour12: false });
}

function stateOf(f) {
  if (f.state !== "SCREENED") return { cls: "unscreened", word: "NOT SCREENED" };
  return f.alarm ? { cls: "alarm", word: "ALARM" } : { cls: "clear", word: "CLEAR" };
}

function alarmClasses(f) {
  const best = new Map();
  for (const d of f.detections) best.set(d.class, Math.max(best.get(d.class) || 0, d.score));
  return [...best].sort((a, b) => b[1] - a[1]).map(([c, s]) => `${c} ${Math.round(s * 100)}%`);
}

function toLogin() {
  location.assign(`/login?next=${encodeURIComponent(location.pathname + location.search)}`);
}

function cookie(name) {
  const found = document.cookie.split("; ").find((c) => c.startsWith(`${name}=`));
  return found ? decodeURIComponent(found.slice(name.length + 1)) : "";
}

async function getJSON(url) {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), REQUEST_TIMEOUT_MS);
  try {
    const response = await fetch(url, { signal: abort.signal, cache: "no-store", credentials: "same-origin" });
    if (response.status === 401) toLogin(); // session expired or ended
    if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
    return await response.json();
  } finally {
    clearTimeout(timer);
  }
}

// State-changing calls carry the session's CSRF token (the readable edge_csrf cookie).
async function postJSON(url, body) {
  const response = await fetch(url, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": cookie("edge_csrf") },
    body: JSON.stringify(body || {}),
  });
  if (response.status === 401) toLogin();
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return await response.json();
}

function renderHealth(h) {
  classes = h.classes || classes;
  ui.model.textContent = h.model || "NONE";
  ui.model.classList.toggle("missing", !h.model);
  const parts = [
    `frames ${h.frames_in}`,
    `alarms ${h.alarms}`,
    `not screened ${h.not_screened}`,
    `latency ${h.last_latency_ms == null ? "—" : Math.round(h.last_latency_ms) + " ms"}`,
  ];
  ui.health.replaceChildren(document.createTextNode(parts.join(" · ")));
  ui.health.title = h.degraded.join("\n");
  if (h.status !== "ok") {
    const bad = document.createElement("span");
    bad.className = "bad";
    bad.textContent = ` · DEGRADED: ${h.degraded.join("; ")}`;
    ui.health.append(bad);
  }
}

function renderStrip() {
  const current = shown ? keyOf(shown) : null;
  const items = recent.slice(0, STRIP_SIZE).reverse(); // oldest left, newest right
  const buttons = items.map((f) => {
    const s = stateOf(f);
    const b = document.createElement("button");
    b.type = "button";
    b.className = `thumb ${s.cls}` + (keyOf(f) === current ? " selected" : "");
    b.title = `${f.id} · bag ${f.bag} · ${clockTime(f.time)}`;
    const img = document.createElement("img");
    img.src = imageUrl(f);
    img.alt = f.id;
    const cap = document.createElement("span");
    cap.className = "cap";
    const word = document.createElement("span");
    word.textContent = s.word;
    const when = document.createElement("span");
    when.textContent = clockTime(f.time);
    cap.append(word, when);
    b.append(img, cap);
    b.addEventListener("click", () => {
      pinned = recent.length && keyOf(f) === keyOf(recent[0]) ? null : f;
      update();
    });
    return b;
  });
  // Rebuild only when the set of bags or the selection changed, so images do not flicker.
  const signature = items.map(keyOf).join() + "|" + current;
  if (ui.thumbs.dataset.signature !== signature) {
    ui.thumbs.dataset.signature = signature;
    ui.thumbs.replaceChildren(...buttons);
  }
}

function drawBoxes(f) {
  const box = ui.view.getBoundingClientRect();
  // Frame pixels per screen pixel, so labels stay readable at any window size.
  const unit = Math.max(f.width / Math.max(box.width, 1), f.height / Math.max(box.height, 1));
  const font = 15 * unit;
  const nodes = f.detections.map((d) => {
    const [x1, y1, x2, y2] = d.box;
    const colour = colourOf(d.class);
    const g = document.createElementNS(SVG_NS, "g");
    const rect = document.createElementNS(SVG_NS, "rect");
    rect.setAttribute("class", "box");
    rect.setAttribute("x", x1);
    rect.setAttribute("y", y1);
    rect.setAttribute("width", Math.max(x2 - x1, 1));
    rect.setAttribute("height", Math.max(y2 - y1, 1));
    rect.setAttribute("stroke", colour);
    const text = document.createElementNS(SVG_NS, "text");
    text.setAttribute("class", "label-text");
    text.setAttribute("font-size", font);
    text.textContent = `${d.class} ${Math.round(d.score * 100)}%`;
    const labelH = font * 1.35;
    const above = y1 - labelH >= 0;
    const top = above ? y1 - labelH : y1;
    text.setAttribute("x", x1 + font * 0.3);
    text.setAttribute("y", top + font * 1.05);
    const bg = document.createElementNS(SVG_NS, "rect");
    bg.setAttribute("x", x1);
    bg.setAttribute("y", top);
    bg.setAttribute("height", labelH);
    bg.setAttribute("width", font * (0.62 * text.textContent.length + 0.6));
    bg.setAttribute("fill", colour);
    g.append(rect, bg, text);
    return g;
  });
  ui.boxes.replaceChildren(...nodes);
}

function draw(f, imageOk) {
  shown = f;
  ui.view.setAttribute("viewBox", `0 0 ${f.width} ${f.height}`);
  ui.bag.setAttribute("width", f.width);
  ui.bag.setAttribute("height", f.height);
  ui.bag.setAttribute("href", imageOk ? imageUrl(f) : "");
  drawBoxes(f);

  const s = stateOf(f);
  ui.state.className = `state state-${s.cls}`;
  ui.state.textContent = s.word;
  if (s.cls === "alarm") ui.stateDetail.textContent = alarmClasses(f).join(", ");
  else if (s.cls === "clear") ui.stateDetail.textContent = "no prohibited items found";
  else ui.stateDetail.textContent = "search or rescan this bag";
  if (!imageOk) ui.stateDetail.textContent += " (image unavailable)";
  ui.frameMeta.textContent = `${f.id} · bag ${f.bag} · ${f.source} · ${clockTime(f.time)}` +
    (f.model ? ` · ${f.model}` : "");

  ui.banner.hidden = s.cls !== "unscreened";
  ui.bannerReason.textContent = `bag ${f.bag} (${f.id}): ${f.reason || "reason unknown"}`;
  renderStrip();
}

function show(f) {
  const key = keyOf(f);
  if ((shown && keyOf(shown) === key) || wanted === key) return;
  wanted = key;
  // Load first, then swap image, boxes and state together so they never disagree.
  const loader = new Image();
  loader.onload = () => { if (wanted === key) { wanted = null; draw(f, true); } };
  loader.onerror = () => { if (wanted === key) { wanted = null; draw(f, false); } };
  loader.src = imageUrl(f);
}

function update() {
  ui.live.hidden = pinned === null;
  const target = pinned || recent[0];
  if (target) show(target);
  renderStrip();
}

function renderConnection() {
  ui.connection.hidden = Date.now() - lastOk < STALE_AFTER_MS;
}

async function poll() {
  try {
    // The frames held in memory: logged or not, so a full disk never hides a bag.
    const [frames, health] = await Promise.all([
      getJSON(`/api/frames/recent?limit=${STRIP_SIZE}`),
      getJSON("/api/health"),
    ]);
    lastOk = Date.now();
    recent = frames.items;
    renderHealth(health);
    update();
  } catch (err) {
    console.warn("poll failed", err);
  } finally {
    renderConnection();
    setTimeout(poll, POLL_MS);
  }
}

ui.live.addEventListener("click", () => { pinned = null; update(); });
ui.logout.addEventListener("click", () => {
  postJSON("/api/logout").catch((err) => console.warn("logout failed", err)).finally(toLogin);
});
getJSON("/api/me")
  .then((me) => { ui.user.textContent = `${me.name} (${me.role})`; })
  .catch((err) => console.warn("who am I?", err));
window.addEventListener("resize", () => { if (shown) drawBoxes(shown); });
lastOk = Date.now();
// ?frame=<id> opens on that frame instead of following the newest.
const asked = new URLSearchParams(location.search).get("frame");
if (asked) {
  getJSON(`/api/frames/${encodeURIComponent(asked)}`)
    .then((f) => { pinned = f; update(); })
    .catch((err) => console.warn("frame not found", asked, err));
}
poll();
