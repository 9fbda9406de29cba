"""Attribution graphs (docs/methods/graph.md): transcoders, the frozen local replacement model, pruned graphs.

Transcoders
    transcoder.py        the Transcoder container and its forward (PLT / CLT, JumpReLU / ReLU / TopK, skip)
    transcoder_io.py     save / load: our layout and circuit-tracer's; transcoder_hub.py its hub config.yaml lists
    train.py             aw.train_transcoder; harvest.py (activations to a budget), train_model.py (the trainable
                         module, JumpReLU by straight-through), checkpoint.py (atomic checkpoints, resume)
The graph
    prompt.py            prompt -> ids (BOS rule); logit_targets.py the logit nodes (top-p set, names, contrasts)
    replacement.py       sources and target reads of a prompt's replacement model; transcoder_graph.py (features,
                         errors) and component_graph.py (heads and MLPs with frozen gates)
    sweep.py             batched backward sweeps: one adjacency row per target; rows.py orders and batches them
    attribution.py       aw.attribution_graph; engine.py (rebuild, labels) and intervene.py (graph.intervene)
Graph data
    node_table.py, graph.py   NodeTable, Graph, PrunedGraph; graph_write.py save and the viewer's JSON, graph_io.py load
    influence.py, pruning.py  node and edge influence, thresholds, pruning, replacement / completeness scores
"""
