"""Inseq files both ways, checked by Inseq itself: our to_inseq() opened by inseq.FeatureAttributionOutput.load,
and Inseq's save() read by our read_inseq(). Prints the largest absolute difference of each comparison.

Run by the Inseq venv's python (benchmarks/external/inseq_env.sh builds it); the attrwidgets side runs in the
project's python (AW_PYTHON, default `python3` on PATH) as a child process, since Inseq must stay out of the
project's environment and attrwidgets' dependencies out of Inseq's:

    /work/venvs/inseq/bin/python benchmarks/external/inseq_roundtrip.py

1. ours -> Inseq: attrwidgets attributes a prompt on its tiny GPT-2 (attrwidgets.testing) with input x gradient
   (per_dim kept: a granular file), saliency written gzipped, and a result with one row not computed; Inseq loads
   each file and its target_attributions, transposed, must equal our per_dim or scores (NaN where a step cannot
   see a position, and in the row not computed), as must its tokens and step score "probability". Inseq's
   aggregate() must also run on each.
2. Inseq -> ours: Inseq attributes the same tiny GPT-2 (saved by the attrwidgets side) with input x gradient and
   saliency and saves (plain and compress=True); our reader's per_dim must equal Inseq's tensor and our scores its L2 norm,
   Inseq's own aggregate("scores", normalize=False).
Exit status 1 if a difference exceeds 1e-6.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOLERANCE = 1e-6

OURS_WRITE = r"""
import json, sys
import numpy as np
import attrwidgets as aw
from attrwidgets.testing import tiny_handle
out = sys.argv[1]
handle = tiny_handle("gpt2")
runs = {
    "ours_ixg.json": aw.attribute(handle, "The capital of France is", method="input_x_gradient", max_new_tokens=3,
                                  per_dim=True, progress=False),
    "ours_saliency.json.gz": aw.attribute(handle, "the cat sat on the", method="saliency", max_new_tokens=3,
                                          progress=False),
}
partial = aw.attribute(handle, "one two three", method="saliency", max_new_tokens=3, progress=False)
partial.scores[1] = np.nan  # a row not computed, as a live view leaves it
runs["ours_partial.json"] = partial
truth = {}
handle.model.save_pretrained(f"{out}/model")  # the same model for Inseq's side
handle.tokenizer.save_pretrained(f"{out}/model")
for name, a in runs.items():
    a.to_inseq(f"{out}/{name}")
    truth[name] = {"scores": np.where(np.isnan(a.scores), None, a.scores).tolist(),
                   "per_dim": None if a.per_dim is None else a.per_dim.tolist(),
                   "target_positions": a.target_positions, "tokens": [[t.text, t.id] for t in a.tokens],
                   "target_prob": a.target_prob.tolist()}
print(json.dumps(truth))
"""

OURS_READ = r"""
import json, sys
import numpy as np
from attrwidgets.core.token.inseq_io import read_inseq
got = {}
for path in sys.argv[1:]:
    a = read_inseq(path)
    got[path] = {"scores": a.scores.tolist(), "per_dim": None if a.per_dim is None else a.per_dim.tolist(),
                 "target_prob": None if a.target_prob is None else a.target_prob.tolist()}
