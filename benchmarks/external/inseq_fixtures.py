"""Write the Inseq files that tests/core/test_inseq_io.py reads, with Inseq itself, and the numbers Inseq computed.

Run by an Inseq venv's python, never by the project's (Inseq is not a dependency of attrwidgets):

    /work/venvs/inseq/bin/python benchmarks/external/inseq_fixtures.py     # Inseq 0.7.x: v07.json, v07_two.json.gz
    /work/venvs/inseq06/bin/python benchmarks/external/inseq_fixtures.py   # Inseq 0.6.0: v06_ndarray.json

benchmarks/external/inseq_env.sh builds both venvs. Each run writes its files into tests/core/data/inseq/ and
updates that folder's expected.json: per file, the tokens, attr_pos_start/end, target_attributions and step scores
as Inseq held them in memory before saving (NaN as null), so the test checks our reader against Inseq's own
numbers, not against a second reading of the file. The script also loads each file back with
FeatureAttributionOutput.load and stops if that differs from memory.

The model is a 2-layer GPT-2 (n_embd=16, 2 heads) whose weights come from numpy's seeded generator, and the
tokenizer a byte-level BPE trained here on two sentences: no hub, and the same model under either venv.
"""

from __future__ import annotations

import gzip
import json
from importlib.metadata import version
from pathlib import Path

import inseq
import numpy as np
import torch

OUT = Path(__file__).resolve().parents[2] / "tests" / "core" / "data" / "inseq"
CORPUS = ["The capital of France is Paris. The capital of Italy is Rome.",
          "the cat sat on the mat and the dog sat on the log"]


def tiny_model():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    # no full byte alphabet: every piece is then whole characters, so any token the random model picks decodes
    # to text and Inseq's re-tokenization of the generated text gives the same tokens back
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"], show_progress=False)
    tok.train_from_iterator(CORPUS, trainer=trainer)
    eos = "<|endoftext|>"
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=eos, pad_token=eos, bos_token=eos)
    config = GPT2Config(vocab_size=len(fast), n_embd=16, n_layer=2, n_head=2, n_positions=64,
                        bos_token_id=fast.eos_token_id, eos_token_id=fast.eos_token_id,
                        pad_token_id=fast.pad_token_id)
    model = GPT2LMHeadModel(config).eval()
    # weights from numpy, by parameter name: torch's and transformers' init differ between the two venvs
    rng = np.random.default_rng(0)
    with torch.no_grad():
        for name, param in sorted(model.named_parameters()):
            values = rng.standard_normal(tuple(param.shape)).astype(np.float32) * 0.3
            if name.endswith(("ln_1.weight", "ln_2.weight", "ln_f.weight")):
                values += 1.0
            param.copy_(torch.from_numpy(values))
    return model, fast


def numbers(t) -> list | None:
    """A tensor as nested lists of float32 values (shortest repr that reads back exactly), NaN as null."""
    if t is None:
        return None
    arr = np.asarray(t.detach().cpu().float().numpy() if hasattr(t, "detach") else t, dtype=np.float32)
    flat = [None if np.isnan(v) else float(str(v)) for v in arr.ravel()]
    return np.array(flat, dtype=object).reshape(arr.shape).tolist()


def describe(out) -> list[dict]:
    seqs = []
    for seq in out.sequence_attributions:
        seqs.append({
            "source": [[t.token, int(t.id)] for t in seq.source],
            "target": [[t.token, int(t.id)] for t in seq.target],
            "attr_pos_start": int(seq.attr_pos_start), "attr_pos_end": int(seq.attr_pos_end),
            "class": type(seq).__name__,
            "target_attributions": numbers(seq.target_attributions),
            "step_scores": {k: numbers(v) for k, v in (seq.step_scores or {}).items()},
        })
    return seqs


def same(a: list[dict], b: list[dict]) -> None:
    if json.dumps(a, sort_keys=True) != json.dumps(b, sort_keys=True):
        raise SystemExit("FeatureAttributionOutput.load gives other numbers than Inseq held in memory")


def main() -> None:
    inseq_version = version("inseq")
    OUT.mkdir(parents=True, exist_ok=True)
    model, tokenizer = tiny_model()
    gen = {"max_new_tokens": 2, "do_sample": False}
    steps = ["probability", "entropy"]
    if inseq_version.startswith("0.6"):
        jobs = [("v06_ndarray.json", "input_x_gradient", "The capital of", {})]
    else:
        jobs = [("v07.json", "input_x_gradient", "The capital of", {}),
                ("v07_two.json.gz", "saliency", ["The capital of", "the cat sat"], {"compress": True})]
    expected_file = OUT / "expected.json"
    expected = json.loads(expected_file.read_text()) if expected_file.is_file() else {}
    for name, method, prompt, save_args in jobs:
        attributor = inseq.load_model(model, method, tokenizer=tokenizer)
        out = attributor.attribute(prompt, generation_args=gen, step_scores=steps, show_progress=False)
        held = describe(out)  # before save: Inseq's 0.7 save converts tensors in a copy, 0.6 in none
        path = OUT / name
        out.save(str(path), overwrite=True, **save_args)
        same(held, describe(inseq.FeatureAttributionOutput.load(str(path), decompress="compress" in save_args)))
        if "compress" in save_args:
            gzip.decompress(path.read_bytes())  # it is gzip
        expected[name] = {"inseq_version": inseq_version, "method": method, "sequences": held}
        print(f"{path.relative_to(OUT.parents[3])}: {path.stat().st_size} bytes, inseq {inseq_version}, {method}")
    expected_file.write_text(json.dumps(expected, sort_keys=True, separators=(",", ":")) + "\n")


if __name__ == "__main__":
    main()
