// The status bar on every page, from GET /api/health: model name and version, the state of
// each source's link, throughput, latency, free disk and every degraded state in words.
import { el, formatBytes, getJSON, make, modelWords } from "./common.js";

const HEALTH_MS = 2000;
const THROUGHPUT_WINDOW_MS = 60000;
const SOURCE_OK = new Set(["connected", "watching", "listening", "ok"]);

const samples = []; // [time ms, frames_in], for bags per minute

function throughput(h) {
  const now = Date.now();
  samples.push([now, h.frames_in]);
  while (samples.length > 2 && now - samples[0][0] > THROUGHPUT_WINDOW_MS) samples.shift();
  const [t0, n0] = samples[0];
  if (now - t0 < 1500) return "— bags/min";
  return `${(((h.frames_in - n0) * 60000) / (now - t0)).toFixed(1)} bags/min`;
}

function ms(v) {
  return v == null ? "—" : `${Math.round(v)} ms`;
}

function render(h) {
  const model = el("model");
  model.textContent = modelWords(h.model) || "NO MODEL";
  model.classList.toggle("missing", !h.model);

  const sources = el("sb-sources");
  const items = (h.sources || []).map((s) => {
    const ok = SOURCE_OK.has(s.state);
    return make("span", `${s.source} ${s.state || "?"}`, ok ? "link-ok" : "link-bad");
  });
  if (!items.length) items.push(make("span", "no scanner link (uploads only)", "dim"));
  sources.replaceChildren(...items);

  el("sb-throughput").textContent = throughput(h);
  const total = (h.latency_ms && h.latency_ms.total) || {};
  el("sb-latency").textContent =
    `latency last ${ms(h.last_latency_ms)} · p50 ${ms(total.p50)} · p99 ${ms(total.p99)}`;
  const log = h.logging;
  el("sb-disk").textContent = log ? `disk ${formatBytes(log.free_bytes)} free` : "image log off";

  const health = el("health");
  health.className = h.status === "ok" ? "health ok" : "health bad";
  health.textContent = h.status === "ok" ? "OK" : `DEGRADED: ${h.degraded.join("; ")}`;
  health.title = h.degraded.join("\n");
}

// Polls health and renders it; `onHealth(h)` and `onFail(err)` let a page use the answer.
export function startStatusBar({ onHealth, onFail } = {}) {
  async function poll() {
    try {
      const h = await getJSON("/api/health");
      render(h);
      if (onHealth) onHealth(h);
    } catch (err) {
      el("health").className = "health bad";
      el("health").textContent = "NO CONNECTION to the screening service";
      if (onFail) onFail(err);
    } finally {
      setTimeout(poll, HEALTH_MS);
    }
  }
  poll();
}
