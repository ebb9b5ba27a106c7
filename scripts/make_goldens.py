#!/usr/bin/env python3
"""Makes kvlab's model golden files with Hugging Face transformers (run on the GPU machine).

For each architecture kvlab supports it builds a tiny random-init checkpoint that exercises
what could go wrong (llama3 rope scaling that changes frequencies inside the prompt; Qwen2
q/k/v biases and tied embeddings; Qwen3 q/k norms with head_dim != hidden/heads; a sharded
save; bf16, fp32 and fp16 storage), with norm and bias weights far from their defaults so
mistakes show. It saves each with save_pretrained, reloads it from disk in fp32 and records
the logits at every position of a fixed 288-token prompt and 64 greedy tokens.

  python3 scripts/make_goldens.py --text shakespeare.txt --models datasets/models --out tests/golden
  python3 scripts/make_goldens.py --yarn --models datasets/models --out tests/golden  # one more golden

Outputs
  <models>/tiny-random-<arch>/   config.json, *.safetensors, tokenizer.json, tokenizer_config.json
  <out>/<arch>.safetensors       prompt_ids I32[T], logits F32[T,V], greedy_ids I32[64],
                                 greedy_margin F32[64] (top-1 minus top-2 logit at each step)
  <out>/qwen3-yarn.safetensors   the same for tiny-random-qwen3-yarn (--yarn)
"""
import argparse
import json
import os
import platform
import shutil

import torch
import transformers
from safetensors.torch import load_file, save_file
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

PROMPT_LEN = 288
GREEDY_STEPS = 64
VOCAB = 512
SEED = 1234
# Llama-3's pre-tokenizer regex, so the tiny tokenizer has the same shape as the real one.
LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")
SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]


def train_tokenizer(text_path, out_dir):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(pattern=Regex(LLAMA3_SPLIT), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train([text_path], trainer)
    bos = "<|begin_of_text|>"
    tok.post_processor = processors.TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A {bos} $B",
                                                       special_tokens=[(bos, tok.token_to_id(bos))])
    tok.save(os.path.join(out_dir, "tokenizer.json"))
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w") as f:
        json.dump({"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>",
                   "tokenizer_class": "PreTrainedTokenizerFast"}, f, indent=2)
    return tok


def make_config(arch, tok):
    common = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=160, num_hidden_layers=3,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                  rms_norm_eps=1e-5, initializer_range=0.08,
                  bos_token_id=tok.token_to_id("<|begin_of_text|>"), eos_token_id=tok.token_to_id("<|eot_id|>"))
    if arch == "llama":
        # original_max_position 64 puts wavelengths 16..64 in the blended band and longer
        # ones scaled, so the 288-token prompt sees every branch of the llama3 formula.
        rope = {"rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0, "low_freq_factor": 1.0,
                "high_freq_factor": 4.0, "original_max_position_embeddings": 64}
        cfg = transformers.LlamaConfig(tie_word_embeddings=False, **common)
    elif arch == "qwen2":
        rope = {"rope_type": "default", "rope_theta": 1000000.0}
        cfg = transformers.Qwen2Config(tie_word_embeddings=True, use_sliding_window=False, **common)
    else:
        rope = {"rope_type": "default", "rope_theta": 1000000.0}
        cfg = transformers.Qwen3Config(tie_word_embeddings=False, head_dim=32, use_sliding_window=False, **common)
    if hasattr(cfg, "rope_parameters"):
        cfg.rope_parameters = rope
    else:
        cfg.rope_theta = rope["rope_theta"]
        cfg.rope_scaling = None if rope["rope_type"] == "default" else rope
    return cfg


