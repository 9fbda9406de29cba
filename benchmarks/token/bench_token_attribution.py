"""Token attribution during generation: attrwidgets vs Inseq vs Captum's LLMGradientAttribution, same work.

    python benchmarks/token/bench_token_attribution.py                  # full run (waits for a quiet machine)
    python benchmarks/token/bench_token_attribution.py --quick          # smoke test: few steps, no waiting
    python benchmarks/token/bench_token_attribution.py --tools attrwidgets,captum --no-wait

Job: the default model (SmolLM2-135M-Instruct, fp32, CPU), a chat prompt rendered with the tokenizer's own
template, 8 greedy tokens generated ONCE by attrwidgets and then FORCED on every tool (attrwidgets
target=..., Captum target=..., Inseq generated_texts=prompt+continuation), so every tool attributes the
same 8 targets to the same prefixes. Methods: integrated gradients (32 steps), saliency, input x gradient;
objective: log p(target | prefix) for all tools.

Equal IG settings. Both peers interpolate from the embedding of token 0 (<|endoftext|>, the unk token), not
from a zero vector, and they differ in WHICH positions move along the path:
  * Captum LLMGradientAttribution: only the prompt positions; the generated prefix stays at its real
    embeddings. attrwidgets gets the same path via a baseline tensor: emb(0) at prompt positions, the real
    embedding at generated positions (delta 0 there). Rule: riemann_right in both.
  * Inseq: every position of the prefix (prompt and generated) except EOS tokens (<|im_end|>), whose
    baseline is themselves. attrwidgets gets the same baseline tensor. Rule: Gauss-Legendre in both (Inseq
    passes captum's `method=` nowhere: its own `method` argument shadows it).
The baseline changes the numbers, not the cost, so attrwidgets' time is the same for either path.

Every (tool, method) runs in its own subprocess: model load, one warm-up (reported, excluded), timed runs
(wall: time.perf_counter, torch.set_num_threads(2)), and the peak RSS of the timed run (Linux: VmHWM after
resetting it through /proc/self/clear_refs; elsewhere a 2 ms psutil sampler). Results: a table on stdout
and JSON in benchmarks/results/token_attribution.json.

Contention: the full run first waits (up to --max-wait s) until other processes use at most --max-other of
the machine's CPU (harness.wait_for_quiet, /proc/stat). During every timed run it measures the CPU that OTHER
processes took (/proc/stat busy time minus its own); a job disturbed beyond --max-other is run again after the
machine quietens (--retries). The 1-minute load is recorded but not used: its own 2 threads put it near 2.

--profile adds a job that splits attrwidgets' IG time (forward / backward / the rest), lists the top
operators (torch.profiler) and A/B-tests the previous per-target backward loop against the installed core.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root, for `benchmarks.*`
from benchmarks.harness import RESULTS, cpu_seconds, loadavg, machine_busy_seconds, wait_for_quiet

DEFAULT_OUT = RESULTS / "token_attribution.json"
MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "What is the capital of France? Answer in one short sentence."},
]
TOOLS = ("attrwidgets", "captum", "inseq")
METHODS = ("saliency", "input_x_gradient", "integrated_gradients")
# attrwidgets-only extra jobs (own subprocesses too)
AW_EXTRA = ("ig_inseq_path", "ig_batch_all", "ig_default", "widget")


# ---------------------------------------------------------------------------------------------- memory
class PeakRSS:
    """Peak resident set size of this process over a `with` block, in bytes."""

    def __init__(self):
        self.peak = None
        self.method = None

    @staticmethod
    def _status(field: str) -> int | None:
        try:
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith(field + ":"):
                        return int(line.split()[1]) * 1024
        except OSError:
            return None
        return None

    @staticmethod
    def _reset_hwm() -> bool:
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
            return True
        except OSError:
            return False

    def __enter__(self):
        self._stop = threading.Event()
        if self._reset_hwm() and self._status("VmHWM") is not None:
            self.method = "VmHWM"
        else:
            import psutil

            self.method = "psutil-sampler-2ms"
            proc = psutil.Process()
            self._sampled = proc.memory_info().rss

            def sample():
                while not self._stop.is_set():
                    self._sampled = max(self._sampled, proc.memory_info().rss)
                    time.sleep(0.002)

            self._thread = threading.Thread(target=sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        if self.method == "VmHWM":
            self.peak = self._status("VmHWM")
        else:
            self._stop.set()
            self._thread.join()
            self.peak = self._sampled
        return False


def rss_now() -> int | None:
    return PeakRSS._status("VmRSS")


class OtherCPU:
    """CPU-seconds used by OTHER processes during a `with` block (machine busy time minus ours)."""

    def __init__(self, who=resource.RUSAGE_SELF):
        self.who = who
        self.seconds = None

    def __enter__(self):
        self._m, self._c = machine_busy_seconds(), cpu_seconds(self.who)
        return self

    def __exit__(self, *exc):
        m = machine_busy_seconds()
        if m is not None and self._m is not None:
            self.seconds = max(0.0, (m - self._m) - (cpu_seconds(self.who) - self._c))
        return False


# ---------------------------------------------------------------------------------------------- worker
def _setup_torch(threads: int):
    import torch

    torch.set_num_threads(threads)
    return torch


def _load(spec):
    import attrwidgets as aw

    handle = aw.load_model()
    return aw, handle


def _baselines(handle, spec):
    """The two peer paths as attrwidgets baseline tensors (n_positions, D)."""
    import torch

    emb = handle.adapter.embedding(handle.model).weight.detach()
    ids = torch.tensor(spec["ids"])
    unk, eos = spec["unk_id"], spec["eos_id"]
    captum_path = emb[ids].clone()
    captum_path[: spec["n_prompt"]] = emb[unk]
    inseq_path = emb[ids].clone()
    inseq_path[ids != eos] = emb[unk]
    return captum_path, inseq_path


def _runner_attrwidgets(task, handle, spec, cfg):
    import attrwidgets as aw

    captum_path, inseq_path = _baselines(handle, spec)
    steps = cfg["n_steps"]
    equal = {"n_steps": steps, "quadrature": "riemann_right", "baseline": captum_path, "objective": "log_prob"}
    jobs = {
        "saliency": ("saliency", {}),
        "input_x_gradient": ("input_x_gradient", {}),
        "integrated_gradients": ("integrated_gradients", equal),
        "ig_inseq_path": ("integrated_gradients", {**equal, "quadrature": "gauss_legendre", "baseline": inseq_path}),
        "ig_batch_all": ("integrated_gradients", {**equal, "batch_size": steps}),
        "ig_default": ("integrated_gradients", ({"n_steps": cfg["default_steps"]} if cfg["quick"] else {})),
    }
    method, options = jobs[task]
    warm_options = dict(options)
    if method == "integrated_gradients":
        warm_options["n_steps"] = min(options.get("n_steps", 128), cfg["warm_steps"])
        if warm_options.get("quadrature", "adaptive") == "adaptive":
            warm_options["n_steps"] = max(warm_options["n_steps"], 4)
    session_box = {}

    def run(warm: bool):
        # End to end, like the peers' attribute(): tokenize, force the target, attribute every row.
        r = aw.attribute(handle, spec["messages"], method=method, target=spec["target"], progress=False,
                         **(warm_options if warm else options))
        session_box["last"] = r
        return r.scores

    def extras():
        out = {"options": {k: (v if not hasattr(v, "shape") else f"tensor{tuple(v.shape)}")
                           for k, v in options.items()}}
        r = session_box["last"]
        out["resolved_options"] = {k: v for k, v in r.options.items() if k not in ("f_input", "f_baseline")}
        if r.completeness_error is not None:
            out["completeness_error"] = [float(x) for x in r.completeness_error]
        # session.compute alone (what a live widget pays once the session exists), best of 3 for cheap ones
        session = aw.AttributionSession(handle, spec["messages"], target=spec["target"])
        reps = 3 if method != "integrated_gradients" else 0
        compute_times = []
        for _ in range(reps):
            t = time.perf_counter()
            session.compute(method, progress=False, **options)
            compute_times.append(time.perf_counter() - t)
        if compute_times:
            out["compute_only_s"] = compute_times
        if method == "saliency":  # signed gradient sum over D, to check against Captum's gradient
            pd = session.compute("saliency", progress=False, per_dim=True).per_dim
            out["grad_sum"] = np.asarray(pd).sum(-1).tolist()
        return out

    return run, extras


def _runner_captum(task, handle, spec, cfg):
    from captum.attr import (
        LayerGradientXActivation,
        LayerIntegratedGradients,
        LLMGradientAttribution,
        TextTokenInput,
    )

    model, tok = handle.model, handle.tokenizer
    layer = model.get_input_embeddings()
    if task == "integrated_gradients":
        algo, kwargs = LayerIntegratedGradients(model, layer), {"n_steps": cfg["n_steps"], "method": "riemann_right"}
        warm_kwargs = {**kwargs, "n_steps": cfg["warm_steps"]}
    elif task == "input_x_gradient":
        algo, kwargs = LayerGradientXActivation(model, layer), {}
        warm_kwargs = kwargs
    elif task == "saliency":
        # LLMGradientAttribution supports no plain Saliency: the layer gradient (multiply_by_inputs=False),
        # which it sums over D. Same work as saliency (1 forward + 1 backward per target); a signed sum, not
        # the L2 norm, so it is checked against attrwidgets' per-dimension gradient summed over D.
        algo, kwargs = LayerGradientXActivation(model, layer, multiply_by_inputs=False), {}
        warm_kwargs = kwargs
    else:
        raise ValueError(task)
    llm = LLMGradientAttribution(algo, tok)

    def run(warm: bool):
        inp = TextTokenInput(spec["prompt_text"], tok, baselines=spec["unk_id"])
        res = llm.attribute(inp, target=spec["target"], **(warm_kwargs if warm else kwargs))
        return res.token_attr.detach().float().cpu().numpy()

    def extras():
        return {"options": {k: v for k, v in kwargs.items()}, "algorithm": type(algo).__name__,
                "baseline_token_id": spec["unk_id"]}

    return run, extras


def _runner_inseq(task, handle, spec, cfg):
    import inseq

    model, tok = handle.model, handle.tokenizer
    # SmolLM2's config says pad_token_id = eos = <|im_end|>; Inseq then drops every <|im_end|> from its output
    # as if it were left padding (2 prompt tokens and the 8th target vanish). Point pad at <|endoftext|>
    # (absent from the text) so Inseq keeps all 41 positions and 8 targets; the forward pass is unchanged.
    model.config.pad_token_id = spec["unk_id"]
    im = inseq.load_model(model, task, tokenizer=tok)
    kwargs = {"attributed_fn": "probability", "attributed_fn_args": {"logprob": True}, "show_progress": False}
    warm_kwargs = dict(kwargs)
    if task == "integrated_gradients":
        kwargs.update(n_steps=cfg["n_steps"], internal_batch_size=cfg["n_steps"])  # captum default: gausslegendre
        warm_kwargs.update(n_steps=cfg["warm_steps"], internal_batch_size=cfg["warm_steps"])

    def run(warm: bool):
        out = im.attribute(spec["prompt_text"], spec["prompt_text"] + spec["target"], **(warm_kwargs if warm else kwargs))
        ta = out.sequence_attributions[0].target_attributions  # (positions, targets, D)
        ta = ta.detach().float().cpu()
        if task == "saliency":  # Saliency(abs=True) per dimension -> L2 over D = attrwidgets saliency
            red = ta.norm(dim=-1)
        else:
            red = ta.sum(-1)
        return red.T.numpy()  # (targets, positions); NaN at positions after each target's prefix

    def extras():
        return {"options": {k: v for k, v in kwargs.items() if k != "show_progress"},
                "quadrature": "gausslegendre (captum default, via inseq)" if task == "integrated_gradients" else None,
                "baseline": f"embedding of unk id {spec['unk_id']}, EOS positions keep their own"}

    return run, extras


def _widget_job(handle, spec, cfg) -> dict:
    """Cached click -> redraw proxy on the live TokenMatrix (Python side: observer, cache, trait sync)."""
    from attrwidgets.widgets.token_matrix import TokenMatrix

    reps = cfg["widget_reps"]
    out = {}
    t = time.perf_counter()
    w = TokenMatrix(model=handle, prompt=spec["messages"], target=spec["target"], method="saliency")
    w.wait()
    out["first_draw_saliency_s"] = time.perf_counter() - t
    changes: list[float] = []
    w.observe(lambda ch: changes.append(time.perf_counter()), names="scores")
    n = len(w.target_positions)

    def timed_set(name, value):
        changes.clear()
        t0 = time.perf_counter()
        setattr(w, name, value)
        t1 = time.perf_counter()
        w.wait()
        t2 = time.perf_counter()
        return {"set_s": t1 - t0, "until_idle_s": t2 - t0,
                "scores_changed_s": (changes[0] - t0) if changes else None}

    sel = [timed_set("selected_target", (k % (n - 1)) + 1 if k % 2 == 0 else 0) for k in range(reps)]
    out["select_cached_row_saliency"] = sel
    # Switching to a method computed before: the cache is shown, `scores` changes (and is synced).
    first = timed_set("method", "input_x_gradient")
    out["first_switch_to_input_x_gradient"] = first
    switch = [timed_set("method", m) for m in (["saliency", "input_x_gradient"] * reps)[:reps]]
    out["switch_cached_method"] = switch
    # Integrated gradients: rows computed on demand; then clicking between two computed rows.
    w.n_steps = cfg["widget_ig_steps"]  # first, so that no 128-step job starts
    t = time.perf_counter()
    w.method = "integrated_gradients"
    w.wait()
    out["ig_first_row_s"] = time.perf_counter() - t
    r0 = int(w.selected_target)
    r1 = 1 if r0 != 1 else 2
    out["ig_uncached_row"] = [timed_set("selected_target", r1)]
    out["select_cached_row_ig"] = [timed_set("selected_target", r0 if k % 2 == 0 else r1) for k in range(reps)]
    from attrwidgets.widgets.serialization import serialize_tensor

    t = time.perf_counter()
    for _ in range(100):
        msg = serialize_tensor(w.scores)
    out["serialize_scores_us"] = (time.perf_counter() - t) / 100 * 1e6
    out["scores_bytes"] = len(msg["buffer"])
    w.close()
    return out


def _loop_values_and_grads(self, x):
    """The previous core (before 8787d48): one backward per target through the shared graph.

    For the A/B against the current core, which seeds all targets in one vmapped backward.
    """
    import contextlib

    import torch

    from attrwidgets.core import forward

    frozen = getattr(forward, "frozen_parameters", None)
    self.check_cancel()
    x = x.detach().to(self.dtype).requires_grad_(True)
    with torch.enable_grad(), (frozen(self.model) if frozen else contextlib.nullcontext()):
        vals = self.values(x)
        grads = torch.stack([torch.autograd.grad(vals[:, j].sum(), x, retain_graph=j < self.n_targets - 1)[0].float()
                             for j in range(self.n_targets)], dim=1)
    return vals.detach().float(), grads


def _profile_job(handle, spec, cfg) -> dict:
    """Where attrwidgets' IG time goes, and an A/B: the previous per-target backward loop vs the core's.

    Order matters: the A/B runs first, in a process the profiler has not touched yet (after a profiler
    session, the many small autograd nodes of the loop variant run slower and would fake a difference).
    """
    import torch
    from torch.profiler import ProfilerActivity, profile

    import attrwidgets as aw
    from attrwidgets.core.forward import TargetFunction

    captum_path, _ = _baselines(handle, spec)
    ig = {"n_steps": cfg["n_steps"], "quadrature": "riemann_right", "baseline": captum_path}
    session = aw.AttributionSession(handle, spec["messages"], target=spec["target"])
    session.compute("integrated_gradients", progress=False, **{**ig, "n_steps": 2})  # warm-up
    orig_values, orig_vg = TargetFunction.values, TargetFunction.values_and_grads
    out = {}
    # 1. A/B, interleaved: "loop" = one backward per target (previous core), "core" = the installed core
    ab = {m: {"loop": [], "core": [], "loop_peak_rss": 0, "core_peak_rss": 0, "other_cpu_s": []}
          for m in ("saliency", "integrated_gradients")}
    scores = {}
    for method, options, reps in (("saliency", {}, 5), ("integrated_gradients", ig, 2)):
        for _ in range(reps):
            for variant in ("loop", "core"):
                TargetFunction.values_and_grads = orig_vg if variant == "core" else _loop_values_and_grads
                with PeakRSS() as mem, OtherCPU() as other:
                    t = time.perf_counter()
                    r = session.compute(method, progress=False, **options)
                    ab[method][variant].append(time.perf_counter() - t)
                ab[method][f"{variant}_peak_rss"] = max(ab[method][f"{variant}_peak_rss"], mem.peak or 0)
                ab[method]["other_cpu_s"].append(other.seconds)
                scores[(method, variant)] = r.scores
        TargetFunction.values_and_grads = orig_vg
        ab[method]["max_abs_diff"] = float(np.nanmax(np.abs(scores[(method, "core")] - scores[(method, "loop")])))
    out["ab_backward_loop_vs_core"] = ab
    # 2. split: forward with graph / backward loop / forward without graph / the rest
    acc = {"forward_graph": 0.0, "forward_nograd": 0.0, "values_and_grads": 0.0, "calls": 0}

    def values(self, x):
        t = time.perf_counter()
        r = orig_values(self, x)
        acc["forward_graph" if torch.is_grad_enabled() else "forward_nograd"] += time.perf_counter() - t
        return r

    def vg(self, x):
        t = time.perf_counter()
        r = orig_vg(self, x)
        acc["values_and_grads"] += time.perf_counter() - t
        acc["calls"] += 1
        return r

    TargetFunction.values, TargetFunction.values_and_grads = values, vg
    try:
        with OtherCPU() as other:
            t = time.perf_counter()
            res = session.compute("integrated_gradients", progress=False, **ig)
            total = time.perf_counter() - t
    finally:
        TargetFunction.values, TargetFunction.values_and_grads = orig_values, orig_vg
    out["split_s"] = {"total": total, "forward_with_graph": acc["forward_graph"],
                      "backward (all targets)": acc["values_and_grads"] - acc["forward_graph"],
                      "forward_no_grad (f(x), f(baseline))": acc["forward_nograd"],
                      "rest (quadrature, copies)": total - acc["values_and_grads"] - acc["forward_nograd"],
                      "chunks": acc["calls"], "batch_size": res.options.get("batch_size"),
                      "other_cpu_s": other.seconds}
    # 3. operator table of one IG run (last: see above)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        session.compute("integrated_gradients", progress=False, **ig)
    ops = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    tot = sum(e.self_cpu_time_total for e in ops) or 1
    out["top_ops"] = [{"op": e.key, "self_cpu_s": e.self_cpu_time_total / 1e6, "share": e.self_cpu_time_total / tot,
                       "calls": e.count} for e in ops[:12]]
    return out


def worker_main(args) -> None:
    spec = json.loads(Path(args.spec).read_text())
    cfg = spec["cfg"]
    tool, task = args.worker.split(":")
    result = {"tool": tool, "task": task, "load_before": loadavg()}
    torch = _setup_torch(cfg["threads"])
    result["torch_threads"] = torch.get_num_threads()
    t = time.perf_counter()
    aw, handle = _load(spec)
    result["model_load_s"] = time.perf_counter() - t
    result["rss_after_load"] = rss_now()
    if task == "widget":
        result["widget"] = _widget_job(handle, spec, cfg)
    elif task == "profile":
        result["profile"] = _profile_job(handle, spec, cfg)
    elif task == "prepare":
        result.update(_prepare(aw, handle, cfg))
    else:
        builder = {"attrwidgets": _runner_attrwidgets, "captum": _runner_captum, "inseq": _runner_inseq}[tool]
        t = time.perf_counter()
        run, extras = builder(task, handle, spec, cfg)
        result["setup_s"] = time.perf_counter() - t
        t = time.perf_counter()
        run(warm=True)
        result["warmup_s"] = time.perf_counter() - t
        heavy = task in ("integrated_gradients", "ig_inseq_path", "ig_batch_all", "ig_default")
        reps = cfg["ig_reps"] if heavy else cfg["cheap_reps"]
        times, cpu, peaks, others = [], [], [], []
        for _ in range(reps):
            with PeakRSS() as mem, OtherCPU() as other:
                c0, t0 = cpu_seconds(), time.perf_counter()
                scores = run(warm=False)
                times.append(time.perf_counter() - t0)
                cpu.append(cpu_seconds() - c0)
            peaks.append(mem.peak)
            others.append(other.seconds)
        result.update(times_s=times, cpu_s=cpu, other_cpu_s=others, peak_rss=max(p for p in peaks if p is not None) if any(peaks) else None,
                      peak_rss_method=mem.method, scores=np.asarray(scores, dtype=np.float64).tolist())
        result.update(extras())
    result["maxrss_process"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    result["load_after"] = loadavg()
    Path(args.result).write_text(json.dumps(result, default=_json_default))


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return repr(o)


# ---------------------------------------------------------------------------------------------- prepare
def _matmul_rate(torch, n: int, m: int, k: int, seconds: float = 1.5) -> float:
    a, b = torch.randn(n, k), torch.randn(k, m)
    for _ in range(3):
        a @ b
    reps, t = 0, time.perf_counter()
    while True:
        torch.matmul(a, b)
        reps += 1
        elapsed = time.perf_counter() - t
        if elapsed > seconds and reps >= 3:
            return 2.0 * n * m * k * reps / elapsed / 1e9


def _prepare(aw, handle, cfg) -> dict:
    import torch

    session = aw.AttributionSession(handle, MESSAGES, max_new_tokens=cfg["max_new_tokens"])
    seq = session.sequence
    tok = handle.tokenizer
    target_ids = seq.target_ids
    target = tok.decode(target_ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
    again = tok(target, add_special_tokens=False)["input_ids"]
    if again != target_ids:
        raise SystemExit(f"continuation {target!r} does not re-tokenize to {target_ids} (got {again})")
    full = tok(seq.prompt_text + target)["input_ids"]
    if full != seq.input_ids.tolist():
        raise SystemExit("prompt + continuation does not tokenize to the same ids as prompt ids + target ids")
    cfgm = handle.model.config
    n_params = sum(p.numel() for p in handle.model.parameters())
    emb = handle.adapter.embedding(handle.model).weight
    head = handle.adapter.lm_head(handle.model).weight
    n_embedding = emb.numel() + (0 if head.data_ptr() == emb.data_ptr() else head.numel())
    d, inter = cfgm.hidden_size, cfgm.intermediate_size
    length = max(seq.target_positions)  # attrwidgets truncates after the last target's prefix
    rates = {
        "square_2048": _matmul_rate(torch, 2048, 2048, 2048),
        # the MLP up-projection of a 27-point IG chunk: (27*40 tokens) x 576 @ 576 x 1536
        "model_mlp_1080x576x1536": _matmul_rate(torch, 1080, inter, d),
        "model_mlp_40x576x1536": _matmul_rate(torch, length, inter, d),
    }
    return {
        "messages": MESSAGES, "prompt_text": seq.prompt_text, "ids": seq.input_ids.tolist(), "n_prompt": seq.n_prompt,
        "target": target, "target_ids": target_ids, "target_positions": seq.target_positions,
        "unk_id": tok.unk_token_id if tok.unk_token_id is not None else 0, "eos_id": handle.model.config.eos_token_id,
        "model": {"id": handle.model_id, "params": n_params, "embedding_params": n_embedding,
                  "non_embedding_params": n_params - n_embedding, "hidden": d, "layers": cfgm.num_hidden_layers,
                  "vocab": cfgm.vocab_size, "dtype": str(emb.dtype), "tied_embeddings": head.data_ptr() == emb.data_ptr()},
        "matmul_gflops": rates,
        "versions": _versions(),
    }


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("torch", "transformers", "captum", "inseq", "attrwidgets", "numpy"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


# ---------------------------------------------------------------------------------------------- analysis
def flops(spec, n_steps: int) -> dict:
    """Minimal FLOPs of each design (backward to the inputs only ~ 1 forward; no weight gradients)."""
    m = spec["model"]
    p, d, layers, vocab = m["non_embedding_params"], m["hidden"], m["layers"], m["vocab"]
    positions = spec["target_positions"]
    n = len(positions)

    def fwd(t):  # body forward over t tokens: matmuls + attention scores/values
        return 2 * p * t + 4 * layers * t * t * d

    unemb = 2 * vocab * d  # one position's logits
    t_aw = max(positions)
    # attrwidgets: per path point one forward over T, n backwards through the shared graph; logits only at
    # the n target positions (forward) and one position per backward; +2 forwards for completeness.
    aw_ig = n_steps * ((1 + n) * fwd(t_aw) + 2 * n * unemb) + 2 * (fwd(t_aw) + n * unemb)
    aw_grad = (1 + n) * fwd(t_aw) + 2 * n * unemb
    # Captum / Inseq: per target i its own prefix T_i = pos_i, forward + backward, full-vocabulary logits at
    # every position of the prefix (the HF forward computes them).
    peer_step = sum(2 * (fwd(t) + unemb * t) for t in positions)
    return {"attrwidgets_ig": aw_ig, "peer_ig": n_steps * peer_step, "attrwidgets_grad": aw_grad,
            "peer_grad": peer_step, "T": t_aw, "n_targets": n,
            "formula": "n_steps*(1+n_targets)*(2*P_nonemb*T + 4*L*T^2*D) + 2*n_steps*n_targets*V*D (+2 forwards)"}


def agreement(a: np.ndarray, b: np.ndarray, cols: int | None, valid_until: list[int]) -> dict:
    """Per target row: Pearson r and max |a - b| over the columns both tools define for it."""
    rs, diffs, scales = [], [], []
    for i in range(min(len(a), len(b))):
        upto = valid_until[i] if cols is None else min(cols, valid_until[i])
        x, y = np.asarray(a[i][:upto], float), np.asarray(b[i][:upto], float)
        ok = np.isfinite(x) & np.isfinite(y)
        x, y = x[ok], y[ok]
        rs.append(float(np.corrcoef(x, y)[0, 1]) if x.std() > 0 and y.std() > 0 else float("nan"))
        diffs.append(float(np.abs(x - y).max()))
        scales.append(float(np.abs(x).max()))
    return {"min_r": float(np.nanmin(rs)), "r_per_target": rs, "max_abs_diff": max(diffs),
            "max_abs_score": max(scales), "rel_max_diff": max(diffs) / max(max(scales), 1e-30)}


# ---------------------------------------------------------------------------------------------- orchestrator
def run_worker(name: str, spec_path: str, tmp: str) -> dict:
    out = os.path.join(tmp, name.replace(":", "_") + ".json")
    env = dict(os.environ, TOKENIZERS_PARALLELISM="false", PYTHONWARNINGS="ignore")
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", name, "--spec", spec_path, "--result", out]
    t = time.perf_counter()
    with OtherCPU(resource.RUSAGE_CHILDREN) as other:
        proc = subprocess.run(cmd, check=False, env=env, capture_output=True, text=True)
    if proc.returncode != 0 or not os.path.exists(out):
        tail = (proc.stderr or "")[-3000:]
        print(f"  {name}: FAILED (rc={proc.returncode})\n{tail}", flush=True)
        return {"error": tail, "returncode": proc.returncode}
    res = json.loads(Path(out).read_text())
    res["subprocess_wall_s"] = time.perf_counter() - t
    res["other_cpu_s_whole_job"] = other.seconds
    return res


def job_other_share(res) -> float | None:
    """Largest share of the machine's CPU that other processes took during the job's timed runs."""
    ncpu = os.cpu_count() or 1
    if res.get("times_s"):
        vals = [o / (t * ncpu) for o, t in zip(res.get("other_cpu_s") or [], res["times_s"]) if o is not None and t > 0]
        return max(vals) if vals else None
    if res.get("other_cpu_s_whole_job") is not None and res.get("subprocess_wall_s"):
        return res["other_cpu_s_whole_job"] / (res["subprocess_wall_s"] * ncpu)
    return None


def run_job(name, spec_path, tmp, retries: int, max_other: float) -> dict:
    """run_worker, again (after waiting for a quiet machine) while other processes disturbed it."""
    best = None
    for attempt in range(retries + 1):
        res = run_worker(name, spec_path, tmp)
        share = job_other_share(res)
        res["attempts"] = attempt + 1
        res["other_share"] = share
        if best is None or "error" in best or (share is not None and share < (best.get("other_share") or 1e9)):
            best = res
        if "error" in res or share is None or share <= max_other or attempt == retries:
            break
        print(f"  {name}: other processes took {share:.0%} of the CPU; waiting for quiet, then again", flush=True)
        wait_for_quiet(max_other, 300)
    best["attempts"] = attempt + 1
    return best


def _med(xs):
    return float(np.median(xs)) if xs else float("nan")


def _others(row) -> str:
    vals = [o / (t * (os.cpu_count() or 1)) for o, t in zip(row.get("other_cpu_s") or [], row["times_s"])
            if o is not None and t > 0]
    return f"{max(vals):.1%}" if vals else "-"


def _mb(b):
    return f"{b / 2**20:,.0f}" if b else "-"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke test: 4 IG steps, fewer repeats, no load wait")
    ap.add_argument("--tools", default=",".join(TOOLS), help="comma list of attrwidgets,captum,inseq")
    ap.add_argument("--methods", default=",".join(METHODS), help="comma list of " + ",".join(METHODS))
    ap.add_argument("--n-steps", type=int, default=None, help="IG steps for the equal-settings runs (32)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cheap-reps", type=int, default=None, help="timed runs of saliency / input x gradient (5)")
    ap.add_argument("--ig-reps", type=int, default=1, help="timed runs of each IG job")
    ap.add_argument("--no-extras", action="store_true", help="skip attrwidgets' default-IG, batch and widget jobs")
    ap.add_argument("--profile", action="store_true",
                    help="also profile attrwidgets IG and A/B the previous per-target backward loop against the core")
    ap.add_argument("--retries", type=int, default=None,
                    help="re-run a job whose timed runs other processes disturbed (default 2; 0 with --quick)")
    ap.add_argument("--max-other", type=float, default=0.05,
                    help="share of the machine's CPU other processes may take during a timed run, and before "
                         "the run starts (0.05)")
    ap.add_argument("--max-wait", type=float, default=900.0, help="seconds to wait for a quiet machine")
    ap.add_argument("--no-wait", action="store_true", help="do not wait for a quiet machine")
    ap.add_argument("--out", default=str(DEFAULT_OUT))
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--spec", help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker_main(args)
        return

    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    for t in tools:
        if t not in TOOLS:
            ap.error(f"unknown tool {t!r}: use {','.join(TOOLS)}")
    for m in methods:
        if m not in METHODS:
            ap.error(f"unknown method {m!r}: use {','.join(METHODS)}")
    quick = args.quick
    cfg = {
        "quick": quick, "threads": args.threads, "max_new_tokens": 8,
        "n_steps": args.n_steps or (4 if quick else 32), "warm_steps": 2,
        "default_steps": 16 if quick else 128,
        "cheap_reps": args.cheap_reps or (2 if quick else 5), "ig_reps": args.ig_reps,
        "widget_reps": 5 if quick else 20, "widget_ig_steps": 2 if quick else 8,
    }
    retries = args.retries if args.retries is not None else (0 if quick else 2)
    command = " ".join([os.path.basename(sys.executable)] + sys.argv)
    wait = {"waited_s": 0.0, "met": None}
    if not (args.no_wait or quick):
        wait = wait_for_quiet(args.max_other, args.max_wait)
    wait.update(load_at_start=loadavg(), max_other=None if args.no_wait or quick else args.max_other)
    print(f"1-min load at start: {wait['load_at_start'][0] if wait['load_at_start'] else '?'}"
          f" (waited {wait['waited_s']:.0f} s)", flush=True)

    with tempfile.TemporaryDirectory(prefix="bench_attr_") as tmp:
        spec_path = os.path.join(tmp, "spec.json")
        Path(spec_path).write_text(json.dumps({"cfg": cfg}))
        print("preparing: load model, generate 8 greedy tokens, measure matmul rate ...", flush=True)
        prep = run_job("attrwidgets:prepare", spec_path, tmp, retries, args.max_other)
        if "error" in prep:
            raise SystemExit("prepare failed")
        spec = {k: prep[k] for k in ("messages", "prompt_text", "ids", "n_prompt", "target", "target_ids",
                                     "target_positions", "unk_id", "eos_id", "model")}
        spec["cfg"] = cfg
        Path(spec_path).write_text(json.dumps(spec))
        print(f"prompt: {spec['n_prompt']} tokens; continuation ({len(spec['target_ids'])} tokens): "
              f"{spec['target']!r}", flush=True)
        jobs = [(tool, m) for tool in tools for m in methods]
        if "attrwidgets" in tools and not args.no_extras:
            jobs += [("attrwidgets", x) for x in AW_EXTRA
                     if x == "widget" or "integrated_gradients" in methods]
        if args.profile:
            jobs.append(("attrwidgets", "profile"))
        results = {}
        for tool, task in jobs:
            print(f"running {tool}:{task} ...", flush=True)
            res = run_job(f"{tool}:{task}", spec_path, tmp, retries, args.max_other)
            results[f"{tool}:{task}"] = res
            if "times_s" in res:
                print(f"  {tool}:{task}: {_med(res['times_s']):.3f} s (warm-up {res['warmup_s']:.3f} s), "
                      f"peak RSS {_mb(res['peak_rss'])} MiB, load {res['load_before'][0]:.2f}", flush=True)
    report = build_report(spec, prep, results, cfg, wait, command)
    print_report(report)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1, default=_json_default))
    print(f"\nJSON: {args.out}")


def build_report(spec, prep, results, cfg, wait, command) -> dict:
    rates = prep["matmul_gflops"]
    fl = flops(spec, cfg["n_steps"])
    rows = []
    peer_base = {"captum": "attrwidgets:integrated_gradients", "inseq": "attrwidgets:ig_inseq_path"}
    for key, r in results.items():
        if "times_s" not in r:
            continue
        tool, task = key.split(":")
        base_key = f"attrwidgets:{task}"
        if task == "integrated_gradients" and tool in peer_base:
            base_key = peer_base[tool]
        base = results.get(base_key, {})
        ratio = (_med(r["times_s"]) / _med(base["times_s"])) if tool != "attrwidgets" and "times_s" in base else None
        rows.append({"tool": tool, "task": task, "median_s": _med(r["times_s"]), "min_s": min(r["times_s"]),
                     "times_s": r["times_s"], "cpu_s": r["cpu_s"], "warmup_s": r["warmup_s"],
                     "peak_rss": r["peak_rss"], "rss_after_load": r["rss_after_load"],
                     "maxrss_process": r["maxrss_process"], "ratio_vs_attrwidgets": ratio,
                     "other_cpu_s": r.get("other_cpu_s"), "attempts": r.get("attempts"), "ratio_base": base_key
                     if ratio is not None else None, "load_before": r["load_before"], "options": r.get("options"),
                     "completeness_error": r.get("completeness_error"), "compute_only_s": r.get("compute_only_s"),
                     "resolved_options": r.get("resolved_options")})
    # agreement
    valid = spec["target_positions"]
    n_prompt = spec["n_prompt"]
    agree = []

    def check(name, a_key, b_key, cols, a_field="scores"):
        a, b = results.get(a_key, {}), results.get(b_key, {})
        if a_field in a and "scores" in b:
            agree.append({"check": name, "a": a_key, "b": b_key, "columns": "prompt" if cols else "prefix",
                          **agreement(np.array(a[a_field]), np.array(b["scores"]), cols, valid)})

    check("IG riemann_right 32, prompt path (Captum's)", "attrwidgets:integrated_gradients", "captum:integrated_gradients", n_prompt)
    check("IG gauss-legendre 32, all-prefix path (Inseq's)", "attrwidgets:ig_inseq_path", "inseq:integrated_gradients", None)
    check("input x gradient", "attrwidgets:input_x_gradient", "captum:input_x_gradient", n_prompt)
    check("input x gradient", "attrwidgets:input_x_gradient", "inseq:input_x_gradient", None)
    check("gradient summed over D (Captum has no saliency)", "attrwidgets:saliency", "captum:saliency", n_prompt, "grad_sum")
    check("saliency (L2 of gradient)", "attrwidgets:saliency", "inseq:saliency", None)
    aw_ig = results.get("attrwidgets:integrated_gradients", {})
    bound = {"flops": fl, "matmul_gflops": rates}
    for name, key, f in (("attrwidgets IG", "attrwidgets:integrated_gradients", fl["attrwidgets_ig"]),
                         ("Captum IG", "captum:integrated_gradients", fl["peer_ig"]),
                         ("Inseq IG", "inseq:integrated_gradients", fl["peer_ig"]),
                         ("attrwidgets saliency", "attrwidgets:saliency", fl["attrwidgets_grad"]),
                         ("Captum saliency", "captum:saliency", fl["peer_grad"])):
        measured = _med(results[key]["times_s"]) if "times_s" in results.get(key, {}) else None
        bound[name] = {"gflop": f / 1e9, "predicted_s_at_2048_rate": f / 1e9 / rates["square_2048"],
                       "predicted_s_at_model_shape_rate": f / 1e9 / rates["model_mlp_1080x576x1536"],
                       "measured_s": measured,
                       "achieved_gflops": (f / 1e9 / measured) if measured else None}
    widget = results.get("attrwidgets:widget", {}).get("widget")
    prof = results.get("attrwidgets:profile", {}).get("profile")
    fastest_peer_ig = min((_med(results[k]["times_s"]) for k in ("captum:integrated_gradients", "inseq:integrated_gradients")
                           if "times_s" in results.get(k, {})), default=None)
    speedup = (fastest_peer_ig / _med(aw_ig["times_s"])) if fastest_peer_ig and "times_s" in aw_ig else None
    return {"command": command, "quick": cfg["quick"], "cfg": cfg, "load": wait, "machine": {
                "cpu_count": os.cpu_count(), "platform": platform.platform(), "processor": platform.processor()},
            "versions": prep.get("versions"), "model": spec["model"], "prompt_tokens": spec["n_prompt"],
            "prompt_text": spec["prompt_text"], "messages": spec["messages"], "continuation": spec["target"],
            "continuation_ids": spec["target_ids"], "settings": settings_text(cfg), "rows": rows,
            "agreement": agree, "flop_bound": bound, "widget_latency": widget, "profile": prof,
            "ig_speedup_vs_fastest_peer": speedup, "max_other_cpu_share": _max_other_share(rows),
            "errors": {k: v["error"] for k, v in results.items() if "error" in v}}


def _max_other_share(rows) -> float | None:
    """Largest fraction of the machine's CPU that other processes used during any timed run."""
    shares = [o / (t * (os.cpu_count() or 1)) for row in rows for o, t in zip(row.get("other_cpu_s") or [],
              row["times_s"]) if o is not None and t > 0]
    return max(shares) if shares else None


