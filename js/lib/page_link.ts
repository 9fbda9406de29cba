// Standalone page only (aw.to_html of an Explorer): there is no kernel, so this links the parts' in-page models
// the way widgets/linking.py links the widgets, and does what each widget's Python side does when a selection
// moves (a graph node selects its position, layer and head; a timeline row brings its step). The parts that
// answer from embedded data (HeadGrid, LayerFlow) do so through their own standalone() (head_local.ts,
// flow_local.ts), which the page wires before this.
import type { AnyModel } from "../types";
import { decodeGraph, kindOf, type GraphViewModel } from "./graph_model";

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Loose = AnyModel<any>;

const LINKED = ["selected_position", "selected_target", "selected_layer", "selected_head"] as const;
type Linked = (typeof LINKED)[number];

// What bounds each index in the views that have it (widgets/base.py SELECTION_SIZES).
const SIZE_OF: Record<Linked, string> = {
  selected_target: "target_positions", selected_position: "tokens", selected_layer: "n_layers",
  selected_head: "n_heads",
};

/** The number of values `name` may take in `model`, or null when the view has no such size (it keeps any index
 * for the views it links to, as AttrWidget.selection_in_range does). */
function sizeOf(model: Loose, name: Linked): number | null {
  const size = model.get(SIZE_OF[name]);
  if (Array.isArray(size)) return size.length;
  return typeof size === "number" ? size : null;
}

/** `value` for `model`, or -1 where it is out of the view's range (the widget's trait would refuse it). */
function inRangeFor(model: Loose, name: Linked, value: number): number {
  const n = sizeOf(model, name);
  return value < -1 || (n !== null && value >= n && !(n === 0 && value === 0)) ? -1 : value;
}

const targetsOf = (model: Loose): number[] => model.get("target_positions") || [];

/** Link the models' selections as widgets/linking.py does: a position stays a position, a target row becomes the
 * row of the same target position (a view without target rows keeps its own), a layer or head the same index.
 * The first model's selection becomes every model's. Returns the unlink. */
export function linkModels(models: Loose[]): () => void {
  let busy = false;
  const moved = (source: Loose, name: Linked) => {
    if (busy) return; // an echo of the propagation under way
    const value = Number(source.get(name));
    if (!Number.isInteger(value)) return; // a part without this trait has nothing to give
    const targets = targetsOf(source);
    const position = name === "selected_target" && value >= 0 && value < targets.length ? targets[value] : -1;
    busy = true;
    try {
      for (const model of models) {
        if (model === source) continue;
        if (name === "selected_target") {
          const mine = model.get("target_positions");
          if (!Array.isArray(mine) || !mine.length) continue; // a graph has no target rows: it keeps its own
          model.set(name, mine.indexOf(position)); // -1 where that position is not one of its targets
        } else {
          model.set(name, inRangeFor(model, name, value));
        }
      }
    } finally {
      busy = false;
    }
  };
  const handlers: [Loose, string, () => void][] = [];
  for (const model of models) {
    for (const name of LINKED) handlers.push([model, `change:${name}`, () => moved(model, name)]);
  }
  for (const [model, event, fn] of handlers) model.on(event, fn);
  if (models.length) for (const name of LINKED) moved(models[0], name);
  return () => handlers.forEach(([model, event, fn]) => model.off(event, fn));
}

/** GraphView's Python side (_on_node): a node selects its position, and a node inside a layer its layer, and an
 * attention (head) node its head. */
export function graphNodeSelects(model: AnyModel<GraphViewModel>): void {
  model.on("change:selected_node", () => {
    const g = decodeGraph(model);
    const i = g.index.get(model.get("selected_node") || "");
    const nLayers = model.get("n_layers") || 0;
    const layer = i === undefined ? -1 : g.layer[i];
    const inside = i !== undefined && layer >= 0 && layer < nLayers;
    const loose = model as Loose;
    loose.set("selected_position", i === undefined ? -1 : inRangeFor(loose, "selected_position", g.position[i]));
    loose.set("selected_layer", inside ? layer : -1);
    loose.set("selected_head", inside && kindOf(g, i as number) === "attention" ? g.feature[i as number] : -1);
  });
}

/** DiffusionTimeline's Python side (_target_moved): a row's attribution is over the sequence at its step, so a
 * row selected from another view brings its step. */
export function timelineRowBringsStep(model: Loose): void {
  model.on("change:selected_target", () => {
    const row = Number(model.get("selected_target"));
    const steps: number[] = model.get("row_step") || [];
    if (row >= 0 && row < steps.length && steps[row] !== model.get("selected_step")) {
      model.set("selected_step", steps[row]);
    }
  });
}
