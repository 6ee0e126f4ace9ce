// One frame (/frame?id=...): the image in every view with its boxes and zoom, the
// detections, model version, timings, and every operator decision on it.
import {
  DECISION_WORDS, DECISIONS, dateTime, decide, el, getJSON, loadMe, make, modelWords, stateOf,
} from "./common.js";
import { startStatusBar } from "./statusbar.js";
import { VIEW_WORDS, Viewer, bindViewControls } from "./viewer.js";

const frameId = new URLSearchParams(location.search).get("id") || "";
const ui = {
  title: el("title"), state: el("state"), message: el("message"), banner: el("banner"),
  bannerReason: el("banner-reason"), facts: el("facts"), detections: el("detections"),
  timings: el("timings"), decisions: el("decisions"), decide: el("decide"),
  outcome: el("decide-outcome"), viewNote: el("view-note"), toolbar: el("toolbar"),
};
let classes = [];
let frame = null;
let me = { may: [] };
const viewer = new Viewer(el("view"), el("bag"), el("boxes"), () => classes);

function facts(target, pairs) {
  target.replaceChildren(...pairs.flatMap(([k, v]) => [make("dt", k), make("dd", v)]));
}

function render(f) {
  const s = stateOf(f);
  ui.title.textContent = `Bag ${f.bag}`;
  ui.state.className = `pill ${s.cls}`;
  ui.state.textContent = s.word;
  ui.banner.hidden = s.cls !== "unscreened";
  ui.bannerReason.textContent = f.reason || "reason unknown";
  facts(ui.facts, [
    ["frame", f.id],
    ["received", dateTime(f.time)],
    ["source", f.source],
    ["state", s.word + (f.reason ? ` — ${f.reason}` : "")],
    ["model", modelWords(f.model) || "none"],
    ["size", `${f.width} × ${f.height} px`],
    ["logged", f.logged ? "yes" : "no (held in memory only)"],
    ["decision", f.decision ? DECISION_WORDS[f.decision] : "none yet"],
  ]);
  ui.detections.replaceChildren(...(f.detections.length ? f.detections.map((d) => {
    const tr = document.createElement("tr");
    tr.append(make("td", d.class), make("td", `${Math.round(d.score * 100)}%`),
      make("td", d.box.map((v) => Math.round(v)).join(", "), "mono"));
    return tr;
  }) : [emptyRow(3, s.cls === "unscreened" ? "not screened: no detections" : "none")]));
  const timings = Object.entries(f.timings_ms || {});
  facts(ui.timings, timings.length ? timings.map(([k, v]) => [k, `${v} ms`]) : [["—", "none recorded"]]);
  const decisions = f.decisions || [];
  ui.decisions.replaceChildren(...(decisions.length ? decisions.map((d) => {
    const tr = document.createElement("tr");
    tr.append(make("td", DECISION_WORDS[d.decision], `d-${d.decision}`), make("td", d.user || "—"),
      make("td", dateTime(d.at)), make("td", d.note || ""));
    return tr;
  }) : [emptyRow(4, "no decision yet")]));
}

function emptyRow(span, text) {
  const tr = document.createElement("tr");
  const td = make("td", text, "dim");
  td.colSpan = span;
  tr.append(td);
  return tr;
}

async function showImage() {
  if (!frame) return;
  let loaded = await viewer.load(frame);
  ui.viewNote.textContent = "";
  if (!loaded.ok && loaded.view !== "pseudo") {
    ui.viewNote.textContent = `no ${VIEW_WORDS[loaded.view]} view for this frame (not logged, or one energy only): showing colour`;
    const previous = viewer.view;
    viewer.setView("pseudo");
    loaded = await viewer.load(frame);
    viewer.setView(previous);
  } else if (!loaded.ok) {
    ui.viewNote.textContent = "image unavailable";
  }
  viewer.draw(frame, loaded.ok, loaded.view);
}

async function load() {
  try {
    frame = await getJSON(`/api/frames/${encodeURIComponent(frameId)}`);
  } catch (err) {
    ui.message.hidden = false;
    ui.message.textContent = frameId ? `frame ${frameId}: ${err.message}` : "no frame id given (?id=...)";
    return;
  }
  render(frame);
  showImage();
}

async function record(decision) {
  if (!frame || !me.may.includes("decide")) return;
  ui.outcome.hidden = false;
  try {
    const saved = await decide(frame.id, decision);
    ui.outcome.className = "note ok";
    ui.outcome.textContent = `${DECISION_WORDS[decision]} recorded by ${saved.user} at ${dateTime(saved.at)}`;
    frame = await getJSON(`/api/frames/${encodeURIComponent(frame.id)}`);
    render(frame);
  } catch (err) {
    ui.outcome.className = "note bad";
    ui.outcome.textContent = `NOT RECORDED: ${err.message}`;
  }
}

const viewKey = bindViewControls(viewer, ui.toolbar, showImage);
for (const b of ui.decide.querySelectorAll("[data-decision]")) {
  b.addEventListener("click", () => record(b.dataset.decision));
}
document.addEventListener("keydown", (e) => {
  if (e.ctrlKey || e.metaKey || e.altKey || e.repeat) return;
  const key = e.key.toLowerCase();
  if (key in DECISIONS && me.may.includes("decide")) record(DECISIONS[key]);
  else if (!viewKey(key)) return;
  e.preventDefault();
});

loadMe()
  .then((who) => { me = who; ui.decide.hidden = !me.may.includes("decide"); })
  .catch((err) => console.warn("who am I?", err));
startStatusBar({ onHealth: (h) => { classes = h.classes || classes; } });
load();
