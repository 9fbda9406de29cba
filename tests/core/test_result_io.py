"""Persistence and export of Attribution: attrwidgets JSON, TokenLens JSON, long table and CSV."""

from __future__ import annotations

import csv
import json
import pickle

import numpy as np
import pytest

from attrwidgets.core.token.result import Attribution
from attrwidgets.core.token.result_io import (
    DATAFRAME_COLUMNS,
    SCHEMA,
    attribution_from_dict,
    attribution_to_dict,
    from_tokenlens,
    load_result,
    save_result,
    save_tokenlens,
    to_csv,
    to_dataframe,
    to_tokenlens,
)
from attrwidgets.core.tokens import Token
from attrwidgets.errors import AttrWidgetsError

NAN = np.nan
WEIRD = 'a,"b"\nc'  # a token text holding a comma, a quote and a newline


def make_attribution() -> Attribution:
    """7 positions: 4 prompt, 3 generated targets; " the" repeats; row 1 not computed (NaN)."""
    tokens = [
        Token(1, "<s>", "<s>", "prompt", True),
        Token(5, "Ġthe", " the", "prompt"),
        Token(9, WEIRD, WEIRD, "prompt"),
        Token(5, "Ġthe", " the", "prompt"),
        Token(7, "Ġcafé", " café", "generated"),
        Token(5, "Ġthe", " the", "generated"),
        Token(2, "</s>", "</s>", "generated", True),
    ]
    scores = np.array(
        [
            [0.5, 1.0, -2.0, 0.0, 0, 0, 0],
            [NAN] * 7,
            [0.25, 0.0, 3.0, 1.5, 0.75, 2.0, 0],
        ],
        dtype=np.float32,
    )
    rng = np.random.default_rng(0)
    return Attribution(
        tokens=tokens,
        target_positions=[4, 5, 6],
        scores=scores,
        method="integrated_gradients",
        options={"n_steps": 32, "baseline": "zeros", "nested": {"a": [1, 2.5, None]}},
        model_id="tiny/llama",
        timestamp="2025-01-02T03:04:05+00:00",
        prompt='the a,"b"\nc the',
        target_prob=np.array([0.5, NAN, 0.25]),
        target_entropy=np.array([1.0, NAN, 2.0]),
        completeness_error=np.array([0.01, NAN, 0.02]),
        per_dim=rng.normal(size=(3, 7, 4)).astype(np.float32),
        attention=rng.random(size=(3, 2, 2, 7)).astype(np.float32),
    )


def assert_same(a: Attribution, b: Attribution) -> None:
    assert b.tokens == a.tokens
    assert b.target_positions == a.target_positions
    for name in ("method", "options", "model_id", "timestamp", "prompt"):
        assert getattr(b, name) == getattr(a, name), name
    for name in ("scores", "target_prob", "target_entropy", "completeness_error", "per_dim", "attention"):
        x, y = getattr(a, name), getattr(b, name)
        if x is None:
            assert y is None, name
        else:
            assert y.dtype == np.float32, name
            np.testing.assert_array_equal(y, x, err_msg=name)  # NaN == NaN here


def saved(tmp_path, d: dict, name: str = "r.json"):
    path = tmp_path / name
    path.write_text(json.dumps(d), encoding="utf-8")
    return path


# -- attrwidgets JSON -------------------------------------------------------------------------------
def test_save_load_round_trip_is_exact(tmp_path):
    a = make_attribution()
    path = tmp_path / "result.json"
    a.save(path)
    b = load_result(path)
    assert_same(a, b)
    assert not b.computed_rows[1] and b.computed_rows[[0, 2]].all()


def test_round_trip_without_optional_arrays(tmp_path):
    a = make_attribution()
    a.target_prob = a.target_entropy = a.completeness_error = a.per_dim = a.attention = None
    save_result(a, tmp_path / "r.json")
    assert_same(a, load_result(tmp_path / "r.json"))


def test_dict_round_trip_and_nan_written_as_null(tmp_path):
    a = make_attribution()
    d = attribution_to_dict(a)
    assert d["schema"] == SCHEMA
    assert d["scores"][1] == [None] * 7
    assert d["tokens"][2] == {"id": 9, "text": WEIRD, "clean": WEIRD, "segment": "prompt", "special": False}
    assert_same(a, attribution_from_dict(json.loads(json.dumps(d))))
    a.save(tmp_path / "r.json")
    text = (tmp_path / "r.json").read_text(encoding="utf-8")
    assert "NaN" not in text and "café" in text  # strict JSON, UTF-8 not escaped


