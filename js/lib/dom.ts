// Tiny DOM helpers. Text goes through textContent only: token strings are untrusted.

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className = "",
  text?: string,
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/** fn once the current task ends (the writes of one click go out together), then at most once every `ms` while
 * calls keep coming; the last call always runs. A click reaches the kernel at once; a drag sends every `ms`.
 * `cancel()` drops a call not made yet (the view is gone). */
export function throttleAfterTask(fn: () => void, ms: number): (() => void) & { cancel: () => void } {
  let last = -Infinity;
  let pending = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const run = () => {
    if (!pending) return; // cancelled meanwhile
    pending = false;
    timer = undefined;
    last = performance.now();
    fn();
  };
  const wrapped = () => {
    if (pending) return;
    pending = true;
    const wait = last + ms - performance.now();
    if (wait <= 0) queueMicrotask(run);
    else timer = setTimeout(run, wait);
  };
  wrapped.cancel = () => {
    pending = false;
    if (timer !== undefined) clearTimeout(timer);
  };
  return wrapped;
}

/** Visible form of a token: whitespace made explicit for labels (not for running text). */
export function showWhitespace(s: string): string {
  return s.replace(/ /g, "\u2423").replace(/\n/g, "\u21b5").replace(/\t/g, "\u21e5") || "\u2205";
}

/** Make a non-button element clickable by mouse and keyboard. */
export function clickable(node: HTMLElement, onActivate: (e: MouseEvent | KeyboardEvent) => void): void {
  node.tabIndex = 0;
  node.setAttribute("role", "button");
  node.addEventListener("click", (e) => onActivate(e));
  node.addEventListener("keydown", (e) => {
    if (e.key === "Enter" || e.key === " ") {
      e.preventDefault();
      onActivate(e);
    }
  });
}

/** CSS custom property of an element, or a fallback. */
export function cssVar(el: HTMLElement, name: string, fallback: string): string {
  const v = getComputedStyle(el).getPropertyValue(name).trim();
  return v || fallback;
}

/** Size a canvas for CSS pixels w x h at the device pixel ratio; returns its context scaled to CSS px. */
export function sizeCanvas(canvas: HTMLCanvasElement, w: number, hgt: number): CanvasRenderingContext2D | null {
  const dpr = window.devicePixelRatio || 1;
  canvas.style.width = `${w}px`;
  canvas.style.height = `${hgt}px`;
  canvas.width = Math.max(1, Math.round(w * dpr));
  canvas.height = Math.max(1, Math.round(hgt * dpr));
  const ctx = canvas.getContext("2d");
  if (ctx) ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  return ctx;
}

/** A cleared context for a canvas redrawn often (scrolling): resized, which reallocates, only when the size
 * changed. */
export function clearCanvas(canvas: HTMLCanvasElement, w: number, hgt: number): CanvasRenderingContext2D | null {
  const dpr = window.devicePixelRatio || 1;
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(hgt * dpr)) sizeCanvas(canvas, w, hgt);
  const ctx = canvas.getContext("2d");
  if (!ctx) return null;
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, hgt);
  return ctx;
}

/** Call `commit` when a text or number box's value is committed: on `change`, and on Enter, since inside
 * JupyterLab's output area Enter fires no `change` (jupyterlab#6555; ipywidgets#2975 did the same for its
 * boxes). `commit` must tolerate a repeat: the blur after Enter fires `change` as well. */
export function onCommit(input: HTMLInputElement, commit: () => void): void {
  input.addEventListener("change", commit);
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter") commit();
  });
}
