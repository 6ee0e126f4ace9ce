// Technician and vendor page: the models (active, previous, history), upgrade from a bundle
// and rollback, test runs and their reports, the audit log. Sections a role may not use
// are not shown (common.js hides [data-needs]); the API refuses them anyway.
import { dateTime, el, getJSON, loadMe, make, postJSON } from "./common.js";
import { startStatusBar } from "./statusbar.js";

const ui = {
  noRole: el("no-role"), active: el("active"), modelError: el("model-error"),
  history: el("model-history"), upgradeForm: el("upgrade-form"), bundle: el("bundle"),
  upgrade: el("upgrade"), rollback: el("rollback"), progress: el("upgrade-progress"),
  step: el("upgrade-step"), upgradeOutcome: el("upgrade-outcome"),
  startRegression: el("start-regression"), acceptanceForm: el("acceptance-form"),
  site: el("acceptance-site"), operator: el("acceptance-operator"),
  startAcceptance: el("start-acceptance"), testOutcome: el("test-outcome"), runs: el("runs"),
  thresholdsSource: el("thresholds-source"), thresholds: el("thresholds"),
  auditVerify: el("audit-verify"), auditEntries: el("audit-entries"), auditNewer: el("audit-newer"),
  auditOlder: el("audit-older"), auditPage: el("audit-page"),
};
const AUDIT_PAGE = 25;
const JOB_POLL_MS = 2000;
let auditOffset = 0;
let me = null; // who is logged in (GET /api/me), once known
let jobTimer = null;

function emptyRow(span, text) {
  const tr = document.createElement("tr");
  const td = make("td", text, "dim");
  td.colSpan = span;
  tr.append(td);
  return tr;
}

function facts(target, pairs) {
  target.replaceChildren(...pairs.flatMap(([k, v]) => [make("dt", k), make("dd", v)]));
}

async function loadModels() {
  const models = await getJSON("/api/models");
  const a = models.active;
  facts(ui.active, [
    ["active", a ? `${a.name} v${a.version}` : "none loaded: every bag is NOT SCREENED"],
    ["sha256", a && a.sha256 ? a.sha256 : "—"],
    ["classes", a ? a.classes.join(", ") : "—"],
    ["previous", models.previous ? `${models.previous.name} v${models.previous.version}` : "none recorded"],
  ]);
  ui.modelError.hidden = !models.error;
  ui.modelError.textContent = models.error ? `model refused: ${models.error}` : "";
  const rows = (models.models || []).map((m) => {
    const tr = document.createElement("tr");
    const state = a && m.id === a.id ? "active" : m.state || "";
    tr.append(make("td", m.name), make("td", m.version), make("td", (m.sha256 || "").slice(0, 16), "mono"),
      make("td", (m.classes || []).join(", ")), make("td", state));
    return tr;
  });
  ui.history.replaceChildren(...(rows.length ? rows : [emptyRow(5, "no model installed")]));
  showThresholds(models.running ? models.running.thresholds : null);
}

// Per class: the score in force, the manifest's, and the device's calibrated override.
function showThresholds(t) {
  if (!t) {
    ui.thresholdsSource.textContent = "No thresholds to show: no model is loaded, or its files cannot be read.";
    ui.thresholds.replaceChildren(emptyRow(4, "—"));
    return;
  }
  const cal = t.calibration;
  let words = t.source === "device calibration"
    ? `Device calibration (${cal && cal.created ? dateTime(cal.created) : "date unknown"}) replaces ` +
      "the model manifest's thresholds for this exact model."
    : "The model manifest's thresholds: no device calibration for this model.";
  if (t.note) words += ` ${t.note}`;
  ui.thresholdsSource.textContent = words;
  ui.thresholdsSource.className = `note${t.note ? " bad" : ""}`;
  const score = (v) => (v === undefined || v === null ? "—" : Number(v).toFixed(3));
  const rows = Object.keys(t.in_force).map((name) => {
    const tr = document.createElement("tr");
    tr.append(make("td", name), make("td", score(t.in_force[name]), "mono"),
      make("td", score(t.manifest[name]), "mono"), make("td", score((t.overrides || {})[name]), "mono"));
    return tr;
  });
  ui.thresholds.replaceChildren(...(rows.length ? rows : [emptyRow(4, "—")]));
}