def test_inf_is_refused_at_save_and_nothing_is_written(tmp_path):
    a = make_attribution()
    a.scores[2, 3] = np.inf
    with pytest.raises(AttrWidgetsError, match=r"inf at index \(2, 3\)"):
        a.save(tmp_path / "r.json")
    assert list(tmp_path.iterdir()) == []


def test_inf_literal_in_file_is_refused(tmp_path):
    path = tmp_path / "r.json"
    make_attribution().save(path)
    path.write_text(path.read_text(encoding="utf-8").replace("0.75", "Infinity"), encoding="utf-8")
    with pytest.raises(AttrWidgetsError, match="Infinity"):
        load_result(path)
    # 1e999 is plain JSON that overflows to inf: caught by the array check, not by the parser
    path.write_text(path.read_text(encoding="utf-8").replace("Infinity", "1e999"), encoding="utf-8")
    with pytest.raises(AttrWidgetsError, match="'scores' holds an infinite value"):
        load_result(path)


def test_options_that_json_cannot_carry_fail_at_save(tmp_path):
    a = make_attribution()
    a.options = {"n_steps": np.int64(32), "rtol": np.float32(0.5)}
    assert attribution_to_dict(a)["options"] == {"n_steps": 32, "rtol": 0.5}  # numpy scalars unwrapped
    a.options = {"baseline": object()}
    with pytest.raises(AttrWidgetsError, match="options are not JSON-able"):
        a.save(tmp_path / "r.json")


