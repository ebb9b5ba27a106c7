#!/usr/bin/env python3
"""LeanK training (arXiv 2508.02215; microsoft/MInference LeanK/train.py) for kvlab, on one GPU.

UNTESTED AT FULL SCALE: written to be run on the GPU machine; docs/leank.md says what was run.

Learns one scale alpha per (layer, KV head, post-RoPE K channel), in [0, 1], by distilling the
model's own final hidden states on the answer tokens of synthetic long-context retrieval prompts:

  teacher: the model as it is.
  student: the same model, but for keys outside the attention sink and the query's recent window,
           the decode queries' logits use K * alpha (post-RoPE K; q and V untouched).
  loss = mean over answer tokens of mean over hidden dims (h_teacher - h_student)^2
         + reg_weight * mean |alpha|

Stage 1 trains alpha continuously with the L1 term. Stage 2 starts from stage 1's alpha and, at
every step, binarises it with the global-quantile rule (sparsify_scaling_factors: ratio, align)
and trains through the mask with a straight-through estimator. Outputs, in --out:

  stage1_importance.safetensors   stage-1 alpha as a kvlab importance file (source "trained"):
                                  `kvlab-leank mask --importance ... --sparsity S` makes a mask
                                  at any sparsity without retraining
  stage2_importance.safetensors   stage-2 alpha, same format
  stage2_mask.safetensors         the reference's final mask (ratio, align) of the stage-2 alpha,
                                  in kvlab's mask format; `kvlab-leank mask` on the stage-2
                                  importance must give the same channels (kvlab-leank compare)
  stage{1,2}_scaling_factors.tsv  the reference's own text format (rows = layers)
  train_log.txt, args.json

  python3 scripts/leank_train.py --model datasets/models/kvlab-default --preset kvlab-default --out OUT
  python3 scripts/leank_train.py --model /models/Llama-3.1-8B-Instruct --preset llama3.1-8b --out OUT

How this differs from the reference (docs/methods.md, "LeanK"): one GPU, no FSDP / sequence
parallelism; the student recomputes only the answer positions (the context's hidden states do not
depend on alpha, so the teacher's context K/V are reused: the same maths, far less memory); the
teacher's answer positions use the student's fp32 attention without alpha, so alpha = 1 gives
loss 0 exactly; alpha is fp32 (the reference keeps it in bf16); the chat template is the
tokenizer's own (the reference hard-codes Llama-3's for every model); the haystack text is local.
"""
import argparse
import hashlib
import json
import os
import random
import re
import struct
import sys
import time
import uuid

import torch
import torch.nn.functional as F
import torch.utils.checkpoint

# ----------------------------------------------------------------------------- presets

# Stage values from LeanK/scripts/{llama3.1-8b,qwen2.5-7b}.yaml. Steps: train.py's argparse
# default (1000) for both stages, because the yaml key `steps` does not match `num_steps` and is
# ignored; pass --steps1 2000 --steps2 200 for the yaml's intent. sink/recent: what scaled_attn
# actually uses (its defaults 128/1024; the --sink_size/--recent_size flags never reach it).
PRESETS = {
    "llama3.1-8b": dict(lr1=0.02, reg1=0.06, lr2=0.01, reg2=0.0, ratio=0.7, align=32, ctx_min=4000, ctx_max=96000,
                        steps1=1000, steps2=1000, sink=128, recent=1024, tokens_to_generate=128,
                        needle_values="uuids", needle_keys="uuids"),
    "qwen2.5-7b": dict(lr1=0.04, reg1=0.06, lr2=0.02, reg2=0.0, ratio=0.6, align=32, ctx_min=4000, ctx_max=32000,
                       steps1=1000, steps2=1000, sink=128, recent=1024, tokens_to_generate=128,
                       needle_values="uuids", needle_keys="uuids"),
    # kvlab's 6-layer default model (2 KV heads, head_dim 64, trained to 4096 positions, numbers
    # and word keys): Llama's learning rates, contexts and sink/recent scaled to its 4K range
    # (64/256 are the values LeanK's CLI meant to pass), numbers instead of uuids.
    "kvlab-default": dict(lr1=0.02, reg1=0.06, lr2=0.01, reg2=0.0, ratio=0.7, align=32, ctx_min=1024, ctx_max=4000,
                          steps1=1000, steps2=1000, sink=64, recent=256, tokens_to_generate=64,
                          needle_values="numbers", needle_keys="words"),
}