// What an entry says happened: its message, else its details in short.
function auditDetail(e) {
  const details = e.details && typeof e.details === "object" ? Object.entries(e.details) : [];
  const parts = details.slice(0, 4).map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`);
  return [e.message, e.model && `model ${e.model}`, ...parts].filter(Boolean).join(" · ") ||
    (typeof e.details === "string" ? e.details : "");
}

async function loadAudit() {
  const page = await getJSON(`/api/audit?limit=${AUDIT_PAGE}&offset=${auditOffset}`);
  const v = page.verification;
  ui.auditVerify.className = `note ${v.ok ? "ok" : "bad"}`;
  ui.auditVerify.textContent = v.ok
    ? `Hash chain verified: all ${v.entries} entr${v.entries === 1 ? "y is" : "ies are"} intact.`
    : `HASH CHAIN BROKEN${v.first_bad ? ` at entry ${v.first_bad}` : ""}: ${v.problem}. ` +
      "Entries from there on cannot be trusted.";
  const rows = page.items.map((e) => {
    const tr = document.createElement("tr");
    if (!v.ok && v.first_bad !== null && e.id >= v.first_bad) tr.className = "broken";
    tr.append(make("td", String(e.id), "mono"), make("td", dateTime(e.at)), make("td", e.actor),
      make("td", e.action), make("td", auditDetail(e)));
    return tr;
  });
  ui.auditEntries.replaceChildren(...(rows.length ? rows : [emptyRow(5, "no entries yet")]));
  const last = Math.min(auditOffset + page.items.length, page.total);
  ui.auditPage.textContent = page.total ? `${auditOffset + 1}–${last} of ${page.total}, newest first` : "";
  ui.auditNewer.disabled = auditOffset === 0;
  ui.auditOlder.disabled = last >= page.total;
}

function auditFailed(err) {
  ui.auditVerify.className = "note bad";
  ui.auditVerify.textContent = `audit log: ${err.message}`;
}

ui.auditNewer.addEventListener("click", () => {
  auditOffset = Math.max(auditOffset - AUDIT_PAGE, 0);
  loadAudit().catch(auditFailed);
});
ui.auditOlder.addEventListener("click", () => {
  auditOffset += AUDIT_PAGE;
  loadAudit().catch(auditFailed);
});

async function loadRuns() {
  const runs = await getJSON("/api/tests");
  const rows = runs.items.map((r) => {
    const tr = document.createElement("tr");
    const link = document.createElement("a");
    link.href = `/api/tests/${encodeURIComponent(r.id)}/report?format=html`;
    link.target = "_blank";
    link.textContent = "report";
    const reportCell = document.createElement("td");
    reportCell.append(link);
    tr.append(make("td", r.id, "mono"), make("td", r.kind || ""),
      make("td", r.passed ? "PASSED" : `FAILED (${r.failures})`, r.passed ? "" : "bad"),
      make("td", r.created ? dateTime(r.created) : ""), make("td", r.model || ""), reportCell);
    return tr;
  });
  ui.runs.replaceChildren(...(rows.length ? rows : [emptyRow(6, "no test runs yet")]));
}

// A test job started here (or by another technician): its state, refreshed until it ends.
const JOB_WORDS = { passed: "passed", failed: "FAILED", error: "could not finish" };

function showJob(job) {
  const who = job.kind === "acceptance" ? `Acceptance (${job.site}, ${job.operator})` : "Regression suite";
  const since = dateTime(job.started);
  if (job.state === "running") {
    ui.testOutcome.hidden = false;
    ui.testOutcome.className = "note outcome running";
    ui.testOutcome.textContent = `${who}: running since ${since}, started by ${job.by}…`;
  } else {
    const run = job.run_id ? ` Run ${job.run_id} is in the list below.` : "";
    const note = job.message ? ` ${job.message}.` : "";
    outcome(ui.testOutcome, job.state === "passed", `${who} ${JOB_WORDS[job.state]}.${note}${run}`);
  }
  ui.startRegression.disabled = ui.startAcceptance.disabled = job.state === "running";
}

async function followJob(id) {
  clearTimeout(jobTimer);
  let job;
  try {
    job = await getJSON(`/api/tests/jobs/${encodeURIComponent(id)}`);
  } catch (err) {
    outcome(ui.testOutcome, false, `test job: ${err.message}`);
    ui.startRegression.disabled = ui.startAcceptance.disabled = false;
    return;
  }
  showJob(job);
  if (job.state === "running") {
    jobTimer = setTimeout(() => followJob(id), JOB_POLL_MS);
    return;
  }
  await loadRuns().catch((err) => outcome(ui.testOutcome, false, `test runs: ${err.message}`));
  loadAudit().catch(auditFailed);
}

// On load: follow the newest job if it still runs (it may have been started elsewhere).
async function resumeJob() {
  const jobs = await getJSON("/api/tests/jobs");
  const newest = jobs.items[0];
  if (newest && newest.state === "running") await followJob(newest.job);
}

async function startJob(body) {
  ui.startRegression.disabled = ui.startAcceptance.disabled = true;
  try {
    const job = await postJSON("/api/tests", body);
    showJob(job);
    jobTimer = setTimeout(() => followJob(job.job), JOB_POLL_MS);
  } catch (err) {
    outcome(ui.testOutcome, false, refusal(err));
    ui.startRegression.disabled = ui.startAcceptance.disabled = false;
  }
}

// The outcome in plain words: accepted, or refused and why (the API's message).
function outcome(target, ok, text) {
  target.hidden = false;
  target.className = `note outcome ${ok ? "ok" : "bad"}`;
  target.textContent = text;
}

function refusal(err) {
  return err.status === 501 ? `Not available: ${err.message}` : `Refused: ${err.message}`;
}

// The engine writes an audit entry as an upgrade passes each stage: while one runs, the
// newest entry says how far it got (the regression gate is the long part).
const STAGES = {
  "upgrade-started": "copying the bundle and checking its signature and files…",
  "upgrade-verified": "signature and files verified; running the regression suite against the active model (minutes)…",
  "upgrade-activated": "passed the gate and activated; checking the new model screens a test frame…",
};

function followStages(busyWords) {
  let since = null;
  const poll = async () => {
    const newest = (await getJSON("/api/audit?limit=1")).items[0];
    if (since === null) since = newest ? newest.id : 0;
    else if (newest && newest.id > since && STAGES[newest.action]) {
      ui.step.textContent = `${busyWords} ${STAGES[newest.action]}`;
    }
  };
  poll().catch(() => {}); // the audit log is a help here, not a condition
  const timer = setInterval(() => poll().catch(() => {}), 1000);
  return () => clearInterval(timer);
}

async function modelChange(url, body, busyWords, doneWords) {
  ui.upgrade.disabled = ui.rollback.disabled = true;
  ui.progress.hidden = false;
  ui.step.textContent = busyWords;
  ui.upgradeOutcome.hidden = true;
  const stop = me?.may.includes("audit") ? followStages(busyWords) : () => {};
  try {
    const result = await postJSON(url, body);
    outcome(ui.upgradeOutcome, true, result.message || doneWords);
    await loadModels();
  } catch (err) {
    outcome(ui.upgradeOutcome, false, refusal(err));
  }
  try {
    await loadAudit(); // an upgrade or rollback, accepted or refused, is a new entry
  } catch (err) {
    auditFailed(err);
  } finally {
    stop();
    ui.progress.hidden = true;
    ui.upgrade.disabled = ui.rollback.disabled = false;
  }
}

ui.upgradeForm.addEventListener("submit", (e) => {
  e.preventDefault();
  const bundle = ui.bundle.value.trim();
  modelChange("/api/models/upgrade", { bundle }, `checking and installing ${bundle}…`,
    "Upgrade accepted: the new model is active.");
});
ui.rollback.addEventListener("click", () => {
  modelChange("/api/models/rollback", {}, "rolling back…", "Rolled back: the previous model is active.");
});
ui.startRegression.addEventListener("click", () => startJob({ kind: "regression" }));
ui.acceptanceForm.addEventListener("submit", (e) => {
  e.preventDefault();
  startJob({ kind: "acceptance", site: ui.site.value.trim(), operator: ui.operator.value.trim() });
});

loadMe()
  .then((who) => {
    me = who;
    const any = ["upgrade", "rollback", "test", "export", "audit"].some((a) => me.may.includes(a));
    if (!any) {
      ui.noRole.hidden = false;
      ui.noRole.textContent = `Nothing here for the ${me.role} role: models, upgrades, test runs and ` +
        "the audit log are for technicians and vendors.";
      return;
    }
    loadModels().catch((err) => outcome(ui.modelError, false, `models: ${err.message}`));
    loadRuns().catch((err) => outcome(ui.testOutcome, false, `test runs: ${err.message}`));
    if (me.may.includes("test")) resumeJob().catch((err) => console.warn("test jobs", err));
    if (me.may.includes("audit")) loadAudit().catch(auditFailed);
  })
  .catch((err) => console.warn("who am I?", err));
startStatusBar();
