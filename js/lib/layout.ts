// Layout for the view's own width, not the window's: JupyterLab's right sidebar (250 px by default) and a
// full-width cell share one window. Below NARROW_PX the root carries `aw-narrow` (and data-narrow="true"): the
// toolbar keeps one row (its secondary controls move into a menu), the heatmap drops its stat columns and
// scrolls in its own box. A ResizeObserver rather than a container query: `container-type: inline-size` makes
// the root's own width ignore its content, so a host that sizes an output to its content (an ipywidgets HBox,
// any flex row) would collapse the view to 0 px.
import { h } from "./dom";

export const NARROW_PX = 400;

/** Track the root's width: toggles `aw-narrow`, then calls onResize(width) on changes. Returns the disconnect. */
export function watchWidth(root: HTMLElement, onResize?: (width: number) => void): () => void {
  const apply = (notify: boolean) => {
    const width = root.clientWidth;
    if (width === 0) return; // not laid out (a hidden tab or sidebar): keep the last layout
    const narrow = width < NARROW_PX;
    if (root.classList.contains("aw-narrow") !== narrow || root.dataset.narrow === undefined) {
      root.classList.toggle("aw-narrow", narrow);
      root.dataset.narrow = String(narrow);
      if (!narrow) root.classList.remove("aw-menu-open");
    }
    if (notify) onResize?.(width);
  };
  const observer = new ResizeObserver(() => apply(true));
  observer.observe(root);
  apply(false); // the class before the first draw; the view draws itself next

  return () => observer.disconnect();
}

export interface ToolbarParts {
  primary: HTMLElement[]; // always in the row (the method / statistic selector)
  secondary: HTMLElement[]; // in the row when wide, in the menu when narrow
  status: HTMLElement[]; // busy spinner, badges: always in the row
}

export interface Toolbar {
  element: HTMLDivElement;
  setModelId(text: string): void;
  dispose(): void;
}

/** A toolbar that is one row at any width: wide, every control in a wrapping row; narrow, a menu button. */
export function responsiveToolbar(root: HTMLElement, parts: ToolbarParts): Toolbar {
  const bar = h("div", "aw-toolbar");
  const more = h("div", "aw-toolbar-more");
  more.id = `aw-menu-${Math.random().toString(36).slice(2, 10)}`;
  const modelFull = h("div", "aw-model-full"); // the menu names the model in full
  more.append(...parts.secondary, modelFull);
  const toggle = h("button", "aw-menu-toggle", "\u22ef");
  toggle.type = "button";
  toggle.title = "more options";
  toggle.setAttribute("aria-label", "more options");
  toggle.setAttribute("aria-controls", more.id);
  toggle.setAttribute("aria-expanded", "false");
  if (parts.secondary.length === 0) toggle.classList.add("aw-no-menu");
  const modelId = h("span", "aw-model-id"); // ellipsized when narrow; its title holds the full name
  bar.append(...parts.primary, more, toggle, ...parts.status, modelId);

  const setOpen = (open: boolean) => {
    root.classList.toggle("aw-menu-open", open);
    toggle.setAttribute("aria-expanded", String(open));
  };
  toggle.addEventListener("click", () => setOpen(!root.classList.contains("aw-menu-open")));
  bar.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && root.classList.contains("aw-menu-open")) {
      e.stopPropagation();
      setOpen(false);
      toggle.focus();
    }
  });
  // A press anywhere outside the toolbar closes the menu. composedPath: inside a shadow root (marimo) the
  // document sees the host as the target.
  const outside = (e: Event) => {
    if (root.classList.contains("aw-menu-open") && !e.composedPath().includes(bar)) setOpen(false);
  };
  document.addEventListener("pointerdown", outside, true);
  return {
    element: bar,
    setModelId(text: string) {
      modelId.textContent = text;
      modelId.title = text;
      modelFull.textContent = text ? `model: ${text}` : "";
    },
    dispose() {
      document.removeEventListener("pointerdown", outside, true);
    },
  };
}

/** A control with its text label; the text hides in the narrow row (the control keeps it as its name). */
export function labeled(text: string, control: HTMLElement): HTMLLabelElement {
  const label = h("label");
  label.append(h("span", "aw-label-text", text), control);
  control.title ||= text;
  control.setAttribute("aria-label", text);
  return label;
}

/** Call `redraw` at most once per animation frame while `box` scrolls: canvas views repaint their pinned
 * labels at the scroll offset, as CSS `position: sticky` would place them. */
/** A keyboard-driven canvas: its keys go to `key`, and focus and blur redraw it (the focus ring is drawn). */
export function keyboardCanvas(c: HTMLCanvasElement, key: (e: KeyboardEvent) => void, redraw: () => void): void {
  c.addEventListener("keydown", key);
  c.addEventListener("focus", redraw);
  c.addEventListener("blur", redraw);
}

export function redrawOnScroll(box: HTMLElement, redraw: () => void): void {
  let queued = false;
  box.addEventListener("scroll", () => {
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => {
      queued = false;
      redraw();
    });
  }, { passive: true });
}
