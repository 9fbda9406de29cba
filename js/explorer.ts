// Explorer: every view of one prompt in one panel (attrwidgets/widgets/explorer.py). Each part is drawn by its
// own view's render from its own widget model, which anywidget's host gives us (`host.getModel`, anywidget >=
// 0.11), so a part behaves exactly as the view in its own cell; the kernel links their selections
// (widgets/linking.py). Wide: a 2x2 grid; narrow (or layout_mode "tabs"): a tab strip with one view at a time,
// so the panel itself never scrolls sideways. Hovering brushes: every part gets one front-end store
// (lib/brush.ts) and marks the position under the pointer in any of them, with nothing sent to the kernel.
// standalone() is the exported page's stand-in for the kernel and the host (export_explorer.py).
import type { AnyModel, RenderProps, ViewBase } from "./types";
import diffusionTimeline from "./diffusion_timeline";
import graphView from "./graph_view";
import headGrid from "./head_grid";
import layerFlow from "./layer_flow";
import { createBrush } from "./lib/brush";
import { h } from "./lib/dom";
import { standalone as flowStandalone, type StandaloneData as FlowData } from "./lib/flow_local";
import { standalone as headStandalone, type StandaloneData as HeadData } from "./lib/head_local";
import { graphNodeSelects, linkModels, timelineRowBringsStep } from "./lib/page_link";
import { watchWidth } from "./lib/layout";
import { appendStyle, injectStyle } from "./lib/theme";
import tokenMatrix from "./token_matrix";

interface ExplorerModel extends ViewBase {
  parts: Record<string, string>; // view name -> "anywidget:<model id>", in the order shown
  target_positions: number[];
  layout_mode: "auto" | "grid" | "tabs";
}

interface Host {
  getModel(ref: string): Promise<AnyModel<unknown>>;
}

type Render = (props: RenderProps<never>) => (() => void) | void;
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Loose = AnyModel<any>;
const RENDER: Record<string, Render> = {
  tokens: tokenMatrix.render as Render, heads: headGrid.render as Render, graph: graphView.render as Render,
  flow: layerFlow.render as Render, timeline: diffusionTimeline.render as Render,
};
const TITLES: Record<string, string> = {
  tokens: "tokens", heads: "heads", graph: "graph", flow: "layer flow", timeline: "timeline",
};
const GRID_FROM_PX = 900; // two views side by side need about 450 px each

const CSS = `
.aw-explorer { display: flex; flex-direction: column; gap: 6px; min-width: 0; }
.aw-explorer-tabs { display: flex; gap: 2px; flex-wrap: wrap; border-bottom: 1px solid var(--aw-border); }
.aw-explorer-tabs button { font: inherit; color: var(--aw-fg); background: var(--aw-bg-alt); cursor: pointer;
  border: 1px solid var(--aw-border); border-bottom: none; border-radius: 3px 3px 0 0; padding: 1px 10px; }
.aw-explorer-tabs button[aria-selected=true] { background: var(--aw-bg); font-weight: bold; }
.aw-explorer-parts { display: grid; grid-template-columns: minmax(0, 1fr); gap: 8px; min-width: 0; }
.aw-explorer.aw-grid .aw-explorer-parts { grid-template-columns: repeat(2, minmax(0, 1fr)); }
.aw-explorer.aw-grid .aw-explorer-tabs { display: none; }
.aw-explorer:not(.aw-grid) .aw-explorer-part:not(.aw-current) { display: none; }
.aw-explorer-part { min-width: 0; overflow: hidden; border: 1px solid var(--aw-border); border-radius: 3px;
  padding: 4px; }
.aw-explorer-title { font-weight: bold; margin-bottom: 2px; }
.aw-explorer:not(.aw-grid) .aw-explorer-title { display: none; }
`;

async function render({ model, el, host }: RenderProps<ExplorerModel> & { host?: Host }) {
  const root = h("div", "aw-root aw-explorer");
  injectStyle(root);
  appendStyle(root, CSS);
  const tabs = h("div", "aw-explorer-tabs");
  tabs.setAttribute("role", "tablist");
  const grid = h("div", "aw-explorer-parts");
  root.append(tabs, grid);
  el.appendChild(root);
  const teardowns: (() => void)[] = [];
  // A pick marks a click's position in the other parts until the kernel's answer moves them: the Explorer is
  // linked last (widgets/explorer.py), so its own selection changing means every part has its answer.
  const brush = createBrush();
  const answered = () => brush.pick(-1);
  for (const name of ["selected_target", "selected_position"]) model.on(`change:${name}`, answered);
  teardowns.push(() => {
    for (const name of ["selected_target", "selected_position"]) model.off(`change:${name}`, answered);
  });
  const cells = new Map<string, HTMLDivElement>();
  const buttons = new Map<string, HTMLButtonElement>();

  function show(name: string): void {
    root.dataset.current = name;
    for (const [n, cell] of cells) cell.classList.toggle("aw-current", n === name);
    for (const [n, b] of buttons) b.setAttribute("aria-selected", String(n === name));
  }

  function layout(width: number): void {
    const mode = model.get("layout_mode");
    const wide = mode === "grid" || (mode !== "tabs" && width >= GRID_FROM_PX);
    root.classList.toggle("aw-grid", wide);
    root.dataset.layout = wide ? "grid" : "tabs";
  }

  for (const [name, ref] of Object.entries(model.get("parts") || {})) {
    const cell = h("div", "aw-explorer-part");
    cell.dataset.view = name;
    cell.append(h("div", "aw-explorer-title", TITLES[name] ?? name));
    const body = h("div");
    cell.append(body);
    grid.append(cell);
    cells.set(name, cell);
    const button = h("button", "", TITLES[name] ?? name);
    Object.assign(button, { type: "button" });
    button.setAttribute("role", "tab");
    button.addEventListener("click", () => show(name));
    tabs.append(button);
    buttons.set(name, button);
    if (!host || !RENDER[name]) {
      body.textContent = host ? `unknown view ${name}` : "this host cannot show composed widgets (anywidget >= 0.11)";
      continue;
    }
    const child = await host.getModel(ref);
    const teardown = RENDER[name]({ model: child as never, el: body, brush });
    if (teardown) teardowns.push(teardown);
  }
  show(cells.keys().next().value ?? "");
  const unwatch = watchWidth(root, () => layout(root.clientWidth || 0));
  layout(root.clientWidth || 0);
  model.on("change:layout_mode", () => layout(root.clientWidth || 0));
  root.dataset.ready = "true";
  return () => {
    unwatch();
    for (const teardown of teardowns) teardown();
  };
}

/** The exported page (no kernel): each part's standalone answers from its embedded data, the parts and the
 * Explorer are linked as widgets/linking.py links them, and the returned host gives each part's in-page model. */
export function standalone(explorer: AnyModel<ExplorerModel>, parts: Record<string, Loose>,
  extras: Record<string, unknown>): Host {
  if (parts.heads && extras.heads) headStandalone(parts.heads, extras.heads as HeadData);
  if (parts.flow && extras.flow) flowStandalone(parts.flow, extras.flow as FlowData);
  if (parts.graph) graphNodeSelects(parts.graph);
  if (parts.timeline) timelineRowBringsStep(parts.timeline);
  linkModels([...Object.values(parts), explorer as Loose]);
  const refs = explorer.get("parts") || {};
  return {
    async getModel(ref: string) {
      const name = Object.keys(refs).find((n) => refs[n] === ref);
      if (name === undefined || !parts[name]) throw new Error(`no part ${ref} in this page`);
      return parts[name];
    },
  };
}

export default { render };