print(json.dumps(got))
"""


def ours(code: str, *args: str) -> dict:
    python = os.environ.get("AW_PYTHON", "python3")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([python, "-c", code, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          check=False)
    if done.returncode:
        raise SystemExit(f"the attrwidgets side failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def max_diff(a, b) -> float:
    """Largest |a - b|; NaN must sit at the same places in both (a NaN against a number counts as inf)."""
    import numpy as np

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise SystemExit(f"shapes differ: {a.shape} vs {b.shape}")
    if (np.isnan(a) != np.isnan(b)).any():
        return float("inf")
    both = ~np.isnan(a)
    return float(np.abs(a[both] - b[both]).max()) if both.any() else 0.0


def ours_to_inseq(folder: Path) -> float:
    import inseq
    import numpy as np

    truth = ours(OURS_WRITE, str(folder))
    worst = 0.0
    for name, t in truth.items():
        loaded = inseq.FeatureAttributionOutput.load(str(folder / name), decompress=name.endswith(".gz"))
        seq = loaded[0]
        tensor = seq.target_attributions.numpy()
        ref = np.array(t["per_dim"] if t["per_dim"] is not None else t["scores"], dtype=np.float64)
        ref = np.swapaxes(ref, 0, 1)  # ours rows = targets; Inseq's [position, step]
        start = t["target_positions"][0]
        for j in range(ref.shape[1]):
            ref[start + j :, j] = np.nan  # positions a step cannot see: NaN in Inseq, 0 in ours
        diff = max(max_diff(tensor, ref), max_diff(seq.step_scores["probability"].numpy(), t["target_prob"]))
        if [[tok.token, tok.id] for tok in seq.target] != t["tokens"] or seq.attr_pos_start != start:
            raise SystemExit(f"{name}: Inseq reads other tokens or another attr_pos_start than we wrote")
        seq.aggregate()  # Inseq's own view of the file must work too
        print(f"ours -> inseq  {name:24s} {type(seq).__name__:42s} {tuple(tensor.shape)}  max|diff| = {diff:.3g}")
        worst = max(worst, diff)
    return worst


def inseq_to_ours(folder: Path) -> float:
    import inseq
    import numpy as np
    from transformers import AutoModelForCausalLM, AutoTokenizer

    # attrwidgets' tiny GPT-2, saved by ours_to_inseq's child process
    model = AutoModelForCausalLM.from_pretrained(folder / "model").eval()
    tokenizer = AutoTokenizer.from_pretrained(folder / "model")
    if model.config.bos_token_id is None:  # Inseq needs a BOS token id to set up (these methods do not use it)
        model.config.bos_token_id = tokenizer.eos_token_id
    held = {}
    for method in ("input_x_gradient", "saliency"):
        attributor = inseq.load_model(model, method, tokenizer=tokenizer)
        out = attributor.attribute("The capital of France is", generation_args={"max_new_tokens": 3},
                                   step_scores=["probability"], show_progress=False)
        for name, args in ((f"inseq_{method}.json", {}), (f"inseq_{method}.json.gz", {"compress": True})):
            out.save(str(folder / name), overwrite=True, **args)
            seq = out[0]
            norm = seq.aggregate("scores", normalize=False).target_attributions.numpy()
            held[str(folder / name)] = (seq.target_attributions.numpy(), norm, seq.step_scores["probability"].numpy(),
                                        seq.attr_pos_start)
    got = ours(OURS_READ, *held)
    worst = 0.0
    for path, (tensor, norm, prob, start) in held.items():
        g = got[path]
        ref_dim, ref_scores = np.swapaxes(tensor, 0, 1).copy(), np.swapaxes(norm, 0, 1).copy()
        for i in range(ref_scores.shape[0]):
            ref_dim[i, start + i :] = 0.0  # Inseq's NaN where a step cannot see a position is our 0
            ref_scores[i, start + i :] = 0.0
        diffs = [max_diff(g["per_dim"], ref_dim), max_diff(g["scores"], ref_scores), max_diff(g["target_prob"], prob)]
        print(f"inseq -> ours  {Path(path).name:32s} per_dim {diffs[0]:.3g}, scores vs Inseq's vnorm {diffs[1]:.3g}, "
              f"probability {diffs[2]:.3g}")
        worst = max(worst, *diffs)
    return worst


def main() -> None:
    from importlib.metadata import version

    print(f"inseq {version('inseq')}")
    with tempfile.TemporaryDirectory() as tmp:
        a = ours_to_inseq(Path(tmp))
        b = inseq_to_ours(Path(tmp))
    print(f"max abs difference: ours -> inseq {a:.3g}, inseq -> ours {b:.3g}")
    if max(a, b) > TOLERANCE:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
