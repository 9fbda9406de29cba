// What every view does the same way, written once: its root element and stylesheet, the writes back to the
// kernel, the status (busy, error banner, kernel liveness), a redraw on its traits, its width, and one teardown.
// A view adds its toolbar controls, its body and its draw:
//   const view = createView(model, el, { className: "aw-token-matrix" });
//   const toolbar = view.toolbar({ primary: [...], secondary: [...] });
//   return view.start({ top: [toolbar.element], body: [...], traits: REDRAW_TRAITS, draw });
import type { AnyModel, ViewBase } from "../types";
import { BRUSH_CSS, markDom, publishDomHover, type BrushState, type BrushStore } from "./brush";
import { h, throttleAfterTask } from "./dom";
import { responsiveToolbar, watchWidth, type Toolbar, type ToolbarParts } from "./layout";
import { busyIndicator, listen, viewStatus, type Status } from "./status";
import { appendStyle, injectStyle } from "./theme";

/** A drag or a slider writes many values a second: the kernel hears at most one every SAVE_EVERY_MS (and the last
 * one always); a click goes out at once (a debounce once held every click back by this long). */
export const SAVE_EVERY_MS = 150;

export interface ViewOptions {
  className: string; // the view's own class ("aw-token-matrix"), next to aw-root
  /** The view handles arrows, Enter and Escape itself: JupyterLab's shortcuts run first (capture phase) and would
   * take them (arrows move notebook cells, Escape leaves edit mode); Lumino skips targets inside an element
   * carrying data-lm-suppress-shortcuts. */
  keys?: boolean;
  styles?: ((root: HTMLElement) => void)[]; // the view's own stylesheets, after the shared one
  /** The Explorer's brushing store (lib/brush.ts), shared by its parts; a view on its own has none, and then
   * hover() and onBrush() do nothing. */
  brush?: BrushStore;
}

export interface StartOptions {
  top: HTMLElement[]; // above the banners: the toolbar (and what its controls refer to)
  body: HTMLElement[]; // below the banners; the tooltip follows them
  traits: readonly string[]; // a change of any of them redraws
  /** Draws everything from the model. `width`: the width to lay canvases out at, with resize "redraw"; 0 without. */
  draw: (width: number) => void;
  /** "redraw": redraw when the width differs from the last draw's by a pixel or more (canvas views). A function:
   * called now, before the first draw, and on every change of width (it sizes what the draw paints into). */
  resize?: "redraw" | ((width: number) => void);
}

export interface View<T> {
  model: AnyModel<T>;
  root: HTMLDivElement;
  tooltip: HTMLDivElement;
  status: Status;
  /** Set a trait if it changed, and send it to the kernel (at once, or throttled while writes keep coming:
   * SAVE_EVERY_MS). A selected_target or
   * selected_position also goes to the brushing store at once, as a pick, so the other parts mark it before
   * the kernel answers. */
  write<K extends keyof T>(key: K, value: T[K]): void;
  /** Publish the position under the pointer (-1: none) to the brushing store: the DOM's data-position elements
   * publish by themselves, a canvas calls this. */
  hover(position: number): void;
  /** Publish a click's position as a pick (a GraphView's node: the kernel, not the view, sets its position). */
  pick(position: number): void;
  /** Called on every change of the brushing store while the view lives (a canvas repaints its band). */
  onBrush(fn: (state: BrushState) => void): void;
  /** The responsive toolbar (lib/layout.ts) with the busy indicator last in its status part. */
  toolbar(parts: Omit<ToolbarParts, "status"> & { status?: HTMLElement[] }): Toolbar;
  /** Fill the root, put it in `el`, draw once and keep drawing; returns the teardown the view's render returns. */
  start(options: StartOptions): () => void;
}

/** The width a canvas view lays out at: the root's less its padding (640 while the root is not laid out). */
export function drawWidth(root: HTMLElement, min = 120): number {
  return Math.max(min, (root.clientWidth || 640) - 14);
}

// Arrays (GraphView's pinned ids) compare by value: a new array of the same ids is no change to send.
const same = (a: unknown, b: unknown) =>
  a === b || (typeof b === "object" && b !== null && JSON.stringify(a) === JSON.stringify(b));