def perturb(model, gen):
    """Norm weights and biases far from 1 and 0, so a missing norm or bias changes the logits."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.5 * torch.randn(p.shape, generator=gen))
            elif name.endswith(".bias"):
                p.copy_(0.5 * torch.randn(p.shape, generator=gen))


def greedy(model, prompt):
    ids = prompt.clone()
    tokens, margins = [], []
    with torch.no_grad():
        for _ in range(GREEDY_STEPS):
            logits = model(ids).logits[0, -1]
            top = torch.topk(logits, 2)
            tokens.append(int(top.indices[0]))
            margins.append(float(top.values[0] - top.values[1]))
            ids = torch.cat([ids, top.indices[:1].view(1, 1)], dim=1)
    return tokens, margins


def record_golden(model_dir, prompt, path):
    """transformers' fp32 logits of `prompt` on the checkpoint as saved (on the CPU:
    deterministic, no TF32) and its greedy continuation, into `path`."""
    ref = transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32,
                                                            attn_implementation="eager").eval()
    with torch.no_grad():
        logits = ref(prompt).logits[0].float().contiguous()
    tokens, margins = greedy(ref, prompt)
    save_file({"prompt_ids": prompt[0].to(torch.int32).contiguous(),
               "logits": logits,
               "greedy_ids": torch.tensor(tokens, dtype=torch.int32),
               "greedy_margin": torch.tensor(margins, dtype=torch.float32)}, path)
    print(f"{path}: logits |max| {float(logits.abs().max()):.3f}; min greedy margin {min(margins):.4f}; "
          f"greedy head {tokens[:8]}")
    return {"files": sorted(os.listdir(model_dir)), "min_greedy_margin": min(margins),
            "logit_abs_max": float(logits.abs().max()),
            "config": json.load(open(os.path.join(model_dir, "config.json")))}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--text", help="training text for the tiny tokenizer")
    ap.add_argument("--models", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--yarn", action="store_true",
                    help="only the golden of tiny-random-qwen3-yarn (scripts/derive_yarn_model.py), on "
                         "qwen3's golden prompt; the other checkpoints and goldens stay as they are")
    args = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    os.makedirs(args.out, exist_ok=True)
    summary_path = os.path.join(args.out, "models.json")

    if args.yarn:
        prompt = load_file(os.path.join(args.out, "qwen3.safetensors"))["prompt_ids"].to(torch.int64)[None]
        summary = json.load(open(summary_path))
        summary["models"]["qwen3-yarn"] = dict(
            record_golden(os.path.join(args.models, "tiny-random-qwen3-yarn"), prompt,
                          os.path.join(args.out, "qwen3-yarn.safetensors")),
            transformers=transformers.__version__, torch=torch.__version__)
        with open(summary_path, "w") as f:
            json.dump(summary, f, indent=2)
        return
    if not args.text:
        ap.error("--text is needed to build the checkpoints")

    storage = {"llama": torch.bfloat16, "qwen2": torch.float32, "qwen3": torch.float16}
    summary = {"transformers": transformers.__version__, "torch": torch.__version__,
               "python": platform.python_version(), "models": {}}
    for i, arch in enumerate(["llama", "qwen2", "qwen3"]):
        model_dir = os.path.join(args.models, f"tiny-random-{arch}")
        shutil.rmtree(model_dir, ignore_errors=True)
        os.makedirs(model_dir)
        tok = train_tokenizer(args.text, model_dir)
        gen = torch.Generator().manual_seed(SEED + i)
        torch.manual_seed(SEED + i)
        cfg = make_config(arch, tok)
        model = transformers.AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
        perturb(model, gen)
        model = model.to(storage[arch])
        # The llama checkpoint is saved sharded to exercise model.safetensors.index.json.
        model.save_pretrained(model_dir, max_shard_size="300KB" if arch == "llama" else "1GB")
        prompt = torch.randint(0, VOCAB, (1, PROMPT_LEN), generator=gen)
        summary["models"][arch] = dict(record_golden(model_dir, prompt, os.path.join(args.out, f"{arch}.safetensors")),
                                       storage_dtype=str(storage[arch]))
    with open(summary_path, "w") as f:
        json.dump(summary, f, indent=2)


if __name__ == "__main__":
    main()
