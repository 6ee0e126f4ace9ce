// History: logged frames from GET /api/frames, filtered by time range, alarm, NOT SCREENED,
// decision, class, source and lane; newest first, a page at a time. The filters live in the
// address, so a search can be bookmarked or reloaded.
import {
  DECISION_WORDS, alarmClasses, dateTime, el, getJSON, imageUrl, THUMB_MAX, loadMe, make, stateOf,
} from "./common.js";
import { startStatusBar } from "./statusbar.js";

const PAGE_SIZE = 25;
const FIELDS = {
  since: el("f-since"), until: el("f-until"), alarm: el("f-alarm"),
  not_screened: el("f-not-screened"), decision: el("f-decision"), class: el("f-class"),
  source: el("f-source"), lane: el("f-lane"),
};
const TIME_FIELDS = new Set(["since", "until"]);
const ui = {
  form: el("filters"), reset: el("reset"), summary: el("summary"), rows: el("rows"),
  prev: el("prev"), next: el("next"), pageWord: el("page-word"),
};
let offset = 0;

// datetime-local inputs hold local time without a zone; the API takes ISO 8601.
function toIso(local) {
  const d = new Date(local);
  return isNaN(d) ? "" : d.toISOString();
}

function toLocal(iso) {
  const d = new Date(iso);
  if (isNaN(d)) return "";
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}` +
    `T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

function query() {
  const params = new URLSearchParams();
  for (const [name, input] of Object.entries(FIELDS)) {
    const value = input.value.trim();
    if (!value) continue;
    params.set(name, TIME_FIELDS.has(name) ? toIso(value) : value);
  }
  return params;
}

function fillForm(params) {
  for (const [name, input] of Object.entries(FIELDS)) {
    const value = params.get(name) || "";
    if (name === "class" && value && ![...input.options].some((o) => o.value === value)) {
      input.append(new Option(value, value)); // a class the model no longer has
    }
    input.value = TIME_FIELDS.has(name) ? toLocal(value) : value;
  }
  offset = Math.max(Number(params.get("offset")) || 0, 0);
}

function row(f) {
  const s = stateOf(f);
  const tr = document.createElement("tr");
  tr.dataset.frame = f.id;
  const img = document.createElement("img");
  img.loading = "lazy";
  img.src = imageUrl(f, "pseudo", THUMB_MAX);
  img.alt = `bag ${f.bag}`;
  const imageCell = document.createElement("td");
  imageCell.append(img);
  const stateCell = document.createElement("td");
  stateCell.append(make("span", s.word, `pill ${s.cls}`));
  const open = document.createElement("a");
  open.href = `/frame?id=${encodeURIComponent(f.id)}`;
  open.textContent = "open";
  const openCell = document.createElement("td");
  openCell.append(open);
  tr.append(
    imageCell,
    make("td", dateTime(f.time)),
    make("td", f.bag, "mono"),
    make("td", f.source),
    stateCell,
    make("td", s.cls === "unscreened" ? f.reason || "" : alarmClasses(f).join(", ") || "—"),
    make("td", f.decision ? DECISION_WORDS[f.decision] : "—", f.decision ? `d-${f.decision}` : "dim"),
    openCell,
  );
  return tr;
}

async function search() {
  const params = query();
  if (offset) params.set("offset", String(offset));
  history.replaceState(null, "", `/history${params.size ? `?${params}` : ""}`);
  params.set("limit", String(PAGE_SIZE));
  ui.summary.className = "note";
  ui.summary.textContent = "searching…";
  try {
    const page = await getJSON(`/api/frames?${params}`);
    ui.rows.replaceChildren(...page.items.map(row));
    const last = Math.min(offset + page.items.length, page.total);
    ui.summary.textContent = page.total
      ? `${page.total} frame${page.total > 1 ? "s" : ""} found; showing ${offset + 1}–${last}, newest first`
      : "no frame matches these filters";
    ui.pageWord.textContent = page.total ? `${offset + 1}–${last} of ${page.total}` : "";
    ui.prev.disabled = offset === 0;
    ui.next.disabled = last >= page.total;
  } catch (err) {
    ui.rows.replaceChildren();
    ui.summary.className = "note bad";
    ui.summary.textContent = `search failed: ${err.message}`;
  }
}

ui.form.addEventListener("submit", (e) => { e.preventDefault(); offset = 0; search(); });
ui.reset.addEventListener("click", () => { ui.form.reset(); offset = 0; search(); });
ui.prev.addEventListener("click", () => { offset = Math.max(offset - PAGE_SIZE, 0); search(); });
ui.next.addEventListener("click", () => { offset += PAGE_SIZE; search(); });

loadMe().catch((err) => console.warn("who am I?", err));
let classesFilled = false;
startStatusBar({
  onHealth: (h) => {
    if (classesFilled || !h.classes || !h.classes.length) return;
    classesFilled = true;
    const chosen = FIELDS.class.value;
    const known = new Set([...FIELDS.class.options].map((o) => o.value));
    for (const name of h.classes) if (!known.has(name)) FIELDS.class.append(new Option(name, name));
    FIELDS.class.value = chosen;
  },
});
fillForm(new URLSearchParams(location.search));
search();
