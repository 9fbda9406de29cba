"""Writes notebooks/graph.ipynb (kept as code so the notebook's cells are reviewed as text)."""

from notebook_cells import code, md, write_notebook

cells = [
    md("# Attribution graphs and the GraphView\n\n"
       "An attribution graph explains one next-token prediction as a network of **direct, linear effects** in a "
       "*local replacement model* of this prompt: attention patterns and norm scales are frozen at their values on "
       "the prompt, so the residual stream is linear in what writes into it, and each edge is exactly a source's "
       "output times the gradient of the target it reaches (the 2025 circuit-tracing method).\n\n"
       "Two kinds of graph, one machinery:\n"
       "- **components** (no training): every attention head's and MLP's output at each position is a node;\n"
       "- **transcoder features**: each MLP is replaced by a sparse transcoder plus an error node, so the "
       "prompt is still reproduced exactly."),
    code("import tempfile\nfrom pathlib import Path\n\nimport numpy as np\n\nimport attrwidgets as aw\n\n"
         "model = aw.load_model()  # SmolLM2-135M-Instruct, embedded\n"
         "prompt = \"The capital of France is\""),
    md("## The component graph\nLogit nodes are the smallest set of top tokens with 95% of the probability "
       "(at most 10). Rows are targets, columns sources (`graph.adjacency`); the full matrix stays in the "
       "kernel."),
    code("graph = aw.attribution_graph(model, prompt, progress=False)\n"
         "print(graph)\n"
         "print(\"targets:\", graph.metadata[\"logit_tokens\"])\n"
         "print(f\"replacement {graph.replacement_score:.3f}, completeness {graph.completeness_score:.3f}\")\n"
         "logits = np.flatnonzero(graph.nodes.mask(\"logit\"))  # exact: a logit's in-edges add up to it\n"
         "assert np.allclose(graph.adjacency.numpy()[logits].sum(1), graph.nodes.activation[logits], rtol=1e-4, atol=1e-3)"),
    md("Pruning keeps the nodes that carry 80% of the influence on the logits (influence = the series "
       "A + A^2 + ... on the row-normalised |A|) and the edges that carry 98%; tokens and logits always stay. "
       "Labels need no feature database: a node's output read through the unembedding."),
    code("pruned = graph.prune(node_threshold=0.8, edge_threshold=0.98)\nprint(pruned)\n"
         "top = pruned.node_index[np.argsort(-pruned.influence)][:8]\n"
         "for i, label in zip(top, graph.labels(top)):\n"
         "    print(f\"{graph.nodes.node_id[i]:>12}  influence {graph.influence[i]:.3f}  {label}\")"),
    md("## The GraphView\nPosition across, layer upward; node size by influence, edge width by |weight|, colour "
       "by sign. Hover a node for its label and top edges; click it to highlight its paths; shift-click pins it. "
       "The sliders re-prune in the kernel; type another target (`\" Lyon\"`, `#1234`, or a contrast "
       "`\"Paris - Lyon\"`) or click a logit to rebuild the graph for it (the last request wins)."),
    code("view = aw.GraphView(graph)\nview"),
    code("view.selected_node = graph.nodes.node_id[top[0]]  # what a click does\n"
         "view.pinned = [graph.nodes.node_id[i] for i in top[:3]]\nprint(view.selected_node, view.pinned)"),
    md("## Intervene\nSet or ablate nodes and see the output move: `frozen=True` in the replacement model "
       "(patterns and norm scales frozen), `frozen=False` in the real model."),
    code("settable = [i for i in top if graph.nodes[i][\"kind\"] in (\"attention\", \"mlp\")]\n"
         "head = graph.nodes.node_id[settable[0]]\n"
         "for frozen in (True, False):\n"
         "    top_tokens = graph.intervene({head: 0.0}, frozen=frozen)[:3]\n"
         "    print(\"frozen\" if frozen else \"real  \", [(t[\"token\"], round(t[\"clean_prob\"], 3), "
         "round(t[\"prob\"], 3)) for t in top_tokens])"),
    md("## Other targets\nAny token, or the contrast logit(a) - logit(b): which nodes make Paris beat Lyon?"),
    code("contrast = graph.rebuild(targets=[(\" Paris\", \" Lyon\")])\n"
         "kept = contrast.prune().node_index\n"
         "print(contrast.metadata[\"logit_tokens\"], len(kept), \"nodes kept\")"),
    md("## Transcoder features\nWith a transcoder, each MLP becomes sparse features plus an error node (the graph "
       "stays exact). Train one for the model (`aw.train_transcoder(model, save=\"smollm2-plt\")`, minutes on a "
       "CPU; the README has the figures) or load a published one (`aw.load_transcoder(folder)`, our layout or "
       "circuit-tracer's), then:\n\n"
       "```python\ngraph = aw.attribution_graph(model, prompt, transcoder=transcoder, max_feature_nodes=2000)\n```\n\n"
       "Nodes are then token embeddings, active features (layer, position, feature), errors and logits; labels "
       "read each feature's decoder direction through the unembedding."),
    md("## Export\n`to_json` writes the pruned graph in the public graph viewer's JSON (nodes, links, metadata, "
       "qParams with the pins); `save` keeps the full graph (JSON header + safetensors, no pickle) for "
       "`aw.load_graph`."),
    code("folder = Path(tempfile.mkdtemp())\n"
         "viewer = view.to_viewer_json(folder / \"graph.json\")\n"
         "print(len(viewer[\"nodes\"]), \"nodes,\", len(viewer[\"links\"]), \"links, pinned\", viewer[\"qParams\"][\"pinnedIds\"])\n"
         "graph.save(folder / \"full.json\")\n"
         "again = aw.load_graph(folder / \"full.json\")\n"
         "print(again, np.allclose(again.influence, graph.influence))\n"
         "assert np.array_equal(again.adjacency.numpy(), graph.adjacency.numpy())"),
]
write_notebook(cells, "notebooks/graph.ipynb")