def test_truncated_file_names_file_problem_and_fix(tmp_path):
    path = tmp_path / "cut.json"
    make_attribution().save(path)
    text = path.read_text(encoding="utf-8")
    path.write_text(text[: len(text) // 2], encoding="utf-8")
    with pytest.raises(AttrWidgetsError) as exc:
        load_result(path)
    msg = str(exc.value)
    assert "cut.json" in msg and "truncated" in msg and "line 1 column" in msg and "Attribution.save()" in msg


def test_empty_file(tmp_path):
    path = tmp_path / "empty.json"
    path.write_bytes(b"")
    with pytest.raises(AttrWidgetsError, match="empty"):
        load_result(path)


def test_pickle_is_never_loaded(tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("pickle must never be used")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, boom)
    path = tmp_path / "r.bin"
    for protocol in (2, 4, 5):
        path.write_bytes(pickle.dumps(attribution_to_dict(make_attribution()), protocol=protocol))
        with pytest.raises(AttrWidgetsError, match="never unpickles") as exc:
            load_result(path)
        assert "r.bin" in str(exc.value) and "Attribution.save()" in str(exc.value)
    make_attribution().save(tmp_path / "ok.json")  # the JSON path does not touch pickle either
    load_result(tmp_path / "ok.json")


@pytest.mark.parametrize(
    ("schema", "expect"),
    [("attrwidgets.graph/1", "schema is 'attrwidgets.graph/1'"), ("attrwidgets.attribution/2", "upgrade")],
)
def test_wrong_schema(tmp_path, schema, expect):
    d = attribution_to_dict(make_attribution())
    d["schema"] = schema
    with pytest.raises(AttrWidgetsError, match=expect):
        load_result(saved(tmp_path, d))


def test_missing_schema_and_missing_key(tmp_path):
    d = attribution_to_dict(make_attribution())
    del d["schema"]
    with pytest.raises(AttrWidgetsError, match="key 'schema' missing"):
        load_result(saved(tmp_path, d))
    d = attribution_to_dict(make_attribution())
    del d["scores"]
    with pytest.raises(AttrWidgetsError, match="key 'scores' missing") as exc:
        load_result(saved(tmp_path, d, "noscores.json"))
    assert "noscores.json" in str(exc.value)


def test_wrong_shape(tmp_path):
    d = attribution_to_dict(make_attribution())
    d["scores"] = [row + [0.0] for row in d["scores"]]
    with pytest.raises(AttrWidgetsError, match=r"'scores' has shape \(3, 8\), expected \(3, 7\)"):
        load_result(saved(tmp_path, d))
    d = attribution_to_dict(make_attribution())
    d["scores"][0] = d["scores"][0][:-1]  # ragged
    with pytest.raises(AttrWidgetsError, match="ragged"):
        load_result(saved(tmp_path, d))
    d = attribution_to_dict(make_attribution())
    d["per_dim"] = d["per_dim"][:2]
    with pytest.raises(AttrWidgetsError, match="'per_dim' has shape"):
        load_result(saved(tmp_path, d))


@pytest.mark.parametrize(
    ("edit", "expect"),
    [
        (lambda d: d["scores"][0].__setitem__(0, "0.5"), "'scores' holds '0.5'"),
        (lambda d: d["tokens"][0].__setitem__("id", "1"), r"tokens\[0\].id must be int"),
        (lambda d: d["tokens"][1].__setitem__("segment", "user_msg"), "segment is 'user_msg'"),
        (lambda d: d.__setitem__("target_positions", [4.0, 5, 6]), "list of integers"),
        (lambda d: d.__setitem__("method", 3), "'method' must be a string"),
        (lambda d: d.__setitem__("target_prob", [0.5, 0.1]), "'target_prob' has shape"),
    ],
)
def test_wrong_types(tmp_path, edit, expect):
    d = attribution_to_dict(make_attribution())
    edit(d)
    with pytest.raises(AttrWidgetsError, match=expect):
        load_result(saved(tmp_path, d))


def test_target_positions_out_of_range(tmp_path):
    d = attribution_to_dict(make_attribution())
    d["target_positions"] = [4, 5, 7]
    with pytest.raises(AttrWidgetsError, match=r"target_positions \[7\] out of range for 7 tokens"):
        load_result(saved(tmp_path, d))
    d["target_positions"] = [-1, 5, 6]
    with pytest.raises(AttrWidgetsError, match="out of range"):
        attribution_from_dict(d)


# -- TokenLens --------------------------------------------------------------------------------------
def test_tokenlens_layout():
    a = make_attribution()
    t = to_tokenlens(a)
    assert set(t["metadata"]) >= {"timestamp", "llm_id", "prompt", "attribution_method", "generation_params"}
    assert t["metadata"]["llm_id"] == "tiny/llama" and t["metadata"]["attribution_method"] == a.method
    data = t["data"]
    assert [x["token"] for x in data["input_tokens"]] == ["<s>", "Ġthe", WEIRD, "Ġthe"]
    assert [x["clean_token"] for x in data["output_tokens"]] == [" café", " the", "</s>"]
    assert data["input_tokens"][1]["token_id"] == 5
    assert np.array(data["association_matrix"], dtype=float).shape == (3, 4)  # rows outputs
    assert data["association_matrix"][0] == [0.5, 1.0, -2.0, 0.0]
    assert data["association_matrix"][1] == [None] * 4  # not computed: null, never random numbers
    json.dumps(t, allow_nan=False)


def test_normalized_association_keeps_zeros_and_signs():
    a = make_attribution()
    a.scores[1] = [0, 0, 0, 0, 0, 0, 0]  # an all-zero computed row stays all zero (no 0/0)
    norm = to_tokenlens(a)["data"]["normalized_association"]
    assert norm[0] == [0.25, 0.5, -1.0, 0.0]  # divided by max |value| = 2: the zero stays 0
    assert norm[1] == [0.0, 0.0, 0.0, 0.0]
    assert norm[2] == [0.25 / 3, 0.0, 1.0, 0.5]
    nonneg = make_attribution()
    nonneg.scores = np.abs(np.nan_to_num(nonneg.scores))
    m = np.array(to_tokenlens(nonneg)["data"]["normalized_association"])
    assert (m >= 0).all() and (m[np.abs(nonneg.scores[:, :4]) == 0] == 0).all()
    assert m.max(axis=1)[[0, 2]].tolist() == [1.0, 1.0]
    nan_row = to_tokenlens(make_attribution())["data"]["normalized_association"][1]
    assert nan_row == [None] * 4


def test_tokenlens_round_trip(tmp_path):
    a = make_attribution()
    b = from_tokenlens(json.loads(json.dumps(to_tokenlens(a))))
    assert b.tokens == a.tokens and b.target_positions == [4, 5, 6]
    assert (b.method, b.model_id, b.timestamp, b.prompt, b.options) == (
        a.method,
        a.model_id,
        a.timestamp,
        a.prompt,
        a.options,
    )
    np.testing.assert_array_equal(b.scores[:, :4], a.scores[:, :4])
    assert (b.scores[[0, 2], 4:] == 0).all()  # output->output block: not in TokenLens, causal zeros
    assert np.isnan(b.scores[1]).all()
    save_tokenlens(a, tmp_path / "tl.json")
    c = load_result(tmp_path / "tl.json")  # auto-detected by its metadata + data keys
    assert c.tokens == b.tokens
    np.testing.assert_array_equal(c.scores, b.scores)


def test_from_upstream_tokenlens_file(tmp_path):
    upstream = {
        "metadata": {
            "timestamp": "2024-12-01T00:00:00",
            "llm_id": "gpt2",
            "prompt": "Hi there",
            "attribution_method": "saliency",
            "generation_params": {"max_new_tokens": 2},
        },
        "data": {
            "input_tokens": [{"token": "Hi", "token_id": 17250, "clean_token": "Hi"}, "Ġthere"],
            "output_tokens": [{"token": "▁friend"}, {"token": "<|im_end|>", "token_id": 3}],
            "association_matrix": [[0.25, 0.75], [0.5, 0.5]],
            "normalized_association": [[0.3, 1.0], [1.0, 1.0]],
        },
    }
    a = load_result(saved(tmp_path, upstream, "upstream.json"))
    assert a.tokens == [
        Token(17250, "Hi", "Hi", "prompt", False),
        Token(-1, "Ġthere", " there", "prompt", False),
        Token(-1, "▁friend", " friend", "generated", False),
        Token(3, "<|im_end|>", "<|im_end|>", "generated", True),
    ]
    np.testing.assert_array_equal(a.scores, [[0.25, 0.75, 0, 0], [0.5, 0.5, 0, 0]])
    assert a.target_positions == [2, 3] and a.method == "saliency" and a.model_id == "gpt2"
    assert a.options == {"generation_params": {"max_new_tokens": 2}}


def test_malformed_tokenlens(tmp_path):
    t = to_tokenlens(make_attribution())
    t["data"]["association_matrix"] = t["data"]["association_matrix"][:2]
    with pytest.raises(AttrWidgetsError, match=r"has shape \(2, 4\), expected \(3, 4\)") as exc:
        load_result(saved(tmp_path, t, "tl.json"))
    assert "TokenLens file" in str(exc.value) and "tl.json" in str(exc.value)
    del t["data"]["output_tokens"]
    with pytest.raises(AttrWidgetsError, match="key 'data.output_tokens' missing"):
        from_tokenlens(t)
    with pytest.raises(AttrWidgetsError, match="'metadata' and 'data' must both be objects"):
        from_tokenlens([t])


# -- long table and CSV ------------------------------------------------------------------------------
def test_dataframe_has_one_row_per_computed_causal_pair():
    a = make_attribution()
    df = to_dataframe(a)
    assert list(df.columns) == list(DATAFRAME_COLUMNS)
    assert len(df) == 4 + 6  # rows 0 and 2 (targets at 4 and 6); row 1 is not computed
    assert (df["source_position"] < df["target_position"]).all()
    row = df[(df.target_index == 2) & (df.source_position == 3)].iloc[0]
    assert (row.target_position, row.target_token, row.source_token, row.score) == (6, "</s>", " the", 1.5)
    assert df[df.target_index == 2]["source_segment"].tolist() == ["prompt"] * 4 + ["generated"] * 2
    a.scores[1] = np.arange(7)
    assert len(to_dataframe(a)) == 4 + 5 + 6


def test_csv_repeated_and_awkward_tokens(tmp_path):
    a = make_attribution()
    path = tmp_path / "scores.csv"
    a.to_csv(path)
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    assert tuple(rows[0]) == DATAFRAME_COLUMNS
    body = rows[1:]
    assert len(body) == 10
    # " the" sits at positions 1, 3 and 5: keyed by position, every row survives with its own score
    the = {int(r[3]): float(r[6]) for r in body if r[0] == "2" and r[4] == " the"}
    assert the == {1: 0.0, 3: 1.5, 5: 2.0}
    weird = [r for r in body if r[3] == "2"]
    assert [r[4] for r in weird] == [WEIRD, WEIRD] and [float(r[6]) for r in weird] == [-2.0, 3.0]
    assert any(r[2] == " café" for r in body)
    import pandas as pd  # dev extra
    df = pd.read_csv(path, encoding="utf-8", keep_default_na=False)
    expected = to_dataframe(a)
    assert df["source_token"].tolist() == expected["source_token"].tolist()
    np.testing.assert_array_equal(df["score"].to_numpy(np.float32), expected["score"].to_numpy())


def test_csv_writes_nan_score_as_empty_field(tmp_path):
    a = make_attribution()
    a.scores[0, 2] = NAN  # a single missing entry inside a computed row
    to_csv(a, tmp_path / "s.csv")
    with open(tmp_path / "s.csv", encoding="utf-8", newline="") as f:
        row = next(r for r in csv.reader(f) if r[0] == "0" and r[3] == "2")
    assert row[6] == ""
