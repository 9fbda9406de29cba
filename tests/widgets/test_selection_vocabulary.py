"""One selection vocabulary (docs/architecture.md, "Selection"): every view has AttrWidget's selection traits with
the same type and meaning, and the front-end's model interfaces mirror the Python traits."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import traitlets

from attrwidgets.widgets.base import AttrWidget
from attrwidgets.widgets.diffusion_timeline import DiffusionTimeline
from attrwidgets.widgets.graph_view import GraphView
from attrwidgets.widgets.head_grid import HeadGrid
from attrwidgets.widgets.html_page import WIDGET_TRAITS
from attrwidgets.widgets.layer_flow import LayerFlow
from attrwidgets.widgets.token_matrix import TokenMatrix

JS = Path(__file__).resolve().parents[2] / "js"
VOCABULARY = ("selected_position", "selected_target", "selected_layer", "selected_head", "selected_node", "pinned")
# view -> (file, interface) that mirrors its traits (house style 2)
MIRRORS = {TokenMatrix: ("types.ts", "Model"), HeadGrid: ("types.ts", "HeadGridModel"),
           LayerFlow: ("lib/flow_model.ts", "LayerFlowModel"), GraphView: ("lib/graph_model.ts", "GraphViewModel"),
           DiffusionTimeline: ("lib/timeline_model.ts", "TimelineModel")}


def _fields(source: str, interface: str) -> set[str]:
    body = re.search(rf"export interface {interface}(?: extends ViewBase)? \{{(.*?)\n\}}", source, re.DOTALL)
    return set(re.findall(r"^\s+(\w+)\??:", body.group(1), re.MULTILINE))


@pytest.mark.parametrize("view", list(MIRRORS), ids=lambda v: v.__name__)
def test_every_view_has_the_vocabulary_with_one_type_and_meaning(view):
    shared = AttrWidget.class_traits()
    for name in VOCABULARY:
        trait = view.class_traits()[name]
        assert type(trait) is type(shared[name]) and trait.help == shared[name].help, (view.__name__, name)
        assert trait.metadata.get("sync"), (view.__name__, name)
        assert trait.help, name


@pytest.mark.parametrize("view", list(MIRRORS), ids=lambda v: v.__name__)
def test_the_front_end_mirrors_the_traits(view):
    file, interface = MIRRORS[view]
    source = (JS / file).read_text()
    assert f"export interface {interface} extends ViewBase {{" in source
    own = set(view.public_traits()) - set(AttrWidget.public_traits())  # ipywidgets' own traits are in both
    assert _fields(source, interface) - {"static_page"} == own  # static_page: set by the standalone page only
    base = (JS / "types.ts").read_text()
    assert _fields(base, "ViewBase") == set(AttrWidget.public_traits()) - set(WIDGET_TRAITS)


def test_old_names_still_work_and_warn():
    from tests.widgets.test_layer_flow import make_flow_result

    with pytest.warns(DeprecationWarning, match="selected_source= is renamed selected_position="):
        flow = LayerFlow(make_flow_result(), selected_source=2)
    assert flow.selected_position == 2
    with pytest.warns(DeprecationWarning, match="renamed selected_position"):
        assert flow.selected_source == 2
    flow.close()
    from attrwidgets.testing import tiny_handle

    with pytest.warns(DeprecationWarning, match="text= is renamed prompt="):  # every view's prompt is prompt=
        flow = LayerFlow(model=tiny_handle("llama"), text="the cat sat", n_steps=2, layers=[0]).wait(60)
    assert [t["clean"] for t in flow.tokens][-1] == " sat" and flow.error == ""
    flow.close()


def test_selected_head_means_none_and_the_sum_is_a_mode_of_its_own():
    from tests.widgets.test_layer_flow import make_flow_result

    flow = LayerFlow(make_flow_result(), route="att")
    assert (flow.selected_head, flow.sum_heads) == (-1, True)  # no head chosen: the att route shows their sum
    summed = flow.values.copy()
    flow.selected_head = 1
    assert flow.sum_heads is False and not (flow.values == summed).all()
    flow.sum_heads = True  # the sum again, with head 1 still the selection other views see
    assert flow.selected_head == 1 and (flow.values == summed).all()
    flow.close()


def test_one_check_bounds_every_index_in_every_view():
    from tests.widgets.head_support import make_head_result
    from tests.widgets.support import make_result

    grid, matrix = HeadGrid(make_head_result(position=4)), TokenMatrix(make_result())
    with pytest.raises(traitlets.TraitError, match=r"selected_layer must be -1 \(none\) or in \[0, "):
        grid.selected_layer = grid.n_layers
    with pytest.raises(traitlets.TraitError, match=r"selected_position must be -1 \(none\) or in \[0, 8\)"):
        matrix.selected_position = 8
    matrix.selected_layer = 30  # a TokenMatrix has no layers: it keeps the index for the views it links to
    with pytest.raises(traitlets.TraitError, match=r"selected_layer must be -1 \(none\), got -2"):
        matrix.selected_layer = -2
    grid.close()
    matrix.close()
