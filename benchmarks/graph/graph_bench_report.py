"""Markdown tables for benchmarks/graph/bench_graph.py's result dict."""

from __future__ import annotations


def fmt_time(s: float) -> str:
    return f"{s:.2f} s" if s < 100 else f"{s:.0f} s"


def fmt_times(r: dict) -> str:
    times = r.get("times_s", [r["time_s"]])
    if len(times) == 1:
        return fmt_time(times[0])
    return f"{fmt_time(r['time_s'])} ({min(times):.1f}-{max(times):.1f})"


def fmt_mb(mb: float) -> str:
    return f"{mb / 1024:.2f} GB" if mb >= 1024 else f"{mb:.0f} MB"


def mfn(v) -> str:
    return "all" if v is None else str(v)


def scale_table(rows: list[dict], repeats: str) -> list[str]:
    out = [
        (
            f"| graph | tokens | max_feature_nodes | batch | active candidates | nodes | time, median of {repeats} "
            "(min-max) | peak RSS | rise over load |"
        ),
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        out.append(
            f"| {r['graph']} | {r['n_pos']} | {mfn(r['max_feature_nodes'])} | {r['batch_size']} | "
            f"{r['active_candidates']:,} | {r['n_nodes']:,} | {fmt_times(r)} | {fmt_mb(r['peak_rss_mb'])} | "
            f"{fmt_mb(r['peak_rss_mb'] - r['rss_after_load_mb'])} |"
        )
    return out


def batch_table(batch: dict, default: int) -> list[str]:
    out = ["| batch | time | peak RSS | nodes |", "|---|---|---|---|"]
    for r in batch["runs"]:
        tag = " (fastest)" if r["batch_size"] == batch["best"] else ""
        tag += " (current default)" if r["batch_size"] == default else ""
        out.append(
            f"| {r['batch_size']}{tag} | {fmt_times(r)} | {fmt_mb(r['peak_rss_mb'])} | {r['n_nodes']:,} |"
        )
    return out


def ct_tables(ct: dict) -> list[str]:
    if "missing" in ct:
        return [f"circuit-tracer: {ct['missing']}"]
    out = []
    if ct.get("ct_batch_sweep"):
        out += [
            "circuit-tracer's batch size (16 tokens, max_feature_nodes 1024):",
            "",
            "| circuit-tracer batch | time | phases (forward / logit rows / feature rows) | peak RSS |",
            "|---|---|---|---|",
        ]
        for r in ct["ct_batch_sweep"]:
            ph = r["phases"]
            out.append(
                f"| {r['batch_size']}{' (fastest)' if r['batch_size'] == ct['ct_batch'] else ''} | "
                f"{fmt_times(r)} | {ph.get('forward_s', 0):.1f} / {ph.get('logit_rows_s', 0):.1f} / "
                f"{ph.get('feature_rows_s', 0):.1f} s | {fmt_mb(r['peak_rss_mb'])} |"
            )
        out.append("")
    out += [
        (
            "| tokens | max_feature_nodes | batch ours / ct | active features ours / ct | nodes ours / ct | "
            "features kept by both | attrwidgets | circuit-tracer | ct / ours | peak RSS ours | peak RSS ct | "
            "max abs diff | max abs A | diff / max |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p in ct["pairs"]:
        o, c, a = p["ours"], p["ct"], p["agreement"]
        out.append(
            f"| {p['n_pos']} | {mfn(p['max_feature_nodes'])} | {o['batch_size']} / {c['batch_size']} | "
            f"{o['active_candidates']:,} / {c['active_candidates']:,} | {o['n_nodes']:,} / {c['n_nodes']:,} | "
            f"{a['features_matched']:,} | {fmt_times(o)} | {fmt_times(c)} | {p['time_ratio_ct_over_ours']:.1f}x | "
            f"{fmt_mb(o['peak_rss_mb'])} | {fmt_mb(c['peak_rss_mb'])} | {a['max_abs_diff']:.2e} | "
            f"{a['max_abs_ct']:.3g} | {a['rel_to_max']:.1e} |"
        )
    for p in ct["pairs"]:
        a = p["agreement"]
        oc, oo = a["only_ct"], a["only_ours"]
        out.append(
            f"\n{p['n_pos']} tokens: same input ids on both sides: {p['same_input_ids']}; same logit targets: "
            f"{a['same_logits']}; largest activation difference of matched features {a['max_activation_diff']:.1e}. "
            f"Only in circuit-tracer: {oc['count']} nodes {oc['by_kind']}: {oc['position0_errors']} position-0 error nodes "
            f"(their columns' max |A| {oc['position0_errors_max_abs_column']:.1e}) and the features only its ranking "
            f"kept (columns' max |A| {oc['others_max_abs_column']:.3g}); only in ours: {oo['count']} {oo['by_kind']}."
        )
        if a.get("worst_entry"):
            w = a["worst_entry"]
            out.append(
                f"Largest difference at target {w['target']} <- source {w['source']}: ours {w['ours']:.6g}, "
                f"circuit-tracer {w['ct']:.6g}."
            )
    for s in ct.get("skipped", []):
        out.append(f"\nNot run: circuit-tracer at {s}.")
    return out


def train_lines(train: dict) -> list[str]:
    out = []
    if "missing" in train:
        out.append(train["missing"])
    elif "ours" in train:
        r = train["ours"]
        t = r["training"]
        out += [
            (
                "| steps | features/layer | batch tokens | harvested tokens | harvest tokens/s | train tokens/s | "
                "train time | peak RSS |"
            ),
            "|---|---|---|---|---|---|---|---|",
            (
                f"| {t.get('steps')} | {r['n_features']} | {t.get('batch_tokens')} | {t.get('tokens')} | "
                f"{t.get('harvest_tokens_per_s')} | {t.get('train_tokens_per_s')} | {t.get('train_s')} s | "
                f"{fmt_mb(r['peak_rss_mb'])} |"
            ),
        ]
    if train.get("ours", {}).get("default_failed"):
        out.append(
            f"\nWith the default settings training failed ({train['ours']['default_failed']}); the figures "
            f"above are with skip=False."
        )
    for h in train.get("helper_results", []):
        figs = ", ".join(f"{k} = {v}" for k, v in h["tokens_per_s"].items()) or h.get(
            "note", "no tokens/s figures"
        )
        out.append(f"\nFrom {h['file']}: {figs}")
    return out


def markdown(result: dict) -> str:
    st = result["settings"]
    lines = [
        (
            f"PLT: {st['plt_which']}. SmolLM2-135M-Instruct, float32, CPU, {st['threads']} torch threads, "
            f"max_logits {st['max_logits']}, logit_prob {st['logit_prob']}; prompt: natural text, BOS id 1 first "
            '(16 ids: "The capital of France is Paris, and the capital of Germany is the city"). Time excludes '
            "model and transcoder loading; peak RSS is the process's (load + graph)."
        ),
        "",
    ]
    if st.get("resumed_sections"):
        lines += [
            (
                f"Sections {', '.join(st['resumed_sections'])}: kept from an earlier, interrupted invocation "
                "(--resume); the others were measured in this one."
            ),
            "",
        ]
    st_rep = f"{st['repeats']}, runs over {st.get('repeat_limit_s', 0):.0f} s once"
    sections = {
        "scale": (
            "### attrwidgets: graph cost vs prompt length",
            lambda v: scale_table(v, st_rep),
        ),
        "batch": (
            "### attrwidgets: batch size (16-token transcoder graph, every active feature)",
            lambda v: [
                *batch_table(v, st["default_batch"]),
                "",
                f"Fastest: batch_size={v['best']} (DEFAULT_BATCH is {st['default_batch']}).",
            ],
        ),
        "ct": (
            "### Side by side with circuit-tracer 0.5 (same PLT, same ids, each side in its own process)",
            ct_tables,
        ),
        "train": ("### Transcoder training throughput (aw.train_transcoder, brief run)", train_lines),
    }
    for name, (title, body) in sections.items():
        if name not in result:
            continue
        value = result[name]
        failed = isinstance(value, dict) and "error" in value
        lines += [title, "", *([f"FAILED: {value['error']}"] if failed else body(value)), ""]
    shares = []
    if isinstance(result.get("scale"), list):
        shares += [r["run"]["others_share"] for r in result["scale"]]
    for r in result.get("batch", {}).get("runs", []):
        shares.append(r["run"]["others_share"])
    for p in result.get("ct", {}).get("pairs", []):
        shares += [p["ours"]["run"]["others_share"], p["ct"]["run"]["others_share"]]
    for r in result.get("ct", {}).get("ct_batch_sweep", []):
        shares.append(r["run"]["others_share"])
    shares = [s for s in shares if s is not None]
    if shares:
        lines.append(
            f"Other processes took at most {max(shares):.1%} of the CPU during any timed run; the whole "
            f"benchmark took {result['wall_s'] / 60:.1f} min."
        )
    return "\n".join(lines) + "\n"
