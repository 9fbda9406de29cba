"""Writes notebooks/depass.ipynb (kept as code so the notebook's cells are reviewed as text)."""

from notebook_cells import code, md, write_notebook

cells = [
    md("# DePass and the HeadGrid\n\nDePass splits the model's forward pass into additive components: with "
       "attention weights and norm scales frozen at their real values, every component moves linearly "
       "through attention, and each MLP neuron's real output is shared among the components by a rule. The "
       "components plus a bias component sum **exactly** to the real hidden state, so each component's "
       "logit contribution is an exact share of the real logit."),
    code("import ipywidgets as widgets\nimport numpy as np\n\nimport attrwidgets as aw\n\n"
         "model = aw.load_model()"),
    md("## Token level: which prompt tokens make the answer\nOne component per position (the state entering "
       "layer 0, i.e. each token's embedding), plus `bias`. `completeness_error` is the largest relative "
       "difference between the sum of the components and the real final hidden state."),
    code("prompt = \"The capital of France is\"\n"
         "d = aw.depass(model, prompt, max_new_tokens=1)  # generate the answer, then decompose everything\n"
         "answer = d.tokens[-1]\n"
         "print(f\"answer {answer.clean!r}, completeness error {d.completeness_error:.1e}\")\n"
         "assert d.completeness_error < 1e-4  # exact up to float32: the components add up to the real state\n"
         "scores = d.logit_scores(answer.id)  # (positions, components)\n"
         "row = scores[-2]  # the position that predicts the answer\n"
         "for k, c in enumerate(d.components):\n"
         "    label = d.tokens[k].clean if c != \"bias\" else \"bias\"\n"
         "    print(f\"{label!r:>12}  {row[k]:+8.3f}\")\n"
         "print(\"sum\", row.sum().round(3), \"= the real logit\")"),
    md("Causality is exact: a token's component is zero at every earlier position."),
    code("T = len(d.tokens)\nlater = np.triu(np.ones((T, T), bool), 1)\n"
         "print(\"largest value of a token's component before it:\", np.abs(d.states[:, :T][later]).max())\n"
         "assert np.abs(d.states[:, :T][later]).max() == 0  # causal, exactly"),
    md("## Module and neuron level\nModule level splits the state at one layer into [the stream before the "
       "module, the module's output] and follows both to the end. Neuron level starts after the MLP (the "
       "upstream code starts before it and loses the MLP's output)."),
    code("mlp = aw.depass(model, prompt, level=\"module\", layer=20, module=\"mlp\")\n"
         "print(mlp.components, f\"error {mlp.completeness_error:.1e}\")\n"
         "assert mlp.completeness_error < 1e-4\n"
         "paris = model.tokenizer(\" Paris\")[\"input_ids\"][0]\n"
         "print(\"logit of ' Paris' from each:\", mlp.logit_scores(paris)[-1].round(3))\n"
         "neurons = aw.depass(model, prompt, level=\"neuron\", layer=20, neurons=[0, 1, 2], mlp_rule=\"taylor\")\n"
         "print(neurons.components, neurons.logit_scores(paris)[-1].round(3))"),
    md("## Subspace level\nAny split of the state entering a layer: here the projection on the ' Paris' "
       "unembedding direction and the remainder."),
    code("direction = model.model.lm_head.weight[paris].detach().numpy()[:, None]  # (D, 1)\n"
         "sub = aw.depass(model, prompt, level=\"subspace\", layer=10, components=[direction])\n"
         "print(sub.components, sub.logit_scores(paris)[-1].round(3))"),
    md("## Head contributions\nEvery (layer, head)'s exact share of the logit, one call for the whole grid."),
    code("heads = aw.head_contributions(model, prompt)\n"
         "print(repr(heads.target_text), heads.contributions.shape, f\"logit {heads.logit:.3f}\")\n"
         "top = np.argsort(-heads.contributions, axis=None)[:5]\n"
         "print(\"top heads (layer, head):\", [divmod(int(i), heads.n_heads) for i in top])"),
    md("## The live HeadGrid, linked to a TokenMatrix\nClick a generated token to recompute the grid for it; "
       "click a cell for the head's attention pattern and its per-token contribution. Both views share "
       "`selected_target`, so a click in one moves the other."),
    code("chat = [{\"role\": \"user\", \"content\": \"What is the capital of France?\"}]\n"
         "grid = aw.HeadGrid(model=model, prompt=chat, max_new_tokens=4)\n"
         "matrix = aw.TokenMatrix(model=model, prompt=chat, method=\"saliency\", max_new_tokens=4)\n"
         "link = widgets.link((matrix, \"selected_target\"), (grid, \"selected_target\"))\n"
         "widgets.VBox([matrix, grid, grid.chart()])"),
    code("matrix.selected_target = 1\ngrid.wait()\n"
         "print(grid.selected_target, np.nansum(grid.contributions).round(3))\n"
         "assert grid.selected_target == 1 and grid.error == \"\"  # the link carried the click"),
    md("The raw attention patterns of any supported model (no DePass), like BertViz's model view:"),
    code("aw.HeadGrid(model=model, prompt=prompt, max_new_tokens=0, mode=\"attention\")"),
]
write_notebook(cells, "notebooks/depass.ipynb")
