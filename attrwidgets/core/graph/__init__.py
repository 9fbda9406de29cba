"""Attribution graphs (METHODS.md section 5): transcoders, the frozen local replacement model, pruned graphs.

    transcoder.py      the Transcoder container and its forward
    transcoder_io.py   save / load (our layout and circuit-tracer's)
    train.py           aw.train_transcoder
    replacement.py     the frozen local replacement model and its batched backward sweeps
    attribution.py     aw.attribution_graph
    graph.py           Graph, NodeTable, PrunedGraph; graph_io.py save / load / viewer JSON
    influence.py       node and edge influence, pruning
"""
