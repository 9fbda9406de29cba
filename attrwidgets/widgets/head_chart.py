"""HeadGrid.chart(): a bqplot bar chart that follows the grid's selection.

No head selected: the per-layer sum of head contributions to the selected target (where in depth the heads
push the logit). A head selected: that head's contribution to every target row computed so far (does it
matter for one token or for all of them?). Bars are red for positive and blue for negative, as in the grid.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from attrwidgets.widgets.head_stats import per_layer_sum

CHART_TRAITS = ["contributions", "selected_target", "selected_layer", "selected_head", "mode"]


def chart_data(grid: Any) -> dict:
    """What the chart shows now: x labels, y values, title and x-axis label (plain data, tested directly)."""
    layer, head, row = grid.selected_layer, grid.selected_head, grid.selected_target
    labels = grid.target_labels
    if grid.mode == "attention":
        return {"x": [], "y": [], "xlabel": "", "title": "contributions need mode='depass' (DePass)"}
    if 0 <= layer < grid.n_layers and 0 <= head < grid.n_heads:
        rows = sorted(grid.computed_rows().items())
        return {
            "x": [f"#{r} {labels[r]!r}" for r, _ in rows],
            "y": [float(res.contributions[layer, head]) for _, res in rows],
            "xlabel": "target (rows computed so far)",
            "title": f"layer {layer} head {head}: contribution to each target",
        }
    sums = per_layer_sum(grid.contributions)
    target = f"#{row} {labels[row]!r}" if 0 <= row < len(labels) else "no target"
    if sums is None:
        return {"x": [], "y": [], "xlabel": "layer", "title": f"target {target}: not computed yet"}
    return {
        "x": [str(i) for i in range(len(sums))],
        "y": [float(v) for v in sums],
        "xlabel": "layer",
        "title": f"sum of head contributions per layer, target {target}",
    }


def head_chart(grid: Any):
    import bqplot as bq
    from ipywidgets import Layout

    x_scale, y_scale = bq.OrdinalScale(), bq.LinearScale()
    colour = bq.ColorScale(colors=["#1f77b4", "#dddddd", "#d62728"], mid=0.0)
    bars = bq.Bars(x=[], y=[], color=[], scales={"x": x_scale, "y": y_scale, "color": colour},
                   tooltip=bq.Tooltip(fields=["x", "y"], formats=["", ".4g"]))
    x_axis = bq.Axis(scale=x_scale, label="layer")
    y_axis = bq.Axis(scale=y_scale, orientation="vertical", label="contribution (logit)", tick_format=".3g")
    fig = bq.Figure(marks=[bars], axes=[x_axis, y_axis], layout=Layout(width="100%", height="280px"),
                    fig_margin={"top": 40, "bottom": 50, "left": 60, "right": 20}, title_style={"font-size": "13px"})

    def update(_: Any = None) -> None:
        data = chart_data(grid)
        y = np.asarray(data["y"], dtype=np.float64)
        with bars.hold_sync():
            bars.x, bars.y, bars.color = data["x"], y, y
        fig.title = data["title"]
        x_axis.label = data["xlabel"]

    grid.observe(update, names=CHART_TRAITS)
    update()
    fig.update_chart = update  # tests and callers can force a redraw
    return fig
