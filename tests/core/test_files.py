"""Every file attrwidgets writes goes through one atomic writer (core/files.py), and CSV cells that a spreadsheet
would run as formulas are neutralised by default."""

from __future__ import annotations

import csv
import functools

import numpy as np
import pytest

import attrwidgets as aw
from attrwidgets.core import files
from attrwidgets.core.token.result_io import save_tokenlens
from attrwidgets.testing import tiny_handle, tiny_masked_lm, toy_graph
from tests.core.graph_reference import random_transcoder

FORMULAS = ["=HYPERLINK(\"http://x\")", "+1+1", "-2", "@SUM(A1)", "\tx", "\rx"]


@functools.cache
def token_result():
    return aw.attribute(tiny_handle("llama"), "the cat", method="saliency", max_new_tokens=2, progress=False)


@functools.cache
def diffusion_result():
    return aw.dlig(tiny_masked_lm(seed=0), "the cat", layer="block 0", gen_length=2, denoising_steps=1, n_steps=2,
                   progress=False)


@functools.cache
def lig_result():
    return aw.lig(tiny_handle("llama"), "the cat sat", layers=[0], n_steps=2)


WRITERS = {
    "Attribution.save": lambda p: token_result().save(p / "r.json"),
    "Attribution.to_csv": lambda p: token_result().to_csv(p / "r.csv"),
    "save_tokenlens": lambda p: save_tokenlens(token_result(), p / "t.json"),
    "Attribution.to_inseq": lambda p: token_result().to_inseq(p / "i.json"),
    "Attribution.to_inseq (gzip)": lambda p: token_result().to_inseq(p / "i.json.gz"),
    "to_html": lambda p: aw.to_html(token_result(), p / "r.html"),
    "Graph.save": lambda p: toy_graph(seed=1).save(p / "g.json"),
    "Graph.to_viewer_json": lambda p: toy_graph(seed=1).to_viewer_json(p / "v.json"),
    "graph to_html": lambda p: aw.to_html(toy_graph(seed=1), p / "g.html"),
    "LayerAttribution.to_lig_json": lambda p: lig_result().to_lig_json(p / "lig.json"),
    "LayerAttribution.save": lambda p: lig_result().save(p / "lig_bundle.json"),
    "DiffusionAttribution.save": lambda p: diffusion_result().save(p / "d.json"),
    "DiffusionAttribution.to_csv": lambda p: diffusion_result().to_csv(p / "d.csv"),
    "Transcoder.save": lambda p: random_transcoder(2, 16).save(p / "tc"),
}


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_a_write_that_fails_leaves_the_old_file_and_no_temporary(name, tmp_path, monkeypatch):
    """The rename is the last step of every write: when it fails (a full disk, an interrupt), every file that
    was there keeps its old bytes and no temporary file is left behind. A writer that bypassed files.py would
    overwrite the old bytes here."""
    WRITERS[name](tmp_path)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert before, name

    def failing_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, "replace", failing_replace)
    with pytest.raises(OSError, match="No space left"):
        WRITERS[name](tmp_path)
    after = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert after == before, name


def _cells(path):
    with open(path, encoding="utf-8", newline="") as f:
        return [cell for row in csv.reader(f) for cell in row]


@pytest.mark.parametrize("text", FORMULAS)
def test_formula_like_token_text_is_neutralised_in_csv_unless_raw(text, tmp_path):
    r = token_result()
    tokens = list(r.tokens)
    tokens[0] = type(tokens[0])(**{**tokens[0].to_dict(), "text": text, "clean": text})
    hostile = type(r)(**{**r.__dict__, "tokens": tokens})
    hostile.to_csv(tmp_path / "safe.csv")
    hostile.to_csv(tmp_path / "raw.csv", raw=True)
    assert "'" + text in _cells(tmp_path / "safe.csv") and text not in _cells(tmp_path / "safe.csv")
    assert text in _cells(tmp_path / "raw.csv")

    d = diffusion_result()
    d_tokens = list(d.tokens)
    d_tokens[0] = type(d_tokens[0])(**{**d_tokens[0].to_dict(), "text": text, "clean": text})
    hostile_d = type(d)(**{**d.__dict__, "tokens": d_tokens, "prompt": text})
    hostile_d.to_csv(tmp_path / "d.csv")
    hostile_d.to_csv(tmp_path / "d_raw.csv", raw=True)
    assert "'" + text in _cells(tmp_path / "d.csv") and text not in _cells(tmp_path / "d.csv")
    assert _cells(tmp_path / "d_raw.csv").count(text) >= 2  # the prompt and the token


def test_csv_cell_rule():
    assert [files.csv_cell(t) for t in FORMULAS] == ["'" + t for t in FORMULAS]
    assert files.csv_cell(" =x") == " =x" and files.csv_cell("a=b") == "a=b" and files.csv_cell("") == ""
    assert files.csv_cell("=x", raw=True) == "=x"
    assert np.all([files.csv_cell(t, raw=True) == t for t in FORMULAS])
