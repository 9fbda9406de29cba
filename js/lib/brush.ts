// Brushing (docs/linking.md): the Explorer's front-end selection store. Every part of one Explorer gets the same
// store through its render props; a part publishes the position under the pointer (`hover`) and a click's position
// (`pick`), and highlights what the store holds. Positions are absolute indices into the tokens, the key every view
// shares. Nothing here reaches the kernel: hovering never changes a trait.
//
// `picked` is a click's position shown at once in the other parts, before the kernel's answer moves their
// selection; the Explorer clears it when that answer arrives (explorer.ts), so the mark never outlives it.

export interface BrushState {
  hovered: number; // the position under the pointer in some part; -1 none
  picked: number; // the position a click just selected, until the kernel has answered; -1 none
}

export interface BrushStore {
  state(): BrushState;
  hover(position: number): void;
  pick(position: number): void;
  /** `fn` runs on every change (not now); returns the unsubscribe. */
  subscribe(fn: (state: BrushState) => void): () => void;
}

export function createBrush(): BrushStore {
  let current: BrushState = { hovered: -1, picked: -1 };
  const listeners = new Set<(state: BrushState) => void>();
  const update = (next: BrushState) => {
    if (next.hovered === current.hovered && next.picked === current.picked) return; // a repeat is no change
    current = next;
    for (const fn of [...listeners]) fn(current);
  };
  const valid = (p: number) => (Number.isInteger(p) && p >= 0 ? p : -1);
  return {
    state: () => current,
    hover: (p) => update({ ...current, hovered: valid(p) }),
    pick: (p) => update({ ...current, picked: valid(p) }),
    subscribe(fn) {
      listeners.add(fn);
      return () => listeners.delete(fn);
    },
  };
}

// Light marks that leave the selection's own outline (.aw-selected, .aw-source) readable: an amber underline and
// background for the hovered position, a dashed accent outline for a pick on its way to the kernel.
export const BRUSH_CSS = `
.aw-brushed { background-image: linear-gradient(rgba(255, 170, 0, 0.28), rgba(255, 170, 0, 0.28));
  box-shadow: inset 0 -3px 0 rgba(230, 140, 0, 0.9); }
.aw-picked { outline: 2px dashed var(--aw-accent); outline-offset: 1px; }
`;

/** Where a DOM element stands for a position: running-text tokens and heatmap column labels carry
 * data-position. */
const POSITIONED = "[data-position]";

/** Publish the position of the element under the pointer, delegated from `root` so redraws need no rebinding. */
export function publishDomHover(root: HTMLElement, brush: BrushStore): () => void {
  const positionOf = (target: EventTarget | null): number => {
    const node = target instanceof Element ? target.closest<HTMLElement>(POSITIONED) : null;
    return node && root.contains(node) ? Number(node.dataset.position) : -1;
  };
  const over = (e: MouseEvent) => {
    const p = positionOf(e.target);
    if (p >= 0) brush.hover(p);
  };
  const out = (e: MouseEvent) => {
    if (positionOf(e.target) >= 0 && positionOf(e.relatedTarget) < 0) brush.hover(-1);
  };
  root.addEventListener("mouseover", over);
  root.addEventListener("mouseout", out);
  return () => {
    root.removeEventListener("mouseover", over);
    root.removeEventListener("mouseout", out);
  };
}

/** Mark the DOM elements of the brushed and picked positions (after every redraw, and on every change), and
 * record both on the root (data-brushed, data-picked) for tests and the curious. */
export function markDom(root: HTMLElement, { hovered, picked }: BrushState): void {
  root.dataset.brushed = String(hovered);
  root.dataset.picked = String(picked);
  // Only the marked elements and those of the two positions are touched: a long text stays cheap to brush.
  for (const node of Array.from(root.querySelectorAll(".aw-brushed, .aw-picked"))) {
    node.classList.remove("aw-brushed", "aw-picked");
  }
  const mark = (p: number, name: string) => {
    if (p < 0) return;
    for (const node of Array.from(root.querySelectorAll(`[data-position="${p}"]`))) node.classList.add(name);
  };
  mark(hovered, "aw-brushed");
  if (picked !== hovered) mark(picked, "aw-picked");
}

/** A canvas column band for the brushed position (under the marks that follow it): x0..x1, y0..y1 in CSS px. */
export function paintBrushBand(ctx: CanvasRenderingContext2D, x0: number, x1: number, y0: number, y1: number): void {
  ctx.save();
  ctx.fillStyle = "rgba(255, 170, 0, 0.22)";
  ctx.fillRect(x0, y0, x1 - x0, y1 - y0);
  ctx.strokeStyle = "rgba(230, 140, 0, 0.9)";
  ctx.lineWidth = 1;
  ctx.strokeRect(x0 + 0.5, y0 + 0.5, Math.max(0, x1 - x0 - 1), Math.max(0, y1 - y0 - 1));
  ctx.restore();
}
