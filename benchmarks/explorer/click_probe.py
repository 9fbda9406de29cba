"""What click_to_paint.py puts in the page and in the kernel, and how it reads the page's record.

The page side (PROBE_JS) is the clock: a capturing listener takes `performance.now()` when a click (or the key that
runs a cell) reaches the window, before any view's own listener; a MutationObserver on the views' data-* attributes
(each view writes them at the end of its draw: js/lib/view_base.ts, js/lib/status.ts, js/lib/brush.ts and each
view's draw) snapshots the attributes of the part whose root changed, and the first animation frame after that
stamps the snapshot's paint time. The kernel is asked only what the right answer is (KERNEL_HELPERS: its checksums,
attrwidgets.widgets.checksum) and whether it is the final one (no view busy, no IG row refining: docs/linking.md).
"""

from __future__ import annotations

PARTS = {"tokens": ".aw-token-matrix", "heads": ".aw-head-grid", "graph": ".aw-graph-view", "flow": ".aw-layer-flow"}

# What each part shows as its answer, by the attribute its draw writes. `sel-refining` is derived: whether the
# matrix's selected row is still an intermediate IG answer (data-refining lists the refining rows).
ANSWER = {
    "tokens": ("selected-target", "head-split", "checksum", "sel-refining"),
    "heads": ("selected-target", "selected-layer", "selected-head", "checksum"),
    "graph": ("prefix", "checksum", "selected-node", "lit"),
    "flow": ("selected-target", "selected-source", "selected-layer", "selected-head", "checksum"),
}
WATCHED = sorted({a for keys in ANSWER.values() for a in keys if a != "sel-refining"}
                 | {"refining", "render-count", "busy", "picked", "ready"})

PROBE_JS = """(args) => {
  const [parts, watched] = args;
  if (window.awProbe) return;
  const probe = window.awProbe = { t0: null, armed: null, ignore: new WeakSet(), log: [], last: new Map(),
    pending: [] };
  const stamp = (kind) => { if (probe.armed === kind) { probe.t0 = performance.now(); probe.armed = null; } };
  window.addEventListener("click", () => stamp("click"), true);
  window.addEventListener("keydown", (e) => { if (e.key === "Enter" && (e.shiftKey || e.ctrlKey)) stamp("run"); },
    true);
  const viewOf = (el) => Object.keys(parts).find((name) => el.matches(parts[name])) || null;
  const roots = () => Object.entries(parts).flatMap(([name, sel]) =>
    Array.from(document.querySelectorAll(`.aw-explorer ${sel}`)).map((el) => [name, el]));
  const snapshot = (el) => {
    const o = {};
    for (const a of watched) { const v = el.getAttribute(`data-${a}`); if (v !== null) o[a] = v; }
    return o;
  };
  const record = (view, el, now) => {
    const attrs = snapshot(el);
    const key = JSON.stringify(attrs);
    if (probe.last.get(el) === key) return;
    probe.last.set(el, key);
    const entry = { view, t: now, paint: null, attrs };
    probe.log.push(entry);
    probe.pending.push(entry);
    if (probe.pending.length === 1) {
      requestAnimationFrame(() => {
        const painted = performance.now();
        for (const e of probe.pending) e.paint = painted;
        probe.pending = [];
      });
    }
  };
  new MutationObserver((records) => {
    const now = performance.now();
    const seen = new Set();
    for (const r of records) {
      const el = r.target;
      if (seen.has(el) || !(el instanceof Element) || !el.isConnected || probe.ignore.has(el)) continue;
      seen.add(el);
      if (el.matches(".aw-explorer")) {
        if (el.dataset.ready === "true" && !probe.log.some((e) => e.view === "explorer")) {
          record("explorer", el, now);
        }
        continue;
      }
      const view = viewOf(el);
      if (view && el.closest(".aw-explorer")) record(view, el, now);
    }
  }).observe(document.body, { subtree: true, attributes: true, attributeFilter: watched.map((a) => `data-${a}`) });
  // arm("run"): the next Ctrl/Shift+Enter starts the clock, and the parts drawn now are the old cell's;
  // arm("click"): the next click does, and each part's state now is the baseline ("before").
  probe.arm = (kind) => {
    probe.log = []; probe.pending = []; probe.t0 = null; probe.armed = kind; probe.last = new Map();
    if (kind === "run") for (const el of document.querySelectorAll(".aw-explorer")) probe.ignore.add(el);
    for (const [view, el] of roots()) {
      if (kind === "run") probe.ignore.add(el);
      else probe.log.push({ view, t: performance.now(), paint: performance.now(), attrs: snapshot(el), before: true });
    }
  };
  probe.read = () => ({ t0: probe.t0, log: probe.log });
}"""

