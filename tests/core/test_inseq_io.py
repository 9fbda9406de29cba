"""Inseq files (core/token/inseq_io.py, inseq_write.py, inseq_arrays.py), offline and without Inseq.

The files in tests/core/data/inseq/ were written by Inseq itself (0.7.1 and 0.6.0; benchmarks/external/
inseq_fixtures.py), and expected.json beside them holds the numbers Inseq had in memory before saving. Our writer
against Inseq's own loader is checked by benchmarks/external/inseq_roundtrip.py, in Inseq's venv.
"""

from __future__ import annotations

import base64
import gzip
import json
import re
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save

import attrwidgets as aw
from attrwidgets.core.token.inseq_arrays import decode_tensor, safetensor_bytes
from attrwidgets.core.token.inseq_io import read_inseq, to_inseq
from attrwidgets.core.token.result import Attribution
from attrwidgets.core.tokens import Token
from attrwidgets.errors import AttrWidgetsError

DATA = Path(__file__).parent / "data" / "inseq"
EXPECTED = json.loads((DATA / "expected.json").read_text())
CASES = [("v07.json", 0), ("v07_two.json.gz", 0), ("v07_two.json.gz", 1), ("v06_ndarray.json", 0)]


def expected_arrays(seq: dict):
    """Inseq's [position, step, dim] tensor -> our per_dim (targets first, 0 where a step cannot see) and
    scores (its L2 norm over dims, Inseq's vnorm)."""
    tensor = np.array(seq["target_attributions"], dtype=np.float64)  # None -> NaN
    per_dim = np.swapaxes(tensor, 0, 1).copy()
    start = seq["attr_pos_start"]
    for j in range(per_dim.shape[0]):
        assert np.isnan(per_dim[j, start + j :]).all() and not np.isnan(per_dim[j, : start + j]).any()
        per_dim[j, start + j :] = 0.0
    return per_dim, np.linalg.norm(per_dim, axis=-1)


@pytest.mark.parametrize(("name", "index"), CASES)
def test_reads_files_inseq_saved_with_inseqs_numbers(name, index):
    seq = EXPECTED[name]["sequences"][index]
    a = read_inseq(DATA / name, sequence=index)
    assert [(t.text, t.id) for t in a.tokens] == [tuple(t) for t in seq["target"]]
    assert a.target_positions == list(range(seq["attr_pos_start"], seq["attr_pos_end"]))
    assert a.method == EXPECTED[name]["method"]
    per_dim, scores = expected_arrays(seq)
    np.testing.assert_array_equal(a.per_dim, per_dim.astype(np.float32))
    np.testing.assert_allclose(a.scores, scores, rtol=1e-6)
    np.testing.assert_array_equal(a.target_prob, np.float32(seq["step_scores"]["probability"]))
    np.testing.assert_array_equal(a.target_entropy, np.float32(seq["step_scores"]["entropy"]))
    assert [t.segment for t in a.tokens] == ["prompt"] * seq["attr_pos_start"] + ["generated"] * a.n_targets


def test_fixture_numbers_as_inseq_computed_them():
    a = read_inseq(DATA / "v07.json")
    assert [t.clean for t in a.tokens] == ["The", " capital", " of", " cap", " cap"]
    assert a.prompt == "The capital of" and a.model_id == "" and a.timestamp == ""
    np.testing.assert_allclose(a.target_prob, [0.24660727, 0.27143303], rtol=1e-7)
    np.testing.assert_allclose(a.scores, [[0.04531233, 0.12606001, 0.04641831, 0, 0],
                                          [0.09919742, 0.10158374, 0.07470782, 0.10911091, 0]], rtol=1e-6)
    assert a.options["generation_args"] == {"do_sample": False, "max_new_tokens": 2}


def test_old_and_new_layouts_agree():
    """Inseq 0.6 (numpy blocks, gzipped) and 0.7 (safetensors) attributed the same model: same result."""
    old, new = read_inseq(DATA / "v06_ndarray.json"), read_inseq(DATA / "v07.json")
    assert EXPECTED["v06_ndarray.json"]["inseq_version"].startswith("0.6")
    assert '"b64.gz:' in (DATA / "v06_ndarray.json").read_text() and '"SAAAAAAAAAB7' in (DATA / "v07.json").read_text()
    np.testing.assert_array_equal(old.per_dim, new.per_dim)
    np.testing.assert_array_equal(old.target_prob, new.target_prob)