def settings_text(cfg) -> dict:
    s = cfg["n_steps"]
    return {
        "objective": "log p(target_i | prefix) for every tool (Inseq: attributed_fn='probability', logprob=True)",
        "targets": "8 greedy tokens from attrwidgets, forced on all tools",
        "attrwidgets IG (vs Captum)": f"n_steps={s}, quadrature=riemann_right, baseline=tensor(emb(unk) at prompt, "
                                      "real emb at generated positions), batch_size=auto",
        "attrwidgets IG (vs Inseq)": f"n_steps={s}, quadrature=gauss_legendre, baseline=tensor(emb(unk) except "
                                     "EOS positions), batch_size=auto",
        "Captum IG": f"LLMGradientAttribution(LayerIntegratedGradients(model, embed_tokens)), n_steps={s}, "
                     "method=riemann_right, TextTokenInput baselines=unk id 0, internal_batch_size=None (all steps)",
        "Inseq IG": f"integrated_gradients, n_steps={s}, internal_batch_size={s}, captum default gausslegendre, "
                    "baseline=unk embedding (EOS kept)",
        "saliency": "attrwidgets/Inseq: L2 norm over D of the gradient; Captum: LayerGradientXActivation("
                    "multiply_by_inputs=False) = gradient summed over D (LLMGradientAttribution has no Saliency)",
        "input_x_gradient": "gradient * embedding summed over D (all tools)",
        "timing": f"torch.set_num_threads({cfg['threads']}); one warm-up per process (IG warm-up with "
                  f"{cfg['warm_steps']} steps), excluded; median of {cfg['cheap_reps']} runs (saliency, input x "
                  f"gradient) / {cfg['ig_reps']} run(s) (IG); end-to-end attribute() calls of each tool",
    }