# In the notebook's kernel (run through a second client, silently: tests/ui/jupyter.py Notebook.execute).
KERNEL_HELPERS = '''
def _aw_bench_settled(old_id=None):
    """Is every part's answer final? (no view busy, the matrix's row not refining, the grid computed)"""
    import numpy as np
    e = globals().get("ex")
    if e is None or id(e) == old_id:
        return False
    v = e.views
    m = v["tokens"]
    if any(x.busy for x in v.values()) or m.refining:
        return False
    if len(m.head_split_of) == 2 and m.selected_target >= 0:  # the head's split of the selected row, computed
        if m.head_split is None or not np.isfinite(m.head_split[m.selected_target]).all():
            return False
    return bool(np.isfinite(v["heads"].contributions).all())

def _aw_bench_state():
    """What the kernel's parts hold now, for a message when an action never settles."""
    import numpy as np
    v = ex.views
    return {n: {"target": x.selected_target, "position": x.selected_position, "layer": x.selected_layer,
                "head": x.selected_head, "busy": x.busy, "error": x.error} for n, x in v.items()} | {
        "refining": v["tokens"].refining, "head_split_of": v["tokens"].head_split_of,
        "grid_finite": bool(np.isfinite(v["heads"].contributions).all())}

def _aw_bench_expected():
    """The checksums the parts must show for the kernel's state, as their data-checksum / data-prefix."""
    from attrwidgets.widgets import checksum
    v = ex.views
    m, grid, graph, flow = v["tokens"], v["heads"], v["graph"], v["flow"]
    sel = m.selected_target
    split = len(m.head_split_of) == 2 and m.head_split is not None  # as js/token_matrix.ts frame() decides
    rows = m.head_split if split else m.scores
    return {
        "tokens": {"checksum": checksum(rows[sel]) if sel >= 0 and rows is not None else "",
                   "selected-target": str(sel), "head-split": ",".join(map(str, m.head_split_of)) if split else ""},
        "heads": {"checksum": checksum(grid.contributions)},
        "graph": {"checksum": checksum(graph.edges), "prefix": str(len(graph.tokens))},
        "flow": {"checksum": checksum(flow.values) if flow.values is not None else ""},
    }

def _aw_bench_nodes(k=2):
    """k nodes of the shown graph to click, each at another prompt position: nodes inside a layer first (they also
    select their layer), then token nodes (a tiny random model's pruned graph may keep no other); never a logit."""
    graph = ex.views["graph"]
    cols, data, kinds = list(graph.node_columns), graph.node_data, list(graph.kinds)
    def node(i):
        return {"id": graph.node_ids[i], "kind": kinds[int(data[cols.index("kind"), i])],
                "layer": int(data[cols.index("layer"), i]), "position": int(data[cols.index("position"), i])}
    nodes = [node(i) for i in range(len(graph.node_ids))]
    nodes = [n for n in nodes if n["kind"] != "logit" and n["position"] >= 0]
    nodes.sort(key=lambda n: (not 0 <= n["layer"] < graph.n_layers, -n["position"]))
    picked, positions = [], set()
    for n in nodes:
        if n["position"] not in positions and len(picked) < k:
            picked.append(n)
            positions.add(n["position"])
    return picked
'''


def answer_of(view: str, attrs: dict) -> tuple:
    """The part's answer in a snapshot (ANSWER's attributes), comparable between snapshots."""
    derived = dict(attrs)
    refining = [r for r in attrs.get("refining", "").split(",") if r]
    derived["sel-refining"] = str(attrs.get("selected-target", "-1") in refining)
    return tuple(derived.get(a, "") for a in ANSWER[view])


def entries(log: list[dict], view: str) -> list[dict]:
    return [e for e in log if e["view"] == view]


def final_state(log: list[dict], view: str) -> dict | None:
    mine = entries(log, view)
    return mine[-1]["attrs"] if mine else None


def answer_ms(log: list[dict], t0: float, view: str) -> float | None:
    """ms from t0 to the first frame from which the part showed its final answer without a change: None when the
    answer is the one it showed before the action (nothing to paint) or the part never drew."""
    mine = entries(log, view)
    if not mine:
        return None
    final = answer_of(view, mine[-1]["attrs"])
    first = len(mine) - 1
    while first > 0 and answer_of(view, mine[first - 1]["attrs"]) == final:
        first -= 1
    if mine[first].get("before"):
        return None
    return mine[first]["paint"] - t0


def first_paint_ms(log: list[dict], t0: float, view: str) -> float | None:
    """ms from t0 to the frame after the part's first draw (data-render-count: status.redraw)."""
    drawn = [e for e in entries(log, view) if "render-count" in e["attrs"] and not e.get("before")]
    return drawn[0]["paint"] - t0 if drawn else None


def picked_ms(log: list[dict], t0: float, view: str, position: int) -> float | None:
    """ms from t0 to the frame in which the part first marked the click's position as picked (the front-end
    store's mark before the kernel answers: js/lib/brush.ts)."""
    hits = [e for e in entries(log, view) if not e.get("before") and e["attrs"].get("picked") == str(position)]
    return hits[0]["paint"] - t0 if hits else None