def test_aw_load_recognises_inseq_files():
    for name in ("v07.json", "v07_two.json.gz", "v06_ndarray.json"):
        got, want = aw.load(DATA / name), read_inseq(DATA / name)
        assert isinstance(got, Attribution)
        np.testing.assert_array_equal(got.scores, want.scores)
    assert "Inseq" in aw.core.loading.ACCEPTED


def make_attribution(per_dim: bool = True) -> Attribution:
    """6 positions, targets 3..5, row 1 not computed; IG-like: scores the L2 norm of per_dim, signed the sum."""
    tokens = [Token(1, "<|im_start|>", "<|im_start|>", "user", True), Token(5, "Ġthe", " the", "user"),
              Token(9, "Ġcafé", " café", "user"), Token(4, "Ġ=1", " =1", "assistant"),
              Token(7, "Ġcat", " cat", "generated"), Token(2, "<|im_end|>", "<|im_end|>", "generated", True)]
    rng = np.random.default_rng(3)
    dims = rng.standard_normal((3, 6, 4)).astype(np.float32)
    for i, pos in enumerate((3, 4, 5)):
        dims[i, pos:] = 0.0
    dims[1] = np.nan
    return Attribution(
        tokens=tokens, target_positions=[3, 4, 5], scores=np.linalg.norm(dims, axis=-1), method="integrated_gradients",
        options={"n_steps": 16, "aggregate": "norm"}, model_id="tiny/gpt2", prompt="<|im_start|>user the café",
        timestamp="2025-01-02T03:04:05+00:00", target_prob=[0.5, 0.25, 0.125], target_entropy=[1.0, 2.0, 3.0],
        completeness_error=[0.01, np.nan, 0.03], per_dim=dims if per_dim else None,
        signed_scores=dims.sum(-1) if per_dim else None,
    )


