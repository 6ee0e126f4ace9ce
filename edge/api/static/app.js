// Operator console: the newest bag (or a chosen one) large, with its boxes and its state in
// words; one-key decisions; the strip of recent bags; live results from /api/events,
// polling /api/frames/recent whenever the stream is down.
import {
  DECISION_WORDS, DECISIONS, alarmClasses, clockTime, decide, el, getJSON, imageUrl, THUMB_MAX, keyOf,
  loadMe, make, modelWords, stateOf,
} from "./common.js";
import { startStatusBar } from "./statusbar.js";
import { VIEW_WORDS, Viewer, bindViewControls } from "./viewer.js";

const POLL_MS = 1000;
const STALE_AFTER_MS = 5000;
const STREAM_RETRY_MS = 5000;
const STRIP_SIZE = 12;
const KEEP = 50;
const TOAST_MS = 5000;

const ui = {
  connection: el("connection"), banner: el("banner"), bannerReason: el("banner-reason"),
  state: el("state"), stateDetail: el("state-detail"), frameMeta: el("frame-meta"),
  decided: el("decided"), live: el("live"), view: el("view"), bag: el("bag"), boxes: el("boxes"),
  thumbs: el("thumbs"), pending: el("pending"), liveMode: el("live-mode"), toolbar: el("toolbar"),
  decide: el("decide"), openFrame: el("open-frame"), toast: el("toast"),
};

let classes = [];      // the model's class list, for stable box colours
let recent = [];       // newest first
let pinned = null;     // a frame the operator chose; null = follow the newest
let shownKey = null;   // frame key and view on screen
let wanted = null;     // frame key and view whose image is loading
let me = { name: "", role: "", may: [] };
let lastOk = Date.now();
let stream = null;
let streamOpen = false;
let pollTimer = null;
let toastTimer = null;

const viewer = new Viewer(ui.view, ui.bag, ui.boxes, () => classes);
const shown = () => viewer.frame;

// ---------------------------------------------------------------- the bag on screen

function renderState(f, note) {
  const s = stateOf(f);
  ui.state.className = `state state-${s.cls}`;
  ui.state.textContent = s.word;
  if (s.cls === "alarm") ui.stateDetail.textContent = alarmClasses(f).join(", ");
  else if (s.cls === "clear") ui.stateDetail.textContent = "no prohibited items found";
  else ui.stateDetail.textContent = "the detector did not screen this bag: search or rescan it";
  if (note) ui.stateDetail.textContent += ` (${note})`;
  ui.frameMeta.textContent = `bag ${f.bag} · ${f.id} · ${f.source} · ${clockTime(f.time)}` +
    (f.model ? ` · ${modelWords(f.model)}` : "");

  ui.banner.hidden = s.cls !== "unscreened";
  ui.bannerReason.textContent = `bag ${f.bag} (${f.id}): ${f.reason || "reason unknown"}`;
  ui.decided.hidden = !f.decision;
  ui.decided.className = `decided d-${f.decision}`;
  ui.decided.textContent = f.decision ? `decided: ${DECISION_WORDS[f.decision]}` : "";
  ui.openFrame.hidden = false;
  ui.openFrame.href = `/frame?id=${encodeURIComponent(f.id)}`;
}

async function show(f) {
  const key = `${keyOf(f)}|${viewer.view}`;
  if (shownKey === key || wanted === key) {
    if (shownKey === key) renderState(f); // a decision may have changed
    return;
  }
  wanted = key;
  let loaded = await viewer.load(f);
  let note = loaded.ok ? "" : "image unavailable";
  if (!loaded.ok && loaded.view !== "pseudo") {
    // Only logged frames keep both energies; fall back to the colour view, and say so.
    note = `no ${VIEW_WORDS[loaded.view]} view for this bag: showing colour`;
    const previous = viewer.view;
    viewer.setView("pseudo");
    loaded = await viewer.load(f);
    viewer.setView(previous);
  }
  if (wanted !== key) return; // a newer bag or view was asked for meanwhile
  wanted = null;
  shownKey = key;
  viewer.draw(f, loaded.ok, loaded.view);
  renderState(f, note);
  renderStrip();
}

function update() {
  ui.live.hidden = pinned === null;
  const target = pinned ? recent.find((f) => keyOf(f) === keyOf(pinned)) || pinned : recent[0];
  if (target) show(target);
  renderStrip();
}

// ---------------------------------------------------------------- the strip of recent bags

function renderStrip() {
  const current = shown() ? keyOf(shown()) : null;
  const items = recent.slice(0, STRIP_SIZE).reverse(); // oldest left, newest right
  const signature = items.map((f) => `${keyOf(f)}:${f.decision}`).join() + "|" + current;
  if (ui.thumbs.dataset.signature !== signature) {
    // Rebuilt only when the bags, their decisions or the selection change: no flicker.
    ui.thumbs.dataset.signature = signature;
    ui.thumbs.replaceChildren(...items.map((f) => thumb(f, current)));
  }
  const undecided = recent.filter((f) => f.logged && !f.decision && stateOf(f).cls !== "clear");
  ui.pending.textContent = undecided.length
    ? `${undecided.length} alarm / NOT SCREENED bag${undecided.length > 1 ? "s" : ""} undecided`
    : "";
}

