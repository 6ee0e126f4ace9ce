// One bag on screen: the image (any view) in an SVG, the detector's boxes drawn over it
// with class and score, and zoom (buttons, keys, mouse wheel; drag to pan when zoomed).
// Boxes are xyxy in frame pixels, the SVG's user units, so they line up at every zoom.
import { imageUrl, keyOf } from "./common.js";

const SVG_NS = "http://www.w3.org/2000/svg"; // an XML namespace name, not fetched
// High-contrast against the orange/green/blue pseudo-colour palette.
const PALETTE = ["#ff2d55", "#ffe600", "#00e5ff", "#ff5cf4", "#b6ff00", "#ffffff", "#ff8a00", "#9d8cff"];
const ZOOMS = [1, 1.5, 2, 3, 4, 6, 8];
export const VIEWS = ["pseudo", "high", "low", "material"];
export const VIEW_WORDS = { pseudo: "colour", high: "high", low: "low", material: "material" };

export class Viewer {
  // `svg` holds an <image> and a <g> for the boxes; `classes()` gives the model's class list.
  constructor(svg, image, boxes, classes) {
    this.svg = svg;
    this.image = image;
    this.boxes = boxes;
    this.classes = classes;
    this.frame = null;
    this.view = "pseudo";
    this.showBoxes = true;
    this.zoom = 1;
    this.centre = [0, 0];
    this.drag = null;
    svg.addEventListener("wheel", (e) => this.onWheel(e), { passive: false });
    svg.addEventListener("pointerdown", (e) => this.onPointerDown(e));
    svg.addEventListener("pointermove", (e) => this.onPointerMove(e));
    svg.addEventListener("pointerup", () => { this.drag = null; });
    svg.addEventListener("pointercancel", () => { this.drag = null; });
    window.addEventListener("resize", () => this.drawBoxes());
  }

  // Load the image first, then swap image, boxes and state together so they never
  // disagree; resolves to "ok", or the reason the asked view could not be shown.
  load(f) {
    const view = this.view;
    return new Promise((resolve) => {
      const loader = new Image();
      loader.onload = () => resolve({ f, view, ok: true });
      loader.onerror = () => resolve({ f, view, ok: false });
      loader.src = imageUrl(f, view);
    });
  }

  // Show a loaded frame; a new bag starts unzoomed.
  draw(f, imageOk, view) {
    if (!this.frame || keyOf(this.frame) !== keyOf(f)) {
      this.zoom = 1;
      this.centre = [f.width / 2, f.height / 2];
    }
    this.frame = f;
    this.image.setAttribute("width", f.width);
    this.image.setAttribute("height", f.height);
    this.image.setAttribute("href", imageOk ? imageUrl(f, view) : "");
    this.svg.dataset.frame = f.id;
    this.svg.dataset.view = view;
    this.applyZoom();
  }

  setView(view) {
    this.view = view;
  }

  toggleBoxes(on) {
    this.showBoxes = on === undefined ? !this.showBoxes : on;
    this.boxes.classList.toggle("off", !this.showBoxes);
  }

  colourOf(name) {
    const classes = this.classes();
    let i = classes.indexOf(name);
    if (i < 0) {
      i = 0;
      for (const ch of name) i = (i * 31 + ch.charCodeAt(0)) >>> 0;
    }
    return PALETTE[i % PALETTE.length];
  }

