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

/** What viewStatus reads from the widget's model: busy, busy_estimate and error. */
export interface StatusModel {
  get(name: string): unknown;
}

export const COMPUTING = "computing\u2026";

/** The spinner and label every view shows while the kernel computes; viewStatus adds the kernel's estimate
 * ("computing\u2026 about 40 s") when the work should take a few seconds or more. */
export function busyIndicator(): HTMLSpanElement {
  const busy = h("span", "aw-busy");
  busy.append(h("span", "aw-spinner"), h("span", "aw-busy-label", COMPUTING));
  return busy;
}

export function viewStatus(root: HTMLElement, model: StatusModel, draw: () => void,
  tooltip?: HTMLElement): Status {
  const busy = () => Boolean(model.get("busy"));
  const error = () => String(model.get("error") ?? "");
  const errorBanner = h("div", "aw-banner aw-error");
  errorBanner.setAttribute("role", "alert");
  const warnBanner = h("div", "aw-banner aw-warning");
  let renderCount = 0;
  let kernelLost = false;
  return {
    errorBanner,
    warnBanner,
    updateBusy() {
      root.dataset.busy = String(busy());
      const estimate = busy() ? String(model.get("busy_estimate") ?? "") : "";
      for (const label of root.querySelectorAll(".aw-busy-label")) {
        label.textContent = estimate ? `${COMPUTING} ${estimate}` : COMPUTING;
      }
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
    ["change:busy_estimate", () => status.updateBusy()],
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