function thumb(f, current) {
  const s = stateOf(f);
  const b = make("button", null, `thumb ${s.cls}` + (keyOf(f) === current ? " selected" : ""));
  b.type = "button";
  b.title = `bag ${f.bag} · ${f.id} · ${clockTime(f.time)}`;
  b.dataset.frame = f.id;
  const img = document.createElement("img");
  img.src = imageUrl(f, "pseudo", THUMB_MAX);
  img.alt = `bag ${f.bag}`;
  const cap = make("span", null, "cap");
  cap.append(make("span", s.word), make("span", clockTime(f.time)));
  const decision = make("span", f.decision ? DECISION_WORDS[f.decision] : "undecided",
    `thumb-decision d-${f.decision || "none"}`);
  b.append(img, cap, decision);
  b.addEventListener("click", () => {
    pinned = recent.length && keyOf(f) === keyOf(recent[0]) ? null : f;
    update();
  });
  return b;
}

function step(older) {
  const current = shown();
  if (!current) return;
  const i = recent.findIndex((f) => keyOf(f) === keyOf(current));
  const j = Math.min(Math.max(i + (older ? 1 : -1), 0), recent.length - 1);
  pinned = j === 0 ? null : recent[j];
  update();
}

// ---------------------------------------------------------------- decisions

function say(text, kind) {
  ui.toast.textContent = text;
  ui.toast.className = `toast toast-${kind}`;
  ui.toast.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { ui.toast.hidden = true; }, TOAST_MS);
}

function applyDecision(record) {
  for (const f of [...recent, pinned, shown()]) {
    if (f && f.id === record.frame_id) f.decision = record.decision;
  }
  const current = shown();
  if (current && current.id === record.frame_id) renderState(current);
  renderStrip();
}

async function record(decision) {
  const f = shown();
  if (!f) { say("no bag on screen to decide on", "bad"); return; }
  if (!me.may.includes("decide")) {
    say(`decisions are for operators; you are logged in as a ${me.role}`, "bad");
    return;
  }
  try {
    const saved = await decide(f.id, decision);
    applyDecision(saved);
    say(`${DECISION_WORDS[decision]} recorded for bag ${f.bag} by ${saved.user} at ${clockTime(saved.at)}`,
      decision);
  } catch (err) {
    say(`NOT RECORDED: ${err.message}`, "bad");
  }
}

// ---------------------------------------------------------------- live results

function addFrame(f) {
  recent = [f, ...recent.filter((r) => keyOf(r) !== keyOf(f))].slice(0, KEEP);
}

async function refreshRecent() {
  try {
    const frames = await getJSON(`/api/frames/recent?limit=${KEEP}`);
    lastOk = Date.now();
    recent = frames.items;
    update();
  } catch (err) {
    console.warn("recent frames failed", err);
  }
}

function renderMode() {
  ui.liveMode.textContent = streamOpen ? "live" : "live stream down: polling every second";
  ui.liveMode.classList.toggle("bad", !streamOpen);
  ui.connection.hidden = streamOpen || Date.now() - lastOk < STALE_AFTER_MS;
}

function startPolling() {
  if (pollTimer !== null) return;
  pollTimer = setInterval(refreshRecent, POLL_MS);
}

function stopPolling() {
  clearInterval(pollTimer);
  pollTimer = null;
}

// EventSource sends the session cookie (same origin) and reconnects by itself after a drop;
// while it is down the page polls, so a bag still shows within a second or so.
function openStream() {
  stream = new EventSource("/api/events");
  stream.onopen = () => {
    streamOpen = true;
    lastOk = Date.now();
    stopPolling();
    refreshRecent(); // whatever arrived while the stream was down
    renderMode();
  };
  stream.addEventListener("result", (e) => {
    lastOk = Date.now();
    addFrame(JSON.parse(e.data));
    update();
  });
  stream.addEventListener("decision", (e) => applyDecision(JSON.parse(e.data)));
  stream.addEventListener("resync", () => refreshRecent());
  stream.onerror = () => {
    streamOpen = false;
    startPolling();
    renderMode();
    if (stream.readyState === EventSource.CLOSED) {
      // Refused outright (e.g. too many streams, or logged out): try again later.
      stream.close();
      setTimeout(openStream, STREAM_RETRY_MS);
    }
  };
}

// ---------------------------------------------------------------- keys and start-up

const viewKey = bindViewControls(viewer, ui.toolbar, () => { const f = shown(); if (f) show(f); });
for (const b of ui.decide.querySelectorAll("[data-decision]")) {
  b.addEventListener("click", () => record(b.dataset.decision));
}

document.addEventListener("keydown", (e) => {
  if (e.ctrlKey || e.metaKey || e.altKey || e.repeat) return;
  if (e.target instanceof HTMLInputElement || e.target instanceof HTMLTextAreaElement) return;
  const key = e.key.toLowerCase();
  if (key in DECISIONS) record(DECISIONS[key]);
  else if (key === "arrowleft") step(true);
  else if (key === "arrowright") step(false);
  else if (key === "escape") { pinned = null; update(); }
  else if (!viewKey(key)) return;
  e.preventDefault();
});

ui.live.addEventListener("click", () => { pinned = null; update(); });

loadMe()
  .then((who) => {
    me = who;
    ui.decide.hidden = !me.may.includes("decide");
  })
  .catch((err) => console.warn("who am I?", err));

startStatusBar({
  onHealth: (h) => {
    classes = h.classes || classes;
    lastOk = Date.now();
  },
});
setInterval(renderMode, 1000);

// ?frame=<id> opens on that frame instead of following the newest.
const asked = new URLSearchParams(location.search).get("frame");
if (asked) {
  getJSON(`/api/frames/${encodeURIComponent(asked)}`)
    .then((f) => { pinned = f; update(); })
    .catch((err) => say(`bag ${asked}: ${err.message}`, "bad"));
}
refreshRecent();
openStream();
renderMode();
