"""A plain Inseq loop over the benchmark's prompts: what a user without attrwidgets writes (Inseq's
attribute-dataset loads the whole set and writes one JSON at the end; a loop is the fair per-example cost).
Run by the Inseq venv's python (bash benchmarks/external/inseq_env.sh), never by the project's:

    /work/venvs/inseq/bin/python benchmarks/dataset/inseq_loop.py PROMPTS.json MODEL_DIR METHOD N_NEW N_STEPS

Prints one JSON line: seconds (the loop only, model loaded), examples, peak RSS of this process in MiB.
"""

from __future__ import annotations

import json
import resource
import sys
import time


def main() -> None:
    prompts_file, model_dir, method, n_new, n_steps = sys.argv[1:6]
    import inseq
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    model.config.pad_token_id = tok.convert_tokens_to_ids("<|endoftext|>")  # keep <|im_end|> (bench_token_attribution.py)
    im = inseq.load_model(model, method, tokenizer=tok)
    kwargs = {"attributed_fn": "probability", "attributed_fn_args": {"logprob": True}, "show_progress": False,
              "generation_args": {"max_new_tokens": int(n_new), "do_sample": False}}
    if method == "integrated_gradients":
        kwargs.update(n_steps=int(n_steps), internal_batch_size=int(n_steps))
    with open(prompts_file) as f:
        prompts = json.loads(f.read())
    im.attribute(prompts[0], **kwargs)  # warm-up, as for the other engines' first batch
    start = time.perf_counter()
    for prompt in prompts:
        im.attribute(prompt, **kwargs)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "examples": len(prompts), "peak_mib": peak}))


if __name__ == "__main__":
    main()