def assert_same(a: Attribution, b: Attribution, exact: bool = True) -> None:
    assert a.tokens == b.tokens and a.target_positions == b.target_positions
    assert (a.method, a.model_id, a.prompt, a.timestamp, a.options) == (b.method, b.model_id, b.prompt, b.timestamp,
                                                                          b.options)
    compare = np.testing.assert_array_equal if exact else lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-6)
    for name in ("scores", "per_dim", "signed_scores", "target_prob", "target_entropy", "completeness_error"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        if x is not None:
            compare(x, y)


@pytest.mark.parametrize("suffix", [".json", ".json.gz"])
def test_round_trip(tmp_path, suffix):
    a = make_attribution()
    path = tmp_path / f"out{suffix}"
    a.to_inseq(path)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == suffix.endswith(".gz")
    back = read_inseq(path)
    assert_same(a, back, exact=False)  # scores are recomputed from per_dim: float32 rounding of the norm
    np.testing.assert_array_equal(back.per_dim, a.per_dim)
    assert_same(back, aw.load(path))


def test_round_trip_without_per_dim_is_exact(tmp_path):
    a = make_attribution(per_dim=False)
    a.to_inseq(tmp_path / "a.json")
    assert_same(a, read_inseq(tmp_path / "a.json"))


def test_written_layout_is_inseqs():
    a = make_attribution()
    d = to_inseq(a)
    assert d["__instance_type__"] == ["inseq.data.attribution", "FeatureAttributionOutput"]
    out = d["attributes"]
    assert out["step_attributions"] is None and out["info"]["model_name"] == "tiny/gpt2"
    seq = out["sequence_attributions"][0]
    assert seq["__instance_type__"][1] == "GranularFeatureAttributionSequenceOutput"
    s = seq["attributes"]
    assert (s["attr_pos_start"], s["attr_pos_end"], s["source_attributions"]) == (3, 6, None)
    assert s["source"] == s["target"][:3]
    assert s["target"][1] == {"__instance_type__": ["inseq.utils.typing", "TokenWithId"],
                              "attributes": {"id": 5, "token": "Ġthe"}}
    blob = base64.b64decode(s["target_attributions"])
    tensor = st_load(blob)["attribution"]  # the safetensors package reads what we wrote
    assert tensor.shape == (6, 3, 4)
    assert blob == st_save({"attribution": tensor})  # byte for byte what safetensors (so Inseq 0.7) writes
    np.testing.assert_array_equal(tensor[:3, 0], a.per_dim[0, :3])
    np.testing.assert_array_equal(tensor[:4, 2], a.per_dim[2, :4])
    assert np.isnan(tensor[3:, 0]).all() and np.isnan(tensor[:, 1]).all() and np.isnan(tensor[5:, 2]).all()
    assert np.allclose(st_load(base64.b64decode(s["step_scores"]["probability"]))["attribution"], [0.5, 0.25, 0.125])
    d2 = to_inseq(make_attribution(per_dim=False))
    seq2 = d2["attributes"]["sequence_attributions"][0]
    assert seq2["__instance_type__"][1] == "CoarseFeatureAttributionSequenceOutput"
    assert st_load(base64.b64decode(seq2["attributes"]["target_attributions"]))["attribution"].shape == (6, 3)


def test_word_aggregated_result_is_refused():
    a = make_attribution(per_dim=False)
    a.target_positions = [3, 3, 5]
    with pytest.raises(AttrWidgetsError, match="consecutive positions"):
        to_inseq(a)


def test_other_precisions_decode():
    """Inseq's scores_precision float16 and float8, and bfloat16: decoded without torch."""
    half = np.array([[1.5, -2.0], [np.nan, 0.25]], dtype=np.float16)
    text = base64.b64encode(st_save({"attribution": half})).decode()
    np.testing.assert_array_equal(decode_tensor("x", text), half.astype(np.float32))
    for dtype, raw, want in (("F8_E4M3", bytes([0x38, 0x40, 0xB8, 0x01, 0x7F]), [1.0, 2.0, -1.0, 2.0**-9, np.nan]),
                             ("BF16", bytes([0x80, 0x3F, 0x00, 0xC0]), [1.0, -2.0])):
        header = json.dumps({"attribution": {"dtype": dtype, "shape": [len(want)], "data_offsets": [0, len(raw)]}})
        blob = len(header).to_bytes(8, "little") + header.encode() + raw
        np.testing.assert_array_equal(decode_tensor("x", base64.b64encode(blob).decode()), np.float32(want))
    np.testing.assert_array_equal(st_load(safetensor_bytes(np.ones((2, 3))))["attribution"], np.ones((2, 3)))


def v07() -> dict:
    return json.loads((DATA / "v07.json").read_text())


def seq_attrs(d: dict) -> dict:
    return d["attributes"]["sequence_attributions"][0]["attributes"]


def _wrong_type(d):
    d["__instance_type__"] = ["inseq.data.attribution", "FeatureAttributionStepOutput"]


def _wrong_seq_type(d):
    d["attributes"]["sequence_attributions"][0]["__instance_type__"][1] = "TokenWithId"


def _wrong_shape(d):
    seq_attrs(d)["target_attributions"] = base64.b64encode(safetensor_bytes(np.zeros((5, 3, 16)))).decode()


def _bad_base64(d):
    seq_attrs(d)["target_attributions"] = "not base64 at all!"


def _short_tensor(d):
    blob = base64.b64decode(seq_attrs(d)["target_attributions"])
    seq_attrs(d)["target_attributions"] = base64.b64encode(blob[:-4]).decode()


def _huge_header(d):
    seq_attrs(d)["target_attributions"] = base64.b64encode((1 << 40).to_bytes(8, "little") + b"{}").decode()


def _object_block(d):
    seq_attrs(d)["target_attributions"] = {"__ndarray__": "b64:AAAA", "dtype": "object", "shape": [1]}


def _encoder_decoder(d):
    seq_attrs(d)["source_attributions"] = seq_attrs(d)["target_attributions"]


def _nan_where_seen(d):
    tensor = st_load(base64.b64decode(seq_attrs(d)["target_attributions"]))["attribution"].copy()
    tensor[1, 0, 3] = np.nan
    seq_attrs(d)["target_attributions"] = base64.b64encode(safetensor_bytes(tensor)).decode()


def _bad_step_score(d):
    seq_attrs(d)["step_scores"]["probability"] = base64.b64encode(safetensor_bytes(np.zeros(3))).decode()


def _bad_token(d):
    seq_attrs(d)["target"][2]["attributes"]["id"] = "seven"


def _no_sequences(d):
    d["attributes"]["sequence_attributions"] = []


@pytest.mark.parametrize(("damage", "message"), [
    (_wrong_type, "not an Inseq FeatureAttributionOutput .*FeatureAttributionStepOutput"),
    (_wrong_seq_type, "is a 'TokenWithId', expected a FeatureAttributionSequenceOutput"),
    (_wrong_shape, r"target_attributions has shape \(5, 3, 16\).*need \(5, 2, \.\.\.\)"),
    (_bad_base64, "not valid base64"),
    (_short_tensor, r"shape \[5, 2, 16\] and dtype F32 does not fit its 636 data bytes"),
    (_huge_header, "header claims 1099511627776 bytes"),
    (_object_block, "dtype 'object'"),
    (_encoder_decoder, "encoder-decoder"),
    (_nan_where_seen, "NaN at a position that generation step 0 sees"),
    (_bad_step_score, r"step_scores.probability has shape \(3,\), expected \(2,\)"),
    (_bad_token, "target\\[2\\].id must be an integer"),
    (_no_sequences, "sequence_attributions must be a non-empty list"),
])
def test_malformed_files_say_what_is_wrong(tmp_path, damage, message):
    d = v07()
    damage(d)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(d))
    with pytest.raises(AttrWidgetsError, match=message) as info:
        read_inseq(path)
    text = str(info.value)  # what was wrong, then how to fix it
    assert text.startswith("Cannot read Inseq file") and re.search(r"\. (Save|Attribute|Pass) ", text)
    with pytest.raises(AttrWidgetsError):
        aw.load(path)