  drawBoxes() {
    const f = this.frame;
    if (!f) return;
    const box = this.svg.getBoundingClientRect();
    // Frame pixels per screen pixel, so labels stay readable at any window size and zoom.
    const unit = Math.max(f.width / Math.max(box.width, 1), f.height / Math.max(box.height, 1)) / this.zoom;
    const font = 15 * unit;
    const nodes = f.detections.map((d) => {
      const [x1, y1, x2, y2] = d.box;
      const colour = this.colourOf(d.class);
      const g = document.createElementNS(SVG_NS, "g");
      g.setAttribute("class", "det");
      g.dataset.class = d.class;
      g.dataset.score = d.score;
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
      const top = y1 - labelH >= 0 ? y1 - labelH : y1;
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
    this.boxes.replaceChildren(...nodes);
  }

  // ----------------------------------------------------------------- zoom and pan

  applyZoom() {
    const f = this.frame;
    if (!f) return;
    const w = f.width / this.zoom;
    const h = f.height / this.zoom;
    // Keep the window inside the image.
    const cx = Math.min(Math.max(this.centre[0], w / 2), f.width - w / 2);
    const cy = Math.min(Math.max(this.centre[1], h / 2), f.height - h / 2);
    this.centre = [cx, cy];
    this.svg.setAttribute("viewBox", `${cx - w / 2} ${cy - h / 2} ${w} ${h}`);
    this.svg.classList.toggle("zoomed", this.zoom > 1);
    this.drawBoxes();
    if (this.onZoom) this.onZoom(this.zoom);
  }

  zoomBy(steps, at) {
    if (!this.frame) return;
    let i = ZOOMS.findIndex((z) => z >= this.zoom - 1e-6);
    i = Math.min(Math.max((i < 0 ? ZOOMS.length - 1 : i) + steps, 0), ZOOMS.length - 1);
    const old = this.zoom;
    this.zoom = ZOOMS[i];
    if (at) {
      // Keep the frame point under the cursor where it is.
      const k = old / this.zoom;
      this.centre = [at[0] + (this.centre[0] - at[0]) * k, at[1] + (this.centre[1] - at[1]) * k];
    }
    this.applyZoom();
  }

  resetZoom() {
    if (!this.frame) return;
    this.zoom = 1;
    this.centre = [this.frame.width / 2, this.frame.height / 2];
    this.applyZoom();
  }

  framePoint(e) {
    const m = this.svg.getScreenCTM();
    if (!m) return null;
    const p = new DOMPoint(e.clientX, e.clientY).matrixTransform(m.inverse());
    return [p.x, p.y];
  }

  onWheel(e) {
    if (!this.frame) return;
    e.preventDefault();
    this.zoomBy(e.deltaY < 0 ? 1 : -1, this.framePoint(e));
  }

  onPointerDown(e) {
    if (this.zoom <= 1) return;
    this.drag = { at: this.framePoint(e), centre: [...this.centre] };
    this.svg.setPointerCapture(e.pointerId);
  }

  onPointerMove(e) {
    if (!this.drag || !this.drag.at) return;
    const p = this.framePoint(e);
    if (!p) return;
    // framePoint moves with the view; measure against the centre the drag started from.
    const [dx, dy] = [p[0] - this.drag.at[0], p[1] - this.drag.at[1]];
    this.centre = [this.centre[0] - dx, this.centre[1] - dy];
    this.applyZoom();
    this.drag.at = this.framePoint(e);
  }
}

// Wires view, boxes and zoom buttons (elements with data-view, data-action) and their keys:
// 1-4 the views, B boxes, + / - zoom, 0 fit. `reload()` shows the frame again in the new view.
export function bindViewControls(viewer, root, reload) {
  const viewButtons = [...root.querySelectorAll("[data-view]")];
  const boxesButton = root.querySelector("[data-action=boxes]");
  const zoomWord = root.querySelector("[data-zoom]");
  const mark = () => {
    for (const b of viewButtons) b.setAttribute("aria-pressed", String(b.dataset.view === viewer.view));
    if (boxesButton) boxesButton.setAttribute("aria-pressed", String(viewer.showBoxes));
  };
  viewer.onZoom = (z) => { if (zoomWord) zoomWord.textContent = `${Math.round(z * 100)}%`; };
  const setView = (view) => { viewer.setView(view); mark(); reload(); };
  for (const b of viewButtons) b.addEventListener("click", () => setView(b.dataset.view));
  if (boxesButton) boxesButton.addEventListener("click", () => { viewer.toggleBoxes(); mark(); });
  const actions = {
    "zoom-in": () => viewer.zoomBy(1),
    "zoom-out": () => viewer.zoomBy(-1),
    "zoom-fit": () => viewer.resetZoom(),
  };
  for (const [name, act] of Object.entries(actions)) {
    const b = root.querySelector(`[data-action=${name}]`);
    if (b) b.addEventListener("click", act);
  }
  mark();
  // Returns the key handler; the page calls it for keys it does not use itself.
  return (key) => {
    if (key >= "1" && key <= "4") setView(VIEWS[Number(key) - 1]);
    else if (key === "b") { viewer.toggleBoxes(); mark(); }
    else if (key === "+" || key === "=") viewer.zoomBy(1);
    else if (key === "-") viewer.zoomBy(-1);
    else if (key === "0") viewer.resetZoom();
    else return false;
    return true;
  };
}
