#!/usr/bin/env python3
"""Hugging Face transformers as a decode-speed peer of kvlab-bench.

A Llama-3.1-8B-shaped LlamaForCausalLM with random bf16 weights, built from a LlamaConfig on
the GPU; batch 1, greedy generate() with a static KV cache, both compiled (transformers
compiles the decode step with torch.compile when the cache is static) and eager
(disable_compile). At each context a random prompt of that length goes in, and

    decode tokens/s = N / (time of generate(prompt, 1 + N new tokens) - time of generate(prompt, 1)),

so the prefill and the first token cancel out; median over repeats, after a warm-up that
also compiles. Compilation takes minutes and each context's cache shape compiles anew, so the
whole run is bounded by --budget-s: what does not fit is skipped and listed as skipped.

    python3 scripts/peer_hf.py --contexts 1024,8192,32768 --json hf.json --budget-s 240
"""
import argparse
import json
import signal
import statistics
import sys
import time

import torch
import transformers
from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM


class OutOfTime(Exception):
    pass


def on_alarm(signum, frame):
    raise OutOfTime()


def llama_3_1_8b():
    return LlamaConfig(vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                       num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=131072,
                       rope_theta=500000.0, rms_norm_eps=1e-5, tie_word_embeddings=False, bos_token_id=128000,
                       eos_token_id=None, rope_scaling=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0,
                                                            high_freq_factor=4.0,
                                                            original_max_position_embeddings=8192))


def timed_generate(model, prompt, new_tokens, compiled):
    config = GenerationConfig(do_sample=False, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                              cache_implementation="static", disable_compile=not compiled, pad_token_id=0,
                              eos_token_id=None)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = model.generate(prompt, generation_config=config)
    torch.cuda.synchronize()
    assert out.shape[1] == prompt.shape[1] + new_tokens, out.shape
    return time.perf_counter() - t0


def measure(model, context, new_tokens, compiled, repeats):
    prompt = torch.randint(0, model.config.vocab_size, (1, context), device="cuda")
    # The longer run first: it sizes the static cache that the 1-token run then reuses, so the
    # compiled decode step (specialised to the cache shape) compiles once per context.
    timed_generate(model, prompt, 1 + new_tokens, compiled)
    timed_generate(model, prompt, 1, compiled)
    decode, first = [], []
    for _ in range(repeats):
        t_long = timed_generate(model, prompt, 1 + new_tokens, compiled)
        t_short = timed_generate(model, prompt, 1, compiled)
        decode.append(new_tokens / max(t_long - t_short, 1e-9))
        first.append(t_short)
    return {"decode_tokens_per_s": statistics.median(decode), "ttft_s": statistics.median(first)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--contexts", default="1024,8192,32768")
    ap.add_argument("--modes", default="compile,eager")
    ap.add_argument("--decode-tokens", type=int, default=64, help="timed new tokens (compiled)")
    ap.add_argument("--eager-decode-tokens", type=int, default=16, help="timed new tokens (eager, ~10x slower)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--budget-s", type=float, default=240, help="wall-clock bound of the whole run")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    start = time.perf_counter()
    deadline = start + args.budget_s

    torch.manual_seed(0)
    with torch.device("cuda"):
        torch.set_default_dtype(torch.bfloat16)
        model = LlamaForCausalLM(llama_3_1_8b())
        torch.set_default_dtype(torch.float32)
    model.eval()
    model.generation_config.eos_token_id = None
    result = {"peer": "huggingface transformers", "transformers": transformers.__version__,
              "torch": torch.__version__, "gpu": torch.cuda.get_device_name(), "shape": "llama-3.1-8b (random bf16)",
              "attn_implementation": model.config._attn_implementation, "rows": [], "skipped": []}
    print(f"model built in {time.perf_counter() - start:.1f} s", flush=True)

    signal.signal(signal.SIGALRM, on_alarm)
    with torch.inference_mode():
        for mode in args.modes.split(","):
            for context in [int(c) for c in args.contexts.split(",")]:
                left = deadline - time.perf_counter()
                if left < 5:
                    result["skipped"].append({"mode": mode, "context": context, "why": "out of the time budget"})
                    continue
                n = args.decode_tokens if mode == "compile" else args.eager_decode_tokens
                signal.alarm(max(1, int(left)))
                t0 = time.perf_counter()
                try:
                    row = measure(model, context, n, mode == "compile", args.repeats)
                except OutOfTime:
                    result["skipped"].append({"mode": mode, "context": context,
                                              "why": f"did not finish within the budget ({left:.0f} s left)"})
                    print(f"{mode} {context}: skipped, out of time", flush=True)
                    continue
                except torch.OutOfMemoryError as e:
                    result["skipped"].append({"mode": mode, "context": context, "why": f"out of memory: {e}"})
                    torch.cuda.empty_cache()
                    continue
                finally:
                    signal.alarm(0)
                row.update({"mode": mode, "context": context, "decode_tokens": n,
                            "seconds_incl_compile": time.perf_counter() - t0})
                result["rows"].append(row)
                print(f"{mode} {context}: {row['decode_tokens_per_s']:.1f} tok/s decode, "
                      f"TTFT {row['ttft_s']:.3f} s ({row['seconds_incl_compile']:.0f} s)", flush=True)

    print("| mode | context | decode tok/s | TTFT s |\n|---|---:|---:|---:|")
    for r in result["rows"]:
        print(f"| HF {r['mode']} | {r['context']} | {r['decode_tokens_per_s']:.1f} | {r['ttft_s']:.3f} |")
    for s in result["skipped"]:
        print(f"skipped: {s['mode']} {s['context']}: {s['why']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
