"""Check a circuit-tracer graph written by benchmarks/external/ct_runner.py against a hand-written frozen forward.

    python benchmarks/graph/ct_row_check.py /tmp/ct_graph.npz --transcoder-dir DIR [--model-dir DIR] [--features 6]

Runs in the project's environment (transformers 5; llama-family models only), independent of circuit-tracer
and of attrwidgets' own graph code: a plain re-implementation of the local replacement model, used to pin
down what circuit-tracer's rows mean before comparing graphs.

The frozen model: attention patterns and RMSNorm scales (input, post-attention and final norms) fixed at
their values on the prompt, every MLP output a constant source vector. It is linear in the sources (token
embeddings, MLP outputs at every layer and position), so a target (a demeaned logit at the last position, or
a feature's pre-activation minus b_enc) equals the sum of every source's direct effect. circuit-tracer's row
holds the same effects for token, feature and error nodes, but has no node for the MLP outputs at position 0
(features and errors there are zeroed). So, with b_dec = 0 and no skip (as in benchmarks/graph/ct_random_plt.py):

    row sum (circuit-tracer)  ==  target - (direct effect of the position-0 MLP outputs)

when every active feature is a node (max_feature_nodes=None). Checks: the model's logits match the runner's
logits_last, no edge runs backward in position or from the same/a later layer into a feature, and the
identity above for every logit row and a sample of feature rows.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch


def frozen_pieces(model, ids):
    """Real forward: per layer (input-norm scale, attention pattern, post-attention-norm scale, MLP output)."""
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb, repeat_kv

    cfg = model.config
    T, H, KV, Dh = ids.shape[1], cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
    mask = torch.triu(torch.full((T, T), float("-inf")), 1)
    rec = []
    with torch.no_grad():
        x = model.model.embed_tokens(ids)
        cos, sin = model.model.rotary_emb(x, torch.arange(T)[None])
        for lyr in model.model.layers:
            s1 = rms_scale(x, lyr.input_layernorm.variance_epsilon)
            h = lyr.input_layernorm.weight * x * s1
            a = lyr.self_attn
            q = a.q_proj(h).view(1, T, H, Dh).transpose(1, 2)
            k = a.k_proj(h).view(1, T, KV, Dh).transpose(1, 2)
            q, k = apply_rotary_pos_emb(q, k, cos, sin)
            pattern = (q @ repeat_kv(k, H // KV).transpose(2, 3) * Dh**-0.5 + mask).softmax(-1)
            x = x + attention_out(a, h, pattern, T, H, KV, Dh)
            s2 = rms_scale(x, lyr.post_attention_layernorm.variance_epsilon)
            mlp_out = lyr.mlp(lyr.post_attention_layernorm.weight * x * s2)
            x = x + mlp_out
            rec.append((s1, pattern, s2, mlp_out))
        s_final = rms_scale(x, model.model.norm.variance_epsilon)
        logits = model.lm_head(model.model.norm.weight * x * s_final)[0, -1]
    return rec, s_final, logits


def rms_scale(x, eps):
    return torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)


def attention_out(a, h, pattern, T, H, KV, Dh):
    from transformers.models.llama.modeling_llama import repeat_kv

    v = repeat_kv(a.v_proj(h).view(1, T, KV, Dh).transpose(1, 2), H // KV)
    return a.o_proj((pattern @ v).transpose(1, 2).reshape(1, T, H * Dh))


def linear_model(model, ids, rec, s_final):
    """The frozen model with leaf sources: returns (embeddings, MLP sources, MLP inputs per layer, final)."""
    cfg = model.config
    T, H, KV, Dh = ids.shape[1], cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
    emb = model.model.embed_tokens(ids).detach().requires_grad_(True)
    srcs = [r[3].detach().clone().requires_grad_(True) for r in rec]
    x, mlp_in = emb, []
    for lyr, (s1, pattern, s2, _), src in zip(model.model.layers, rec, srcs):
        h = lyr.input_layernorm.weight * x * s1
        x = x + attention_out(lyr.self_attn, h, pattern, T, H, KV, Dh)
        mlp_in.append(lyr.post_attention_layernorm.weight * x * s2)
        x = x + src
    return emb, srcs, mlp_in, model.model.norm.weight * x * s_final


def split_effects(target, emb, srcs):
    """(all direct effects summed, the part of the position-0 MLP outputs)."""
    grads = torch.autograd.grad(target, [emb, *srcs], allow_unused=True, retain_graph=True)
    total = (grads[0] * emb).sum()
    pos0 = torch.zeros(())
    for g, s in zip(grads[1:], srcs):
        if g is not None:
            total = total + (g * s).sum()
            pos0 = pos0 + (g[0, 0] * s[0, 0]).sum()
    return float(total.detach()), float(pos0.detach())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("graph", help=".npz written by ct_runner.py")
    ap.add_argument("--transcoder-dir", required=True)
    ap.add_argument("--model-dir", default=str(Path.home() / ".cache/attrwidgets/smollm2-135m-instruct"))
    ap.add_argument("--features", type=int, default=6, help="feature rows to check (random sample)")
    args = ap.parse_args(argv)

    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    z = np.load(args.graph, allow_pickle=False)
    A, kind, layer, pos = z["adjacency"], z["node_kind"], z["node_layer"], z["node_position"]
    model = AutoModelForCausalLM.from_pretrained(args.model_dir, dtype=torch.float32).eval()
    ids = torch.tensor(z["input_ids"])[None]
    rec, s_final, logits = frozen_pieces(model, ids)
    failures = []

    diff = float(np.abs(logits.numpy() - z["logits_last"]).max())
    print(f"logits vs runner's logits_last: max |diff| {diff:.2e}")
    if diff > 1e-3:
        failures.append("logits differ: the runner's model is not the project's model")
    backward_pos = int(np.count_nonzero(A[pos[None, :] > pos[:, None]]))
    feat_rows = np.where(kind == "feature")[0]
    src_cols = np.where((kind == "feature") | (kind == "error"))[0]
    same_or_later = layer[src_cols][None, :] >= layer[feat_rows][:, None]
    backward_layer = int(np.count_nonzero(A[np.ix_(feat_rows, src_cols)][same_or_later]))
    print(
        f"edges from later positions: {backward_pos}; into features from same/later layers: {backward_layer}"
    )
    if backward_pos or backward_layer:
        failures.append("edges run backward")

    if len(z["selected_features"]) < len(z["active_features"]):
        print("max_feature_nodes < active features: rows miss the dropped features, identity not checked")
        return 1 if failures else 0

    emb, srcs, mlp_in, final = linear_model(model, ids, rec, s_final)
    W = model.lm_head.weight
    worst = 0.0
    for row, tid in zip(np.where(kind == "logit")[0], z["logit_ids"]):
        target = final[0, -1] @ (W[tid] - W.mean(0))
        total, pos0 = split_effects(target, emb, srcs)
        demeaned = float(logits[tid] - logits.mean())
        rel = abs(A[row].sum() - (total - pos0)) / max(abs(total), 1e-6)
        worst = max(worst, rel)
        print(
            f"logit {tid}: demeaned {demeaned:.5f} = linear total {total:.5f}; position-0 MLP part {pos0:.5f}; "
            f"row sum {A[row].sum():.5f} vs total - pos0 {total - pos0:.5f} (rel {rel:.1e})"
        )
    rng = np.random.default_rng(0)
    tc = Path(args.transcoder_dir)
    for row in rng.choice(feat_rows, min(args.features, len(feat_rows)), replace=False):
        lyr, p, f = int(layer[row]), int(pos[row]), int(z["node_feature"][row])
        weights = load_file(str(tc / f"layer_{lyr}.safetensors"))
        target = mlp_in[lyr][0, p] @ weights["W_enc"][f]  # pre-activation minus b_enc
        total, pos0 = split_effects(target, emb, srcs)
        rel = abs(A[row].sum() - (total - pos0)) / max(abs(total), 1e-6)
        worst = max(worst, rel)
        print(
            f"feature L{lyr} p{p} f{f}: pre-act - b_enc {total:.5f} (activation {z['node_activation'][row]:.5f}); "
            f"position-0 MLP part {pos0:.5f}; row sum {A[row].sum():.5f} (rel {rel:.1e})"
        )
    print(f"worst relative difference: {worst:.1e}")
    if worst > 1e-4:
        failures.append(f"rows differ from the frozen model by {worst:.1e}")
    for f in failures:
        print("FAIL:", f, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
