"""Integrated gradients that refine: a first answer from a few steps, then better ones until the tolerance or the
step budget (core/integrate.py adaptive_integral's first_steps and on_estimate; docs/methods/token.md)."""

import numpy as np
import pytest

from attrwidgets.core.token.session import AttributionSession
from attrwidgets.errors import AttrWidgetsError
from attrwidgets.testing import tiny_handle

PROMPT = "The capital of France is"
OPTIONS = {"n_steps": 64, "first_steps": 4, "tol": 1e-7, "baseline": "zero"}  # refines to the budget


@pytest.fixture(scope="module")
def session():
    return AttributionSession(tiny_handle("llama"), PROMPT, max_new_tokens=2)


def test_each_intermediate_answer_reports_its_own_completeness_error(session):
    seen = []
    final = session.compute("integrated_gradients", rows=[1], progress=False,
                            on_partial=lambda *answer: seen.append(answer), **OPTIONS)
    assert len(seen) >= 2
    gap = final.options["f_input"][0] - final.options["f_baseline"][0]
    for row, scores, error, evaluations in seen:
        assert row == 1 and scores.shape == (len(session.tokens),)
        assert np.all(scores[session.target_positions[1]:] == 0)  # causal, as the final answer
        # the error shown with an answer is that answer's: |sum - (f(x) - f(x'))| / |f(x) - f(x')|
        assert error == pytest.approx(abs(float(scores.sum(dtype=np.float64)) - gap) / abs(gap), rel=1e-3, abs=1e-5)
    evaluations = [answer[3] for answer in seen]
    assert evaluations[0] == OPTIONS["first_steps"] and evaluations == sorted(set(evaluations))
    assert evaluations[-1] < final.options["evaluations"] <= OPTIONS["n_steps"]


def test_watching_the_refinement_changes_no_number(session):
    quiet = session.compute("integrated_gradients", rows=[0], progress=False, **OPTIONS)
    watched = session.compute("integrated_gradients", rows=[0], progress=False, on_partial=lambda *a: None,
                              **OPTIONS)
    np.testing.assert_array_equal(quiet.scores, watched.scores)


def test_a_converged_first_pass_reports_nothing_intermediate(session):
    seen = []
    session.compute("integrated_gradients", rows=[0], progress=False, on_partial=lambda *a: seen.append(a),
                    **{**OPTIONS, "tol": 10.0})
    assert seen == []


@pytest.mark.parametrize("bad", (0, -3, 2.5, True))
def test_bad_first_steps(session, bad):
    with pytest.raises(AttrWidgetsError, match="first_steps must be a positive integer"):
        session.compute("integrated_gradients", rows=[0], progress=False, **{**OPTIONS, "first_steps": bad})
