// What every view shows the same way: the kernel's busy flag and error banner, and a redraw that survives a
// malformed message (it shows the problem and keeps the controls alive).
import { h } from "./dom";
import { KERNEL_LOST, type PingModel, watchKernel } from "./liveness";
import { refreshTooltip } from "./tooltip";

export interface Status {
  errorBanner: HTMLDivElement;
  warnBanner: HTMLDivElement;
  updateBusy(): void;
  updateError(): void;
  /** The kernel stopped answering (liveness.ts), or answers again. */
  setKernelLost(lost: boolean): void;
  /** Calls draw(); counts renders in data-render-count; an exception goes to the warning banner; then the
   * tooltip is re-read under the pointer (a click changed what it describes). */
  redraw(): void;
}

export function viewStatus(root: HTMLElement, busy: () => unknown, error: () => string | undefined,
  draw: () => void, tooltip?: HTMLElement): Status {
  const errorBanner = h("div", "aw-banner aw-error");
  errorBanner.setAttribute("role", "alert");
  const warnBanner = h("div", "aw-banner aw-warning");
  let renderCount = 0;
  let kernelLost = false;
  return {
    errorBanner,
    warnBanner,
    updateBusy() {
      root.dataset.busy = String(Boolean(busy()));
    },
    updateError() {
      const err = error() || "";
      root.dataset.error = err;
      errorBanner.textContent = kernelLost ? KERNEL_LOST : err;
    },
    setKernelLost(lost: boolean) {
      kernelLost = lost;
      root.dataset.kernel = lost ? "lost" : "live";
      this.updateError();
    },
    redraw() {
      renderCount += 1;
      root.dataset.renderCount = String(renderCount);
      try {
        delete root.dataset.viewError;
        draw();
      } catch (e) {
        root.dataset.viewError = String(e);
        warnBanner.textContent = `view error: ${String(e)}`;
      }
      if (tooltip) refreshTooltip(tooltip);
    },
  };
}

/** Redraw on every trait in `traits`, track busy and error, draw once now; returns the view's teardown: the
 * unsubscribe, then each of `cleanups` (pending saves, size watchers, toolbars). */
export function listen(model: PingModel,
  traits: readonly string[], status: Status, ...cleanups: (() => void)[]): () => void {
  const handlers: [string, () => void][] = [
    ...traits.map((t) => [`change:${t}`, status.redraw] as [string, () => void]),
    ["change:busy", () => { status.updateBusy(); status.redraw(); }],
    ["change:error", status.updateError],
  ];
  for (const [ev, fn] of handlers) model.on(ev, fn);
  const stopWatching = watchKernel(model, (lost) => status.setKernelLost(lost));
  status.updateBusy();
  status.updateError();
  status.redraw();
  return () => {
    stopWatching();
    for (const [ev, fn] of handlers) model.off(ev, fn);
    for (const cleanup of cleanups) cleanup();
  };
}
