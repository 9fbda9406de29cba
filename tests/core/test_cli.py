"""The CLI on a tiny model saved to disk (the same from_pretrained path a hub id takes)."""

import json

import pytest

from attrwidgets.cli import main


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    from attrwidgets.testing import tiny_handle

    h = tiny_handle("llama")
    folder = tmp_path_factory.mktemp("tiny-llama")
    h.model.save_pretrained(folder)
    h.tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.mark.parametrize("suffix", ["json", "csv", "html"])
def test_explain_writes_each_format(tiny_folder, tmp_path, suffix, capsys):
    out = tmp_path / f"out.{suffix}"
    code = main(["explain", "the cat sat", "--model", tiny_folder, "--method", "integrated_gradients",
                 "--n-steps", "8", "--max-new-tokens", "2", "-o", str(out)])
    assert code == 0 and out.exists()
    text = out.read_text()
    if suffix == "json":
        assert json.loads(text)["method"] == "integrated_gradients"
    elif suffix == "csv":
        assert text.splitlines()[0].replace('"', "").startswith("target_index,target_position,")
    else:
        assert "<script src=" not in text and "<html" in text.lower()
    assert "wrote" in capsys.readouterr().out


def test_explain_tokenlens_and_chat(tiny_folder, tmp_path):
    out = tmp_path / "tl.json"
    assert main(["explain", "capital of France?", "--chat", "--model", tiny_folder, "--method", "saliency",
                 "--max-new-tokens", "2", "--tokenlens", "-o", str(out)]) == 0
    data = json.loads(out.read_text())
    assert set(data) == {"metadata", "data"} and data["metadata"]["attribution_method"] == "saliency"


def test_explain_bad_input_is_a_clear_error(tiny_folder, capsys):
    assert main(["explain", "  ", "--model", tiny_folder, "--method", "saliency"]) == 2
    assert "prompt is empty" in capsys.readouterr().err
    assert main(["explain", "hi", "--model", tiny_folder, "--method", "nope"]) == 2
    assert "Unknown method 'nope'" in capsys.readouterr().err
    assert main(["explain", "hi", "--model", tiny_folder, "-o", "x.txt"]) == 2


def test_methods_lists_the_registry(capsys):
    assert main(["methods"]) == 0
    assert "integrated_gradients" in capsys.readouterr().out


def test_lig_writes_the_upstream_json_layout(tiny_folder, tmp_path, capsys):
    out = tmp_path / "lig.json"
    code = main(["lig", "the cat sat", "--model", tiny_folder, "--steps", "8", "--granularity", "layer,mlp",
                 "--layers", "0,1", "--baseline-layer", "zero", "-o", str(out)])
    assert code == 0
    data = json.loads(out.read_text())
    assert data["config"]["num_steps"] == 8 and data["config"]["layers"] == [0, 1]
    assert set(data["layers"]) == {"0", "1"} and "z2z" in data["layers"]["0"] and "targets" in data["layers"]["1"]
    assert "wrote" in capsys.readouterr().out


def test_lig_bad_flags_exit_with_a_message(tiny_folder, capsys):
    assert main(["lig", "the cat", "--model", tiny_folder, "--layers", "0,x"]) == 2
    assert "comma-separated integers" in capsys.readouterr().err
    assert main(["lig", "the cat", "--model", tiny_folder, "--steps", "0"]) == 2
    assert "n_steps must be a positive integer" in capsys.readouterr().err


def test_lig_html_is_a_standalone_page(tiny_folder, tmp_path):
    out = tmp_path / "lig.html"
    assert main(["lig", "the cat sat", "--model", tiny_folder, "--steps", "4", "--layers", "1", "-o", str(out)]) == 0
    text = out.read_text()
    assert "<html" in text.lower() and "<script src=" not in text


@pytest.fixture(scope="module")
def tiny_mlm_folder(tmp_path_factory):
    from attrwidgets.testing import tiny_masked_lm

    h = tiny_masked_lm()
    folder = tmp_path_factory.mktemp("tiny-mlm")
    h.model.save_pretrained(folder)
    h.tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.mark.parametrize("suffix", ["csv", "json", "html"])
def test_dlig_writes_each_format(tiny_mlm_folder, tmp_path, suffix):
    import attrwidgets as aw

    out = tmp_path / f"d.{suffix}"
    assert main(["dlig", "the cat", "--model", tiny_mlm_folder, "--layer", "block 0", "--gen-length", "4",
                 "--steps", "2", "--n-steps", "4", "-o", str(out)]) == 0
    text = out.read_text()
    if suffix == "csv":
        assert text.startswith("step,position,token_id,token,") and "pos_0" in text.splitlines()[0]
    elif suffix == "json":
        assert aw.load_diffusion(out).n_denoising_steps == 2
    else:
        assert "<html" in text.lower() and "<script src=" not in text


@pytest.mark.parametrize("layout", ["dream", "llada"])
def test_dlig_on_a_dream_or_llada_folder(layout, tmp_path):
    """A folder in the published layout loads as a masked LM through our own code (core/diffusion_layouts.py)."""
    import attrwidgets as aw
    from tests.core.diffusion_layout_support import folder

    out = tmp_path / "d.json"
    assert main(["dlig", "the cat", "--model", str(folder(layout)), "--layer", "block 1", "--gen-length", "4",
                 "--steps", "2", "--n-steps", "4", "-o", str(out)]) == 0
    result = aw.load_diffusion(out)
    assert result.n_denoising_steps == 2 and result.mask_text == ("<|mask|>" if layout == "dream" else "<|mdm_mask|>")


def test_explain_takes_the_layer_option(tiny_folder, tmp_path):
    out = tmp_path / "l.json"
    assert main(["explain", "the cat sat", "--model", tiny_folder, "--method", "layer_integrated_gradients",
                 "--layer", "block 1 attn", "--n-steps", "4", "--quadrature", "gauss_legendre",
                 "--max-new-tokens", "1", "-o", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["method"] == "layer_integrated_gradients" and data["options"]["layer"] == "block 1 attn"


def test_dlig_refuses_a_model_without_a_mask_token(tiny_folder, capsys):
    assert main(["dlig", "the cat", "--model", tiny_folder, "--gen-length", "4", "--steps", "2"]) == 2
    assert "mask_token_id" in capsys.readouterr().err