# ----------------------------------------------------------------------------- kvlab files


def write_safetensors(path, tensors, metadata):
    """tensors: [(name, torch tensor)] written as F32 or I32; metadata: str -> str."""
    header = {"__metadata__": {k: str(v) for k, v in metadata.items()}}
    blobs, offset = [], 0
    for name, t in tensors:
        t = t.detach().contiguous().cpu()
        dtype = {torch.float32: "F32", torch.int32: "I32"}[t.dtype]
        data = t.numpy().tobytes()
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def read_importance(path):
    """A kvlab importance file's values [L, H, D] (F32) and metadata."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    meta = header.get("__metadata__", {})
    if meta.get("format") != "kvlab.leank-importance":
        sys.exit(f"{path}: not a kvlab.leank-importance file")
    e = header["importance"]
    if e["dtype"] != "F32":
        sys.exit(f"{path}: importance must be F32")
    b, end = e["data_offsets"]
    values = torch.frombuffer(bytearray(data[b:end]), dtype=torch.float32).reshape(e["shape"])
    return values, meta


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def model_sha256(model_dir):
    """kvlab's Checkpoint::content_sha256: config.json, then each safetensors file in name order."""
    index = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    h = hashlib.sha256()
    for name in ["config.json"] + files:
        with open(os.path.join(model_dir, name), "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def fingerprint(config, model_dir):
    heads = config.num_attention_heads
    return {
        "model.architecture": config.architectures[0],
        "model.layers": config.num_hidden_layers,
        "model.kv_heads": getattr(config, "num_key_value_heads", None) or heads,
        "model.head_dim": getattr(config, "head_dim", None) or config.hidden_size // heads,
        "model.hidden_size": config.hidden_size,
        "model.vocab_size": config.vocab_size,
        "model.sha256": model_sha256(model_dir),
    }


def sparsify(alpha, ratio, align):
    """LeanK's sparsify_scaling_factors: global quantile, per-head counts rounded to `align`,
    the top-k channels of each head (ties: the lower channel, as kvlab's make_mask). bool [L,H,D]."""
    L, H, D = alpha.shape
    a = alpha.detach().float().cpu()
    thr = torch.quantile(a.flatten(), ratio)  # linear interpolation, float32, as kvlab
    cnt = (a >= thr).sum(-1)
    k = ((cnt + align // 2) // align * align).clamp(0, D)
    order = torch.sort(a, dim=-1, descending=True, stable=True).indices
    rank = torch.empty_like(order)
    rank.scatter_(-1, order, torch.arange(D).expand(L, H, D).contiguous())
    return rank < k[..., None], float(thr)


# ----------------------------------------------------------------------------- data


DEPTHS = [int(round(x)) for x in torch.linspace(0, 100, 40).tolist()]


class RetrievalData:
    """passkey_retrival_mixed_tasks (leank/data.py: PasskeyRetrievalDataset) from local text:
    alternately a "needle" haystack of distractor needles (multi-key NIAH) and an "essay"
    haystack of the text's sentences with 4 values for one key (multi-value NIAH). The answer
    supervised is the first value only, as in the reference. Context lengths: `intervals`
    values linspace(ctx_min, ctx_max) (the dataset's default 200: train.py never passes the
    yaml's context_lengths_num_intervals), visited in a shuffled order each epoch."""

    def __init__(self, tokenizer, text, args):
        self.tok = tokenizer
        self.args = args
        flat = re.sub(r"\s+", " ", text).strip()
        self.sentences = [s for s in re.split(r"(?<=[.!?]) ", flat) if s]
        counts = {}
        for w in re.findall(r"[a-z]+", text.lower()):
            if len(w) >= 4:
                counts[w] = counts.get(w, 0) + 1
        self.words = sorted(w for w, c in counts.items() if c >= 2)
        self.lengths = [int(x) for x in torch.linspace(args.ctx_min, args.ctx_max, args.intervals).tolist()]
        self.chat = bool(getattr(tokenizer, "chat_template", None)) and not args.plain_template
        self.rng = random.Random(args.seed)
        self.order, self.epoch_pos = [], 0

    def value(self, rng, kind):
        if kind == "uuids":
            return str(uuid.UUID(int=rng.getrandbits(128), version=4))
        if kind == "numbers":
            return str(rng.randint(10**6, 10**7 - 1))
        return f"{rng.choice(self.words)}-{rng.choice(self.words)}"  # "words": adjective-noun style

    def build(self, kind, n, seed):
        """Prompt text and answer text with n haystack pieces; deterministic in seed."""
        rng = random.Random(seed)
        a = self.args
        needle = "One of the special magic {v} for {key} is: {value}."
        if kind == "needle":
            v_kind, k_kind, n_values = a.needle_values, a.needle_keys, 1
        else:
            v_kind, k_kind, n_values = "numbers", "words", 4
        key = self.value(rng, k_kind)
        values = [self.value(rng, v_kind) for _ in range(n_values)]
        needles = [needle.format(v=v_kind, key=key, value=x) for x in values]
        rng.shuffle(needles)
        if kind == "needle":
            pieces = [needle.format(v=v_kind, key=self.value(rng, k_kind), value=self.value(rng, v_kind))
                      for _ in range(n)]
            for i in sorted(rng.sample(range(max(n, 1)), len(needles)), reverse=True):
                pieces.insert(i, needles.pop())
            context = "\n".join(pieces)
        else:
            # A window of n sentences from a start that does not depend on n (cyclic), so that the
            # prompt grows monotonically with n and sample() can search for the n that fits.
            start = rng.randrange(len(self.sentences))
            sents = [self.sentences[(start + i) % len(self.sentences)] for i in range(n)]
            cuts = [0] + sorted(int(len(sents) * d / 100) for d in rng.sample(DEPTHS, len(needles))) + [len(sents)]
            parts = []
            for i in range(1, len(cuts)):
                parts.append(" ".join(sents[cuts[i - 1]:cuts[i]]))
                if i - 1 < len(needles):
                    parts.append(needles[i - 1])
            context = " ".join(p for p in parts if p)
        intro = (f"Some special magic {v_kind} are hidden within the following text. Make sure to memorize it. "
                 f"I will quiz you about the {v_kind} afterwards.")
        question = f"What are all the special magic {v_kind} for {key} mentioned in the provided text?"
        prefix = f"The special magic {v_kind} for {key} mentioned in the provided text are"
        if self.chat:
            prompt = self.tok.apply_chat_template([{"role": "user", "content": f"{intro}\n{context}\n{question}"}],
                                                  tokenize=False, add_generation_prompt=True) + prefix
        else:
            prompt = f"{intro}\n{context}\n{question} {prefix}"
        return prompt, " " + values[0]

    def encode(self, prompt, answer):
        special = not self.chat  # a chat template writes its own BOS
        p = self.tok(prompt, add_special_tokens=special)["input_ids"]
        full = self.tok(prompt + answer, add_special_tokens=special)["input_ids"]
        if full[:len(p)] != p:  # the answer merged into the prompt's last token: split by ids
            full = p + self.tok(answer, add_special_tokens=False)["input_ids"]
        return full, len(p)

    def sample(self, step):
        if self.epoch_pos == len(self.order):
            self.order = list(range(len(self.lengths)))
            self.rng.shuffle(self.order)
            self.epoch_pos = 0
        i = self.order[self.epoch_pos]
        self.epoch_pos += 1
        length = self.lengths[i]
        kind = ("needle", "essay")[i % 2]
        budget = length - self.args.tokens_to_generate
        seed = self.args.seed * 1_000_003 + step
        # The prompt grows with the haystack pieces n: secant steps towards the budget, keeping
        # the largest prompt that fits; within 2% of the budget is close enough (the reference
        # sizes its haystacks in steps of 25 needles or 500 words).
        n, best = max(1, budget // 24), None
        for _ in range(30):
            prompt, answer = self.build(kind, n, seed)
            ids, ctx = self.encode(prompt, answer)
            if ctx <= budget:
                if best is None or ctx > best[1]:
                    best = (ids, ctx)
                if budget - ctx <= max(16, budget // 50):
                    break
                step = max(1, int(n * (budget - ctx) / ctx * 0.9))
            else:
                step = -max(1, int(n * (ctx - budget) / ctx * 1.02))
            if n + step < 1:
                break
            n += step
        if best is None:
            raise RuntimeError(f"cannot fit a {kind} prompt into {budget} tokens")
        return best[0], best[1], kind


# ----------------------------------------------------------------------------- the model


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class Runner:
    """The decoder written out over HF's modules (Llama, Qwen2, Qwen3), so that the context can
    be run once and the answer positions recomputed with alpha."""

    def __init__(self, model):
        self.model = model
        self.m = model.model
        c = model.config
        self.heads = c.num_attention_heads
        self.kv_heads = getattr(c, "num_key_value_heads", None) or self.heads
        self.head_dim = getattr(c, "head_dim", None) or c.hidden_size // self.heads
        self.group = self.heads // self.kv_heads
        self.scale = self.head_dim ** -0.5

    def project(self, attn, x, cos, sin):
        """q [1, heads, n, d], k and v [1, kv_heads, n, d], q and k after (qk-norm and) RoPE."""
        b, n, _ = x.shape
        q = attn.q_proj(x).view(b, n, -1, self.head_dim)
        k = attn.k_proj(x).view(b, n, -1, self.head_dim)
        v = attn.v_proj(x).view(b, n, -1, self.head_dim).transpose(1, 2)
        if getattr(attn, "q_norm", None) is not None:
            q, k = attn.q_norm(q), attn.k_norm(k)
        q, k = q.transpose(1, 2), k.transpose(1, 2)
        cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
        return q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin, v

    @torch.no_grad()
    def context(self, ids):
        """Runs the context; returns per-layer post-RoPE K and V [kv_heads, n, d] and the final
        hidden states (after the final norm)."""
        x = torch.tensor(ids, device=self.model.device)[None]
        pos = torch.arange(len(ids), device=x.device)[None]
        h = self.m.embed_tokens(x)
        cos, sin = self.m.rotary_emb(h, pos)
        ks, vs = [], []
        for layer in self.m.layers:
            q, k, v = self.project(layer.self_attn, layer.input_layernorm(h), cos, sin)
            ks.append(k[0])
            vs.append(v[0])
            o = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True, scale=self.scale)
            h = h + layer.self_attn.o_proj(o.transpose(1, 2).reshape(1, len(ids), -1))
            h = h + layer.mlp(layer.post_attention_layernorm(h))
        return ks, vs, self.m.norm(h)

    def attend(self, q, K, V, alpha, first, sink, recent):
        """scaled_attn's decode part, fp32: q [heads, a, d] at positions first.., K/V [kv_heads, T, d].
        Keys j < sink or within the query's last `recent` positions use q·k; the others q·(k*alpha)."""
        qf, Kf, Vf = q.float(), K.float().repeat_interleave(self.group, 0), V.float().repeat_interleave(self.group, 0)
        a, T = q.shape[1], K.shape[1]
        p = torch.arange(first, first + a, device=q.device)[:, None]
        j = torch.arange(T, device=q.device)[None, :]
        logits = qf @ Kf.transpose(1, 2) * self.scale
        if alpha is not None:
            ar = alpha.float().repeat_interleave(self.group, 0)[:, None, :]
            masked = (qf * ar) @ Kf.transpose(1, 2) * self.scale
            logits = torch.where((j < sink) | (p - j < recent), logits, masked)
        logits = logits.masked_fill(j > p, float("-inf"))
        return torch.softmax(logits, dim=-1) @ Vf

    def answer(self, ids, first, ks, vs, alphas, sink, recent, checkpoint):
        """Final hidden states of tokens ids[first:], attending to the context's K/V (ks, vs) and to
        their own; alphas: per layer [kv_heads, d], or None for the unmasked model."""
        dev = self.model.device
        x = torch.tensor(ids[first:], device=dev)[None]
        pos = torch.arange(first, len(ids), device=dev)[None]
        h = self.m.embed_tokens(x)
        cos, sin = self.m.rotary_emb(h, pos)
        for li, layer in enumerate(self.m.layers):
            q, k, v = self.project(layer.self_attn, layer.input_layernorm(h), cos, sin)
            K = torch.cat((ks[li][:, :first], k[0]), dim=1)
            V = torch.cat((vs[li][:, :first], v[0]), dim=1)
            alpha = None if alphas is None else alphas[li]
            if checkpoint and torch.is_grad_enabled():
                o = torch.utils.checkpoint.checkpoint(self.attend, q[0], K, V, alpha, first, sink, recent,
                                                      use_reentrant=False)
            else:
                o = self.attend(q[0], K, V, alpha, first, sink, recent)
            h = h + layer.self_attn.o_proj(o.transpose(0, 1).reshape(1, x.shape[1], -1).to(h.dtype))
            h = h + layer.mlp(layer.post_attention_layernorm(h))
        return self.m.norm(h)[0]


class BinaryMask(torch.autograd.Function):
    """where(mask, alpha, 0) forward, identity backward (the reference's straight-through estimator)."""

    @staticmethod
    def forward(ctx, x, mask):
        return torch.where(mask, x, torch.zeros_like(x))

    @staticmethod
    def backward(ctx, grad):
        return grad, None


# ----------------------------------------------------------------------------- training


def check_forward(runner, data, log):
    """The written-out decoder must match HF's, and alpha = 1 must give the teacher exactly."""
    prompt, answer = data.build("needle", 12, data.args.seed)
    ids, ctx = data.encode(prompt, answer)
    ids = ids[:512]
    ctx = min(ctx, len(ids) - 8)
    with torch.no_grad():
        ref = runner.model.model(torch.tensor(ids, device=runner.model.device)[None]).last_hidden_state[0].float()
        ks, vs, mine = runner.context(ids)
        err = (mine[0].float() - ref).abs().max().item() / ref.abs().max().item()
        ks_c, vs_c, _ = runner.context(ids[:ctx])
        t = runner.answer(ids, ctx, ks_c, vs_c, None, 4, 8, False).float()
        err_answer = (t - ref[ctx:]).abs().max().item() / ref.abs().max().item()
        ones = [torch.ones(runner.kv_heads, runner.head_dim, device=t.device) for _ in runner.m.layers]
        s = runner.answer(ids, ctx, ks_c, vs_c, ones, 4, 8, False).float()
    log(f"check: written-out forward vs HF: max relative error {err:.2e} (context), {err_answer:.2e} (answer "
        f"positions, fp32 attention); alpha = 1 vs teacher: {(s - t).abs().max().item():.1e}")
    if err > 0.05 or err_answer > 0.05 or (s - t).abs().max().item() != 0.0:
        sys.exit("check failed: the written-out decoder does not reproduce the model")


def train_stage(stage, runner, data, alphas, args, log):
    steps = args.steps1 if stage == 1 else args.steps2
    lr = args.lr1 if stage == 1 else args.lr2
    reg_weight = args.reg1 if stage == 1 else args.reg2
    opt = torch.optim.AdamW(alphas, lr=lr, weight_decay=0)
    n5 = max(1, steps // 5)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1, max((s + 1) / n5, 0.1), max((steps - s) / n5, 0.1)))
    tokens, start, last = 0, time.time(), {}
    for step in range(steps):
        with torch.no_grad():
            for a in alphas:
                a.clamp_(0, 1)
        ids, ctx, kind = data.sample(step + (0 if stage == 1 else 10**7))
        tokens += len(ids)
        ks, vs, _ = runner.context(ids[:ctx])
        with torch.no_grad():
            teacher = runner.answer(ids, ctx, ks, vs, None, args.sink, args.recent, False).float()
        eff = [a.clamp(0, 1) for a in alphas]
        if stage == 2:
            mask, _ = sparsify(torch.stack(alphas), args.ratio, args.align)
            mask = mask.to(alphas[0].device)
            eff = [BinaryMask.apply(e, mask[i]) for i, e in enumerate(eff)]
        student = runner.answer(ids, ctx, ks, vs, eff, args.sink, args.recent, True).float()
        distill = (teacher - student).pow(2).mean(-1).mean()
        reg = torch.cat([a.flatten() for a in alphas]).abs().mean()
        loss = distill + reg_weight * reg
        loss.backward()
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        last = dict(distill=distill.item(), reg=reg.item(), loss=loss.item())
        if step % args.log_every == 0 or step == steps - 1:
            a = torch.stack([x.detach() for x in alphas]).clamp(0, 1)
            log(f"stage {stage} step {step + 1}/{steps} {kind} ctx {ctx} answer {len(ids) - ctx} | distill "
                f"{last['distill']:.4g} reg {last['reg']:.4f} loss {last['loss']:.4g} lr {opt.param_groups[0]['lr']:.3g}"
                f" | alpha mean {a.mean().item():.3f}, <0.5: {(a < 0.5).float().mean().item():.3f} | "
                f"{time.time() - start:.0f} s")
    with torch.no_grad():
        for a in alphas:
            a.clamp_(0, 1)
    return dict(steps=steps, lr=lr, reg_weight=reg_weight, tokens=tokens, seconds=time.time() - start, **last)


def save_stage(stage, alphas, info, args, meta_model, log):
    a = torch.stack([x.detach().float().cpu() for x in alphas])  # [L, H, D]
    meta = dict(meta_model)
    meta.update({
        "format": "kvlab.leank-importance", "format_version": "1", "importance.source": "trained",
        "calibration.file": args.text, "calibration.sha256": sha256_file(args.text),
        "calibration.tokens": info["tokens"],
        "training.script": "scripts/leank_train.py", "training.stage": stage, "training.preset": args.preset,
        "training.steps": info["steps"], "training.lr": info["lr"], "training.reg_weight": info["reg_weight"],
        "training.sink": args.sink, "training.recent": args.recent,
        "training.context": f"{args.ctx_min}-{args.ctx_max}", "training.seed": args.seed,
        "training.final_distill_loss": f"{info['distill']:.6g}", "training.seconds": f"{info['seconds']:.1f}",
    })
    if stage == 2:
        meta.update({"training.ratio": args.ratio, "training.align": args.align})
    path = os.path.join(args.out, f"stage{stage}_importance.safetensors")
    write_safetensors(path, [("importance", a)], meta)
    with open(os.path.join(args.out, f"stage{stage}_scaling_factors.tsv"), "w") as f:
        for row in a.reshape(a.shape[0], -1).tolist():
            f.write("\t".join(f"{x:.18e}" for x in row) + "\n")
    log(f"wrote {path}")
    if stage == 2:
        mask, thr = sparsify(a, args.ratio, args.align)
        kept = mask.sum(-1).to(torch.int32)
        achieved = 1.0 - kept.sum().item() / mask.numel()
        mmeta = {k: v for k, v in meta_model.items()}
        mmeta.update({
            "format": "kvlab.leank-mask", "format_version": "1", "sparsity.requested": repr(float(args.ratio)),
            "sparsity.achieved": repr(achieved), "alignment": args.align, "threshold": repr(thr),
            "importance.source": "trained", "importance.sha256": sha256_file(path),
            "calibration.file": args.text, "calibration.sha256": meta["calibration.sha256"],
            "calibration.tokens": info["tokens"],
        })
        mpath = os.path.join(args.out, "stage2_mask.safetensors")
        write_safetensors(mpath, [("mask", mask.to(torch.int32)), ("kept", kept)], mmeta)
        hist = {}
        for k in kept.flatten().tolist():
            hist[k] = hist.get(k, 0) + 1
        log(f"wrote {mpath}: sparsity {achieved:.4f}, per-head counts {dict(sorted(hist.items()))}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="Hugging Face model directory")
    ap.add_argument("--preset", required=True, choices=sorted(PRESETS))
    ap.add_argument("--out", required=True)
    ap.add_argument("--text", default="datasets/text/tinyshakespeare.txt", help="haystack text (local)")
    ap.add_argument("--stage", choices=["1", "2", "both"], default="both")
    ap.add_argument("--stage1-importance", help="with --stage 2: start from this stage-1 importance file")
    for name in ["lr1", "reg1", "lr2", "reg2", "ratio"]:
        ap.add_argument(f"--{name}", type=float)
    for name in ["align", "steps1", "steps2", "sink", "recent", "ctx-min", "ctx-max", "tokens-to-generate"]:
        ap.add_argument(f"--{name}", type=int)
    ap.add_argument("--intervals", type=int, default=200, help="context lengths in linspace(ctx-min, ctx-max)")
    ap.add_argument("--initial-value", type=float, default=1.0)
    ap.add_argument("--plain-template", action="store_true", help="no chat template even if the tokenizer has one")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--log-every", type=int, default=25)
    ap.add_argument("--no-checkpoint", action="store_true", help="keep every layer's attention for backward")
    args = ap.parse_args()
    for k, v in PRESETS[args.preset].items():
        if getattr(args, k, None) is None:
            setattr(args, k, v)
    args.checkpoint = not args.no_checkpoint
    if args.stage == "2" and not args.stage1_importance:
        ap.error("--stage 2 needs --stage1-importance")

    os.makedirs(args.out, exist_ok=True)
    log_file = open(os.path.join(args.out, "train_log.txt"), "a")

    def log(msg):
        print(msg, flush=True)
        log_file.write(msg + "\n")
        log_file.flush()

    with open(os.path.join(args.out, "args.json"), "w") as f:
        json.dump(vars(args), f, indent=1)
    torch.manual_seed(args.seed)
    import transformers
    tok = transformers.AutoTokenizer.from_pretrained(args.model)
    model = transformers.AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.bfloat16,
                                                              attn_implementation="sdpa").cuda().eval()
    for p in model.parameters():
        p.requires_grad_(False)
    runner = Runner(model)
    max_pos = getattr(model.config, "max_position_embeddings", args.ctx_max)
    if args.ctx_max > max_pos:
        log(f"note: --ctx-max {args.ctx_max} exceeds max_position_embeddings {max_pos}")
    with open(args.text, encoding="utf-8") as f:
        data = RetrievalData(tok, f.read(), args)
    meta_model = fingerprint(model.config, args.model)
    log(f"{args.model}: {meta_model['model.architecture']} {runner.heads} heads / {runner.kv_heads} KV heads x "
        f"{runner.head_dim}, {len(runner.m.layers)} layers; preset {args.preset}; "
        f"{'chat template' if data.chat else 'plain template'}; torch {torch.__version__}, "
        f"transformers {transformers.__version__}")
    check_forward(runner, data, log)

    L = len(runner.m.layers)
    if args.stage == "2":
        values, meta = read_importance(args.stage1_importance)
        if meta.get("model.sha256") not in (None, "", meta_model["model.sha256"]):
            sys.exit(f"{args.stage1_importance} was made for another checkpoint")
        alphas = [torch.nn.Parameter(values[i].clone().cuda()) for i in range(L)]
    else:
        alphas = [torch.nn.Parameter(torch.full((runner.kv_heads, runner.head_dim), args.initial_value, device="cuda"))
                  for _ in range(L)]
        info = train_stage(1, runner, data, alphas, args, log)
        save_stage(1, alphas, info, args, meta_model, log)
    if args.stage in ("2", "both"):
        info = train_stage(2, runner, data, alphas, args, log)
        save_stage(2, alphas, info, args, meta_model, log)


if __name__ == "__main__":
    main()