def test_truncated_files(tmp_path):
    text = (DATA / "v07.json").read_bytes()
    (tmp_path / "cut.json").write_bytes(text[: len(text) // 2])
    with pytest.raises(AttrWidgetsError, match="truncated or not JSON at line"):
        read_inseq(tmp_path / "cut.json")
    packed = (DATA / "v07_two.json.gz").read_bytes()
    (tmp_path / "cut.json.gz").write_bytes(packed[: len(packed) // 2])
    for reader in (read_inseq, aw.load):
        with pytest.raises(AttrWidgetsError, match="gzip data is damaged or cut off"):
            reader(tmp_path / "cut.json.gz")
    (tmp_path / "empty.json").write_bytes(b"")
    with pytest.raises(AttrWidgetsError, match="empty"):
        read_inseq(tmp_path / "empty.json")


def test_gzip_that_is_not_inseq(tmp_path):
    (tmp_path / "x.gz").write_bytes(gzip.compress(b'{"tokens": []}'))
    with pytest.raises(AttrWidgetsError, match="not an Inseq FeatureAttributionOutput"):
        aw.load(tmp_path / "x.gz")


def test_sequence_argument():
    assert read_inseq(DATA / "v07_two.json.gz", sequence=1).prompt == "the cat sat"
    with pytest.raises(AttrWidgetsError, match=r"sequence=2 is out of range.*holds 2 sequence\(s\)"):
        read_inseq(DATA / "v07_two.json.gz", sequence=2)


def test_primitives_and_list_arrays(tmp_path):
    """use_primitives saves (no records) and old list-written arrays with NaN literals read the same."""
    d = v07()
    seq = seq_attrs(d)
    tensor = st_load(base64.b64decode(seq["target_attributions"]))["attribution"]
    seq["target_attributions"] = {"__ndarray__": tensor.tolist(), "dtype": "float32", "shape": list(tensor.shape)}
    plain = {"info": d["attributes"]["info"], "step_attributions": None,
             "sequence_attributions": [{**seq, "target": [t["attributes"] for t in seq["target"]]}]}
    (tmp_path / "p.json").write_text(json.dumps(plain))  # NaN written as the NaN literal, as Inseq does
    assert "NaN" in (tmp_path / "p.json").read_text()
    got, want = aw.load(tmp_path / "p.json"), read_inseq(DATA / "v07.json")
    np.testing.assert_array_equal(got.per_dim, want.per_dim)
    assert got.tokens == want.tokens
