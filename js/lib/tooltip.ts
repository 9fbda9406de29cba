// The one hover tooltip of a view: placed near the pointer but kept inside the view's box (a 250 px sidebar
// clips whatever sticks out), and re-read after every redraw so that it never describes the old selection.

const OFFSET = 12; // px between the pointer and the tooltip
const pointers = new WeakMap<HTMLElement, { x: number; y: number }>(); // last pointer over each tooltip's owner

/** Show `text` near the pointer, clamped to the tooltip's positioned parent (the view's root). */
export function showTooltip(tooltip: HTMLElement, text: string, e: MouseEvent): void {
  // parentElement, not offsetParent: the latter is null while the (empty) tooltip is display:none.
  const parent = tooltip.parentElement;
  tooltip.textContent = text;
  pointers.set(tooltip, { x: e.clientX, y: e.clientY });
  if (!parent) return;
  const box = parent.getBoundingClientRect();
  // Measure at the left edge, where its width is not squeezed by an earlier position near the right edge.
  tooltip.style.left = "0px";
  const maxX = parent.clientWidth - tooltip.offsetWidth;
  const maxY = parent.clientHeight - tooltip.offsetHeight;
  const px = e.clientX - box.left - parent.clientLeft;
  const py = e.clientY - box.top - parent.clientTop;
  let top = py + OFFSET;
  if (top > maxY) top = py - OFFSET - tooltip.offsetHeight; // no room below the pointer: above it
  tooltip.style.left = `${clamp(px + OFFSET, 0, maxX)}px`;
  tooltip.style.top = `${clamp(top, 0, maxY)}px`;
}

export function hideTooltip(tooltip: HTMLElement): void {
  tooltip.textContent = "";
  pointers.delete(tooltip);
}

/**
 * After a redraw, describe what is under the pointer now: a click changes the selection, and the element under
 * the pointer (replaced by the redraw, or a canvas with new data) would otherwise keep the old text until the
 * mouse moved. A synthetic mousemove runs the new element's own hover handler.
 */
export function refreshTooltip(tooltip: HTMLElement): void {
  const at = pointers.get(tooltip);
  const root = tooltip.parentElement;
  if (!at || !root || !tooltip.textContent) return;
  // The root node: marimo renders views in a shadow root, where document.elementFromPoint sees only the host.
  const scope = root.getRootNode() as Document | ShadowRoot;
  const under = scope.elementFromPoint(at.x, at.y); // the tooltip has pointer-events: none, so never itself
  if (!under || !root.contains(under)) {
    hideTooltip(tooltip);
    return;
  }
  under.dispatchEvent(new MouseEvent("mousemove", { clientX: at.x, clientY: at.y, bubbles: true }));
}

function clamp(v: number, lo: number, hi: number): number {
  return Math.max(lo, Math.min(Math.max(lo, hi), v));
}
