"""Writes notebooks/dlig.ipynb (kept as code so the notebook's cells are reviewed as text)."""

from notebook_cells import code, md, write_notebook

cells = [
    md("# Layer IG during generation (DLIG) and the step timeline\n\n"
       "Integrated gradients at any layer: `h` is that layer's output on the sequence, `h'` its output on a "
       "baseline sequence (every prompt token replaced by the pad token), and the forward pass **resumes right "
       "after the layer** with `h' + a (h - h')`. Each generated token is a row; each position a column."),
    code("import numpy as np\n\nimport attrwidgets as aw\n\nmodel = aw.load_model()\n"
         "chat = [{\"role\": \"user\", \"content\": \"What is the capital of France?\"}]"),
    md("## Three layers side by side\nThe same generated tokens explained at the embeddings, in the middle and "
       "near the top. Scores are the L2 norm over the hidden dimension (DLIG's per-token score); "
       "`signed_scores` keeps the signed sum. The completeness error of every row is reported: on this model "
       "the straight path is far from smooth, so read it before the scores."),
    code("results = {}\n"
         "for layer in (\"embeddings\", \"block 10\", \"block 25\"):\n"
         "    results[layer] = aw.layer_ig(model, chat, layer=layer, max_new_tokens=3, n_steps=32,\n"
         "                                 quadrature=\"gauss_legendre\")\n"
         "    r = results[layer]\n"
         "    print(f\"{layer:>10}: completeness error per row {np.round(r.completeness_error, 3)}\")\n"
         "    # the reported error is the true one: from the signed scores and f at the input and the baseline\n"
         "    gap = np.array(r.options[\"f_input\"]) - np.array(r.options[\"f_baseline\"])\n"
         "    true = abs(r.signed_scores.sum(1) - gap) / abs(gap)\n"
         "    assert np.allclose(r.completeness_error, true, rtol=1e-3, atol=1e-6), (layer, true)"),
    code("r = results[\"block 10\"]\n"
         "row = 0\n"
         "top = np.argsort(-r.scores[row])[:5]\n"
         "print(\"target\", repr(r.tokens[r.target_positions[row]].clean))\n"
         "for layer, res in results.items():\n"
         "    top = np.argsort(-res.scores[row])[:4]\n"
         "    print(f\"{layer:>10}:\", \", \".join(f\"{res.tokens[p].clean!r} {res.scores[row, p]:.2f}\" for p in top))"),
    md("Any result is an `Attribution`, so the TokenMatrix shows it, and the live TokenMatrix offers "
       "`layer_integrated_gradients` in its method selector."),
    code("import ipywidgets as widgets\n\n"
         "widgets.HBox([widgets.VBox([widgets.Label(layer), aw.TokenMatrix(r)]) for layer, r in results.items()])"),
    md("## A masked-diffusion language model\nA generic sampler in the style of LLaDA and Dream: mask tokens "
       "after the prompt, each step predicts every masked position at once and unmasks the most confident. At "
       "each step, layer IG explains every token it unmasked, with that token's own logit at its own position "
       "as the target. No masked-diffusion model ships in a PyPI package, so this runs a tiny random masked "
       "LM built in-process (`aw.load_model(path, masked_lm=True)` loads a real one)."),
    code("from attrwidgets.testing import tiny_masked_lm\n\n"
         "mlm = tiny_masked_lm()\n"
         "d = aw.dlig(mlm, \"the cat sat on the\", layer=\"block 0\", gen_length=8, denoising_steps=4, n_steps=16)\n"
         "print(d)\n"
         "for s in range(d.n_denoising_steps):\n"
         "    print(f\"step {s}: unmasks positions {[int(d.row_position[r]) for r in d.rows_at(s)]}\")\n"
         "assert sorted(d.row_position.tolist()) == list(range(d.n_prompt, d.length))  # each position once"),
    md("The CSV has one row per (step, unmasked token), the scores keyed by position: a repeated token never "
       "overwrites another."),
    code("import tempfile\nfrom pathlib import Path\n\n"
         "path = Path(tempfile.mkdtemp()) / \"steps.csv\"\nd.to_csv(path)\n"
         "print(path.read_text().splitlines()[0][:120])"),
    md("## The step timeline\nScrub the steps (masked positions show as masks, the tokens a step unmasks are "
       "highlighted), click an unmasked token for its attribution over every position, and read the steps x "
       "positions heatmap. Change the layer: the kernel runs the sampler and layer IG again (the last request "
       "wins, the previous result stays until the new one arrives)."),
    code("timeline = aw.DiffusionTimeline(d, model=mlm, prompt=\"the cat sat on the\", gen_length=8, denoising_steps=4,\n"
         "                                n_steps=16)\ntimeline"),
    code("timeline.layer = \"embeddings\"  # what the layer box does\ntimeline.wait()\n"
         "print(timeline.layer, timeline.error or \"ok\")\nassert timeline.error == \"\""),
]
write_notebook(cells, "notebooks/dlig.ipynb")
