"""attrwidgets graph "prompt" [--transcoder DIR] -o graph.json|graph.html   (and --save full.json)

-o .json writes the PRUNED graph in the public graph viewer's JSON (opens there); -o .html a standalone page of
the GraphView; --save keeps the full graph (JSON header + safetensors) for aw.load_graph.
"""

from __future__ import annotations

from pathlib import Path

from attrwidgets.errors import AttrWidgetsError


def add_graph_parser(sub) -> None:
    g = sub.add_parser("graph", help="the attribution graph of a prompt (components, or transcoder features)")
    g.add_argument("prompt", help="the prompt text")
    g.add_argument("--model", default=None, help="HF id or local folder (default: embedded SmolLM2)")
    g.add_argument("--transcoder", default=None, help="a transcoder folder (ours or circuit-tracer's layout); "
                   "none: a graph of attention heads and MLP outputs")
    g.add_argument("--max-logits", type=int, default=10)
    g.add_argument("--logit-prob", type=float, default=0.95)
    g.add_argument("--max-feature-nodes", type=int, default=None, help="keep the most influential ones (default: all)")
    g.add_argument("--target", action="append", default=None,
                   help="a target token (repeatable); 'a - b' for the contrast logit(a) - logit(b)")
    g.add_argument("--batch-size", type=int, default=None)
    g.add_argument("--node-threshold", type=float, default=0.8)
    g.add_argument("--edge-threshold", type=float, default=0.98)
    g.add_argument("--device", default="auto")
    g.add_argument("--save", default=None, help="also save the full graph (x.json + x.safetensors)")
    g.add_argument("-o", "--output", default=None, help="graph.json (viewer JSON, pruned) or graph.html")


def _targets(items):
    if not items:
        return None
    out = []
    for item in items:
        a, sep, b = item.partition(" - ")
        out.append((a, b) if sep else item)
    return out


def run_graph(args) -> int:
    import attrwidgets as aw

    suffix = Path(args.output).suffix.lower() if args.output else None
    if suffix not in (None, ".json", ".html"):
        raise AttrWidgetsError(f"Cannot write {args.output!r}: the output must end in .json (viewer) or .html.")
    handle = aw.load_model(args.model, device=args.device)
    graph = aw.attribution_graph(handle, args.prompt, transcoder=args.transcoder, max_logits=args.max_logits,
                                 logit_prob=args.logit_prob, max_feature_nodes=args.max_feature_nodes,
                                 batch_size=args.batch_size, targets=_targets(args.target))
    pruned = graph.prune(args.node_threshold, args.edge_threshold)
    print(f"{graph!r}\n{pruned!r}\nreplacement score {graph.replacement_score:.3f}, "
          f"completeness score {graph.completeness_score:.3f}")
    if args.save:
        print(f"saved {graph.save(args.save)}")
    if suffix == ".json":
        graph.to_viewer_json(args.output, node_threshold=args.node_threshold, edge_threshold=args.edge_threshold)
    elif suffix == ".html":
        from attrwidgets.widgets.graph_html import graph_to_html

        graph_to_html(graph, args.output, node_threshold=args.node_threshold, edge_threshold=args.edge_threshold)
    if suffix:
        print(f"wrote {args.output}")
    else:
        kept = pruned.node_index[:12]
        for i, label in zip(kept.tolist(), graph.labels(kept)):
            print(f"  {graph.nodes.node_id[i]:>16}  {label}")
    return 0
