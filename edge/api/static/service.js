// Technician and vendor page: the models (active, previous, history), upgrade from a bundle
// and rollback, test runs and their reports, the audit log. Sections a role may not use
// are not shown (common.js hides [data-needs]); the API refuses them anyway.
import { dateTime, el, getJSON, loadMe, make, postJSON } from "./common.js";
import { startStatusBar } from "./statusbar.js";

const ui = {
  noRole: el("no-role"), active: el("active"), modelError: el("model-error"),
  history: el("model-history"), upgradeForm: el("upgrade-form"), bundle: el("bundle"),
  upgrade: el("upgrade"), rollback: el("rollback"), progress: el("upgrade-progress"),
  step: el("upgrade-step"), upgradeOutcome: el("upgrade-outcome"), testForm: el("test-form"),
  suite: el("suite"), startTest: el("start-test"), testOutcome: el("test-outcome"), runs: el("runs"),
};

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
}

async function loadRuns() {
  const runs = await getJSON("/api/tests");
  const rows = runs.items.map((r) => {
    const tr = document.createElement("tr");
    const link = document.createElement("a");
    link.href = `/api/tests/${encodeURIComponent(r.id)}/report`;
    link.textContent = "report";
    const reportCell = document.createElement("td");
    reportCell.append(link);
    tr.append(make("td", r.id, "mono"), make("td", r.kind || r.suite || ""), make("td", r.state || ""),
      make("td", r.started ? dateTime(r.started) : ""), reportCell);
    return tr;
  });
  ui.runs.replaceChildren(...(rows.length ? rows : [emptyRow(5, "no test runs yet")]));
}

// The outcome in plain words: accepted, or refused and why (the API's message).
function outcome(target, ok, text) {
  target.hidden = false;
  target.className = `note outcome ${ok ? "ok" : "bad"}`;
  target.textContent = text;
}

function refusal(err) {
  return err.status === 501 ? `Not available yet: ${err.message}` : `Refused: ${err.message}`;
}

async function modelChange(url, body, busyWords, doneWords) {
  ui.upgrade.disabled = ui.rollback.disabled = true;
  ui.progress.hidden = false;
  ui.step.textContent = busyWords;
  ui.upgradeOutcome.hidden = true;
  try {
    const result = await postJSON(url, body);
    outcome(ui.upgradeOutcome, true, result.message || doneWords);
    await loadModels();
  } catch (err) {
    outcome(ui.upgradeOutcome, false, refusal(err));
  } finally {
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
ui.testForm.addEventListener("submit", async (e) => {
  e.preventDefault();
  ui.startTest.disabled = true;
  try {
    const run = await postJSON("/api/tests", { suite: ui.suite.value });
    outcome(ui.testOutcome, true, `Test run ${run.id || ""} started.`);
    await loadRuns();
  } catch (err) {
    outcome(ui.testOutcome, false, refusal(err));
  } finally {
    ui.startTest.disabled = false;
  }
});

loadMe()
  .then((me) => {
    const any = ["upgrade", "rollback", "test", "export"].some((a) => me.may.includes(a));
    if (!any) {
      ui.noRole.hidden = false;
      ui.noRole.textContent = `Nothing here for the ${me.role} role: models, upgrades, test runs and ` +
        "the audit log are for technicians and vendors.";
      return;
    }
    loadModels().catch((err) => outcome(ui.modelError, false, `models: ${err.message}`));
    loadRuns().catch((err) => outcome(ui.testOutcome, false, `test runs: ${err.message}`));
  })
  .catch((err) => console.warn("who am I?", err));
startStatusBar();