def print_report(r) -> None:
    print("\n" + "=" * 100)
    print(f"Token attribution benchmark{' (QUICK: not for quoting)' if r['quick'] else ''}: {r['model']['id']}, "
          f"{r['model']['dtype']}, {r['cfg']['threads']} threads, {r['machine']['cpu_count']} CPUs")
    w = r["load"]
    la = w["load_at_start"]
    share = w.get("others_share_at_start")
    quiet = f"; other processes then used {share:.0%} of the CPU, goal {w['max_other']:.0%}" if share is not None else ""
    print(f"1-min load at start: {la[0] if la else '?'} (waited {w['waited_s']:.0f} s{quiet})")
    loads = [x["load_before"][0] for x in r["rows"] if x.get("load_before")]
    if loads:
        print(f"1-min load when each job started: min {min(loads):.2f}, max {max(loads):.2f} (includes this "
              "benchmark's own 2 threads)")
    share = r.get("max_other_cpu_share")
    if share is not None:
        print(f"CPU used by other processes during timed runs: at most {share:.1%} of the machine"
              + ("  (CONTENDED: timings are inflated)" if share > 0.05 else ""))
    print(f"prompt {r['prompt_tokens']} tokens (chat template, system + user); continuation {len(r['continuation_ids'])} "
          f"tokens: {r['continuation']!r}")
    print("versions:", ", ".join(f"{k} {v}" for k, v in (r["versions"] or {}).items()))
    print("\nSettings:")
    for k, v in r["settings"].items():
        print(f"  {k}: {v}")
    print(f"\n{'tool':<12} {'job':<22} {'median s':>9} {'min s':>8} {'warm-up s':>9} {'cpu/wall':>8} "
          f"{'peak RSS MiB':>12} {'+ over load':>11} {'peer/aw':>8} {'others%':>7}")
    for row in r["rows"]:
        ratio = f"{row['ratio_vs_attrwidgets']:.2f}x" if row["ratio_vs_attrwidgets"] else ""
        util = _med(row["cpu_s"]) / row["median_s"] if row["median_s"] else float("nan")
        extra = (row["peak_rss"] - row["rss_after_load"]) if row["peak_rss"] and row["rss_after_load"] else None
        print(f"{row['tool']:<12} {row['task']:<22} {row['median_s']:>9.3f} {row['min_s']:>8.3f} "
              f"{row['warmup_s']:>9.3f} {util:>8.2f} {_mb(row['peak_rss']):>12} {_mb(extra):>11} {ratio:>8} "
              f"{_others(row):>7}")
    print("  (peer/aw: peer time / attrwidgets time for the same job; IG vs Captum uses attrwidgets "
          "integrated_gradients, IG vs Inseq uses attrwidgets ig_inseq_path; others%: largest share of the "
          "machine's CPU that other processes took during a timed run)")
    for row in r["rows"]:
        if row["tool"] == "attrwidgets" and row["completeness_error"]:
            ce = np.array(row["completeness_error"])
            print(f"  attrwidgets {row['task']}: completeness error median {np.median(ce):.2%}, max {ce.max():.2%}"
                  + (f"; options {row['resolved_options']}" if row["task"] == "ig_default" else ""))
        if row["tool"] == "attrwidgets" and row["compute_only_s"]:
            print(f"  attrwidgets {row['task']}: session.compute() alone (session built) "
                  f"{min(row['compute_only_s']):.3f} s best of {len(row['compute_only_s'])}")
    sal = next((x for x in r["rows"] if x["tool"] == "attrwidgets" and x["task"] == "saliency"), None)
    if sal:
        print(f"  attrwidgets saliency, all 8 targets: {sal['median_s']:.3f} s (target < 2 s: "
              f"{'met' if sal['median_s'] < 2 else 'NOT met'})")
    if r["ig_speedup_vs_fastest_peer"]:
        print(f"  attrwidgets IG speed-up vs the fastest peer at equal settings: {r['ig_speedup_vs_fastest_peer']:.2f}x "
              f"(goal >= 2x: {'met' if r['ig_speedup_vs_fastest_peer'] >= 2 else 'NOT met'})")
    fb = r["flop_bound"]
    print(f"\nMeasured fp32 matmul rate: {fb['matmul_gflops']['square_2048']:.1f} GFLOP/s (2048x2048x2048), "
          f"{fb['matmul_gflops']['model_mlp_1080x576x1536']:.1f} GFLOP/s (1080x576 @ 576x1536, an IG chunk's MLP), "
          f"{fb['matmul_gflops']['model_mlp_40x576x1536']:.1f} GFLOP/s (40x576 @ 576x1536, one sequence)")
    f = fb["flops"]
    print(f"FLOP bound ({f['formula']}; P_nonemb={r['model']['non_embedding_params']/1e6:.1f}M, "
          f"T={f['T']}, n_targets={f['n_targets']}, n_steps={r['cfg']['n_steps']}):")
    print(f"  {'job':<22} {'GFLOP':>8} {'pred s @2048':>12} {'pred s @model':>13} {'measured s':>10} {'GFLOP/s':>8}")
    for name in ("attrwidgets IG", "Captum IG", "Inseq IG", "attrwidgets saliency", "Captum saliency"):
        b = fb[name]
        meas = f"{b['measured_s']:.3f}" if b["measured_s"] else "-"
        ach = f"{b['achieved_gflops']:.1f}" if b["achieved_gflops"] else "-"
        print(f"  {name:<22} {b['gflop']:>8.1f} {b['predicted_s_at_2048_rate']:>12.2f} "
              f"{b['predicted_s_at_model_shape_rate']:>13.2f} {meas:>10} {ach:>8}")
    print("  (peers: each target its own prefix, forward + backward, full-vocabulary logits at every position)")
    if r["agreement"]:
        print("\nAgreement (per target row: Pearson r over the columns both define; max |a-b|):")
        for a in r["agreement"]:
            print(f"  {a['check']:<48} {a['a'].split(':')[1]:>22} vs {a['b']:<30} min r {a['min_r']:.6f}  "
                  f"max|diff| {a['max_abs_diff']:.2e} (max|score| {a['max_abs_score']:.2e})")
    w = r.get("widget_latency")
    if w:
        def stats(xs, field):
            v = [x[field] for x in xs if x[field] is not None]
            return (f"median {np.median(v) * 1e3:.2f} ms, max {max(v) * 1e3:.2f} ms (n={len(v)})") if v else "never"
        print("\nTokenMatrix live widget (Python side of click -> redraw):")
        print(f"  first draw (session + saliency all rows): {w['first_draw_saliency_s']:.3f} s")
        print(f"  click a cached row, saliency: set->idle {stats(w['select_cached_row_saliency'], 'until_idle_s')}; "
              f"scores trait changed: {stats(w['select_cached_row_saliency'], 'scores_changed_s')} "
              "(all rows are already on the page)")
        print(f"  switch to a cached method: scores trait changed {stats(w['switch_cached_method'], 'scores_changed_s')};"
              f" set->idle {stats(w['switch_cached_method'], 'until_idle_s')}")
        print(f"  click a cached IG row: set->idle {stats(w['select_cached_row_ig'], 'until_idle_s')}; "
              f"uncached IG row ({r['cfg']['widget_ig_steps']} steps): {w['ig_uncached_row'][0]['until_idle_s']:.3f} s")
        print(f"  serialize scores ({w['scores_bytes']} bytes): {w['serialize_scores_us']:.1f} us")
    p = r.get("profile")
    if p:
        sp = p["split_s"]
        print(f"\nProfile of attrwidgets IG ({r['cfg']['n_steps']} steps, {sp['chunks']} chunk(s) of <= "
              f"{sp['batch_size']} path points):")
        for k, v in sp.items():
            if k not in ("chunks", "batch_size", "other_cpu_s"):
                print(f"  {k:<38} {v:8.3f} s" + (f"  ({v / sp['total']:.0%})" if k != "total" else ""))
        print("  top operators (self CPU, torch.profiler):")
        for o in p["top_ops"][:8]:
            print(f"    {o['op'][:40]:<40} {o['self_cpu_s']:8.3f} s {o['share']:6.1%} {o['calls']:>7} calls")
        print("  A/B: one backward per target (previous core, 'loop') vs the installed core, interleaved:")
        for m, d in p["ab_backward_loop_vs_core"].items():
            others = max((o or 0) for o in d["other_cpu_s"]) / (min(d["loop"] + d["core"]) * (os.cpu_count() or 1))
            print(f"    {m:<22} loop median {_med(d['loop']):.3f} s, core median {_med(d['core']):.3f} s "
                  f"({_med(d['loop']) / _med(d['core']):.2f}x), max |score diff| {d['max_abs_diff']:.1e}, "
                  f"peak RSS {_mb(d['loop_peak_rss'])} -> {_mb(d['core_peak_rss'])} MiB, others <= {others:.0%}")
    if r["errors"]:
        print("\nFAILED jobs:", ", ".join(r["errors"]))


if __name__ == "__main__":
    main()
