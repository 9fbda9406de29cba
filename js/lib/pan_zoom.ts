// Pan (drag) and zoom (wheel, around the pointer) for a canvas that draws world coordinates through one
// transform: screen = world * k + (x, y). Plain code rather than d3-zoom: the view needs only these two gestures.
// A drag is told from a click by a few pixels of movement, so a click at the end of a drag picks nothing.

export interface Transform {
  k: number;
  x: number;
  y: number;
}

const DRAG_PX = 4;
const ZOOM_OUT = 0.25; // how far below the fitted scale one may zoom out
const ZOOM_IN = 40; // ... and above it in

export class PanZoom {
  t: Transform = { k: 1, x: 0, y: 0 };
  touched = false; // panned or zoomed by the user since the last fit
  private fitK = 1;
  private drag: { id: number; x: number; y: number; tx: number; ty: number; moved: boolean } | null = null;
  private dragged = false; // the last press was a drag: the click it ends is not a pick

  constructor(el: HTMLElement, private onChange: () => void) {
    el.addEventListener("wheel", (e) => {
      e.preventDefault(); // the wheel zooms the graph instead of scrolling the notebook
      const box = el.getBoundingClientRect();
      const step = e.deltaMode === 1 ? 0.05 : e.deltaMode === 2 ? 1 : 0.002;
      this.zoomAt(e.clientX - box.left, e.clientY - box.top, Math.exp(-e.deltaY * step));
    }, { passive: false });
    el.addEventListener("pointerdown", (e) => {
      if (e.button !== 0) return;
      this.drag = { id: e.pointerId, x: e.clientX, y: e.clientY, tx: this.t.x, ty: this.t.y, moved: false };
      this.dragged = false;
    });
    el.addEventListener("pointermove", (e) => {
      const d = this.drag;
      if (!d || d.id !== e.pointerId) return;
      const dx = e.clientX - d.x;
      const dy = e.clientY - d.y;
      if (!d.moved && Math.hypot(dx, dy) < DRAG_PX) return;
      if (!d.moved) {
        d.moved = true;
        el.setPointerCapture?.(e.pointerId);
        el.classList.add("aw-dragging");
      }
      this.t = { ...this.t, x: d.tx + dx, y: d.ty + dy };
      this.touched = true;
      this.onChange();
    });
    const end = (e: PointerEvent) => {
      if (!this.drag || this.drag.id !== e.pointerId) return;
      this.dragged = this.drag.moved;
      this.drag = null;
      el.classList.remove("aw-dragging");
    };
    el.addEventListener("pointerup", end);
    el.addEventListener("pointercancel", end);
  }

  get dragging(): boolean {
    return this.drag?.moved ?? false;
  }

  /** True once after a drag: the click event that ends it should not pick anything. */
  consumeDrag(): boolean {
    const was = this.dragged;
    this.dragged = false;
    return was;
  }

  /** Show the whole world box (w x h) in a view of vw x vh, centred, with a margin. */
  fit(w: number, h: number, vw: number, vh: number, margin = 12): void {
    const k = Math.max(1e-3, Math.min((vw - 2 * margin) / Math.max(1, w), (vh - 2 * margin) / Math.max(1, h)));
    this.fitK = k;
    this.t = { k, x: (vw - w * k) / 2, y: (vh - h * k) / 2 };
    this.touched = false;
  }

  zoomAt(sx: number, sy: number, factor: number): void {
    const k = Math.min(this.fitK * ZOOM_IN, Math.max(this.fitK * ZOOM_OUT, this.t.k * factor));
    const f = k / this.t.k;
    this.t = { k, x: sx - (sx - this.t.x) * f, y: sy - (sy - this.t.y) * f };
    this.touched = true;
    this.onChange();
  }

  toWorld(sx: number, sy: number): [number, number] {
    return [(sx - this.t.x) / this.t.k, (sy - this.t.y) / this.t.k];
  }

  toScreen(wx: number, wy: number): [number, number] {
    return [wx * this.t.k + this.t.x, wy * this.t.k + this.t.y];
  }
}