export function createView<T extends ViewBase>(model: AnyModel<T>, el: HTMLElement, options: ViewOptions): View<T> {
  const root = h("div", `aw-root ${options.className}`);
  if (el.closest(".aw-standalone-host")) root.classList.add("aw-standalone");
  if (options.keys) root.dataset.lmSuppressShortcuts = "true";
  injectStyle(root);
  for (const inject of options.styles ?? []) inject(root);
  const save = throttleAfterTask(() => model.save_changes(), SAVE_EVERY_MS);
  const tooltip = h("div", "aw-tooltip");
  let draw: () => void = () => {};
  // Status and liveness read the base traits (busy, error), which every T has.
  const base: AnyModel<ViewBase> = model;
  const status = viewStatus(root, base, () => draw(), tooltip);
  let bar: Toolbar | null = null;
  const brush = options.brush ?? null;
  if (brush) appendStyle(root, BRUSH_CSS);
  const brushListeners: ((state: BrushState) => void)[] = [];

  return {
    model, root, tooltip, status,
    // Local set first so the view answers at once; the kernel hears the writes of one event together. The pick
    // goes first: in a standalone page the set links the other parts at once, and their answer clears it.
    write(key, value) {
      if (same(model.get(key), value)) return;
      if (brush && (key === "selected_target" || key === "selected_position")) {
        brush.pick(pickedPosition(base, key, value));
      }
      model.set(key, value);
      save();
    },
    hover(position) {
      brush?.hover(position);
    },
    pick(position) {
      brush?.pick(position);
    },
    onBrush(fn) {
      brushListeners.push(fn);
    },
    toolbar({ primary, secondary, status: badges = [] }) {
      bar = responsiveToolbar(root, { primary, secondary, status: [...badges, busyIndicator()] });
      return bar;
    },
    start({ top, body, traits, draw: paint, resize }) {
      let lastWidth = 0;
      const painted = resize === "redraw" ? () => { lastWidth = drawWidth(root); paint(lastWidth); } : () => paint(0);
      // A redraw rebuilds the running text: the brushed position is marked again on the new elements.
      draw = brush ? () => { painted(); markDom(root, brush.state()); } : painted;
      root.append(...top, status.errorBanner, status.warnBanner, ...body, tooltip);
      el.appendChild(root);
      const onResize = resize === "redraw"
        ? () => { if (Math.abs(drawWidth(root) - lastWidth) >= 1) status.redraw(); }
        : resize;
      const unwatch = watchWidth(root, onResize);
      if (typeof resize === "function") resize(root.clientWidth);
      const unbrush = brush ? watchBrush(root, brush, brushListeners) : () => {};
      return listen(base, traits, status, () => save.cancel(), unwatch, () => bar?.dispose(), unbrush);
    },
  };
}

/** The position a selection write stands for: a target row is its target's position. */
function pickedPosition(model: AnyModel<ViewBase>, key: string, value: unknown): number {
  const v = Number(value);
  if (key === "selected_position") return v;
  const targets = (model.get as (k: string) => unknown)("target_positions");
  return Array.isArray(targets) && v >= 0 && v < targets.length ? Number(targets[v]) : -1;
}

/** The brushing store's changes mark the DOM and reach the view's own listeners (its canvases); the pointer over
 * the DOM publishes. Returns the teardown. */
function watchBrush(root: HTMLElement, brush: BrushStore, listeners: ((state: BrushState) => void)[]): () => void {
  const changed = (state: BrushState) => {
    markDom(root, state);
    for (const fn of listeners) fn(state);
  };
  const unsubscribe = brush.subscribe(changed);
  const unpublish = publishDomHover(root, brush);
  changed(brush.state());
  return () => {
    unsubscribe();
    unpublish();
  };
}

/** What a view says of a selection it holds no numbers for: a standalone page (no kernel) has only what was
 * computed before the export, so it never shows other numbers under the new label. */
export function notComputed(root: HTMLElement, what: string): string {
  return root.classList.contains("aw-standalone")
    ? `${what} is not computed in this export (it had not been computed when the page was written).`
    : `${what} has not been computed.`;
}

/** `v` when it indexes something of length n, else -1 (none): a selection from the kernel or another view may be
 * out of range for this one. */
export function inRange(v: number, n: number): number {
  return Number.isInteger(v) && v >= 0 && v < n ? v : -1;
}

const SELECTED = {
  target: "selected_target", position: "selected_position", layer: "selected_layer", head: "selected_head",
} as const;

/** The shared selection (types.ts ViewBase) checked against this view's sizes: each index asked for, -1 when out
 * of range. `selection(model, { target: targets.length, position: tokens.length })`. */
export function selection<K extends keyof typeof SELECTED>(model: Pick<AnyModel<ViewBase>, "get">,
  sizes: Record<K, number>): Record<K, number> {
  const out = {} as Record<K, number>;
  for (const k of Object.keys(sizes) as K[]) out[k] = inRange(model.get(SELECTED[k]), sizes[k]);
  return out;
}
