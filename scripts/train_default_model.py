#!/usr/bin/env python3
"""Trains kvlab's embedded default model (run on the GPU machine; about 8 minutes on one H100).

Real 7-8B checkpoints cannot be downloaded where kvlab is developed, so kvlab ships its own
small Llama: a byte-level BPE tokenizer with Llama-3's pipeline and a GQA/RoPE LlamaForCausalLM
of about 8M parameters, trained on Shakespeare plus synthetic long-context retrieval (passkey
in exactly kvlab's format, RULER-style needle-in-a-haystack, variable tracking). Its retrieval
accuracy depends on which tokens the KV cache keeps, which is what kvlab's cache policies
are compared on.

  python3 scripts/train_default_model.py --text tinyshakespeare.txt --out OUT --max-train-seconds 380

(the command that made datasets/models/kvlab-default, seed 1234, 354 s of training on one H100;
docs/default_model.md has its results, kvlab's full-cache scores and what it does badly: the
text is memorised, so perplexity is meaningless with it. The last 5% of the text, which it never
saw, is datasets/text/tinyshakespeare_heldout.txt. Two later runs stopped the memorisation but
never learned to retrieve; docs/default_model.md describes them.)

Outputs (in --out): config.json, model.safetensors (bf16), generation_config.json,
tokenizer.json, tokenizer_config.json, training_log.txt, eval.json (the eval table as data) and
tokenizer_check.jsonl (texts and their ids, to hold kvlab's C++ tokenizer to this one).
--smoke runs the same pipeline with 30 steps and 2 eval samples per cell, to shake out bugs.
"""
import argparse
import json
import math
import os
import platform
import re
import sys
import time
import warnings
import zlib

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # data workers fork; each encodes alone

import numpy as np
import torch
import torch.nn.functional as F
import transformers
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

# Llama-3's split with \p{N} instead of \p{N}{1,3}: one digit per token, so numbers are copied
# digit by digit. A space before a number is then a token of its own (" 123" = " ", "1", "2", "3").
SPLIT_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
               r"|\s*[\r\n]+|\s+(?!\S)|\s+")
BOS, EOT_TEXT, EOT = "<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"
SPECIALS = [BOS, EOT_TEXT, "<|start_header_id|>", "<|end_header_id|>", EOT]

# lib/tasks/passkey.cpp, character for character.
PK_INTRO = ("There is important information hidden in a lot of irrelevant text. Find it and memorize it. "
            "You will be quizzed on this hidden information.")
PK_FILLER = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again. "
PK_QUESTION = "What is the pass key? The pass key is"

# RULER's NIAH template (synthetic.yaml), numbers as values.
NIAH_INTRO = ("Some special magic numbers are hidden within the following text. Make sure to memorize it. "
              "I will quiz you about the numbers afterwards.")
NIAH_NEEDLE = "One of the special magic numbers for {key} is: {value}."
NIAH_Q_ONE = ("What is the special magic number for {key} mentioned in the provided text? "
              "The special magic number for {key} mentioned in the provided text is")
NIAH_Q_ALL = ("What are all the special magic numbers for {key} mentioned in the provided text? "
              "The special magic numbers for {key} mentioned in the provided text are")
VT_INTRO = "Memorize and track the chain of variable assignments hidden in the following text."
VT_QUESTION = "Question: What is the value of VAR {var}? Answer: The value of VAR {var} is"

ANSWER_WEIGHT = 10.0   # loss weight of answer tokens
CONTEXT_WEIGHT = 0.1   # loss weight of the other tokens of a synthetic example (the text is seen often)
ROW_EXTRA = 64         # rows hold the prompt (<= T tokens) plus the answer, so positions past T are seen
HELDOUT_FRACTION = 0.05


# ----------------------------------------------------------------------------- tokenizer

def train_tokenizer(train_text, vocab_size):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(pattern=Regex(SPLIT_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS, min_frequency=2,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    paragraphs = train_text.split("\n\n")
    tok.train_from_iterator((p + "\n\n" for p in paragraphs), trainer)
    tok.post_processor = processors.TemplateProcessing(single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B",
                                                       special_tokens=[(BOS, tok.token_to_id(BOS))])
    return tok


def save_tokenizer(tok, out_dir):
    tok.save(os.path.join(out_dir, "tokenizer.json"))
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w") as f:
        json.dump({"bos_token": BOS, "eos_token": EOT, "tokenizer_class": "PreTrainedTokenizerFast",
                   "model_max_length": 4096, "clean_up_tokenization_spaces": False}, f, indent=2)


def encode(tok, text, bos=False):
    return tok.encode(text, add_special_tokens=bos).ids


# ----------------------------------------------------------------------------- data

class Corpus:
    """Token ids of the training text, and the token indices where a line starts (a clean
    place to cut a haystack: the token before ends in a newline, this one starts a word)."""

    def __init__(self, tok, text):
        self.ids = np.array(encode(tok, text), dtype=np.int32)
        pieces = [tok.decode([i]) for i in range(tok.get_vocab_size())]
        ends_nl = np.array([p.endswith("\n") for p in pieces])
        starts_alpha = np.array([p[:1].isalpha() for p in pieces])
        ok = np.zeros(len(self.ids), dtype=bool)
        ok[1:] = ends_nl[self.ids[:-1]] & starts_alpha[self.ids[1:]]
        self.line_starts = np.flatnonzero(ok)


def key_words(text):
    """Candidate needle keys: lowercase words of the training text, seen at least twice."""
    counts = {}
    for w in re.findall(r"\b[a-z]{4,10}\b", text):
        counts[w] = counts.get(w, 0) + 1
    return sorted(w for w, c in counts.items() if c >= 2)


class Builder:
    """Builds examples as (ids, weights): weights[i] is the loss weight of predicting ids[i]."""

    def __init__(self, tok, corpus, keys):
        self.tok, self.corpus, self.keys = tok, corpus, keys
        self.bos = tok.token_to_id(BOS)
        self.eos = tok.token_to_id(EOT_TEXT)
        self.filler_tokens = len(encode(tok, PK_FILLER))

    # -- pieces

    def shakespeare(self, rng, n_tokens):
        """Whole lines of training text, about n_tokens long (at most n_tokens)."""
        c = self.corpus
        n_tokens = max(0, n_tokens)
        if n_tokens < 8:
            return ""
        hi = int(np.searchsorted(c.line_starts, len(c.ids) - n_tokens - 1, side="right"))
        start = int(c.line_starts[rng.integers(0, max(1, hi))])
        j = int(np.searchsorted(c.line_starts, start + n_tokens, side="right")) - 1
        end = int(c.line_starts[j]) if j >= 0 and c.line_starts[j] > start else start + n_tokens
        return self.tok.decode(c.ids[start:end].tolist())

    def key(self, rng):
        k = self.keys[rng.integers(len(self.keys))]
        if rng.random() < 0.3:  # RULER's keys are adjective-noun pairs
            k = k + "-" + self.keys[rng.integers(len(self.keys))]
        return k

    def haystack(self, rng, kind, n_tokens, needles, avoid=()):
        """Context text of about n_tokens with the needles (text, depth in [0, 1]) inserted;
        a haystack of distractor needles uses no key in avoid."""
        needles = sorted(needles, key=lambda nd: nd[1])
        if kind == "filler":
            reps = max(0, n_tokens // self.filler_tokens)
            units = [PK_FILLER] * reps
            out, last = [], 0
            for text, d in needles:
                at = int(round(d * reps))
                out += units[last:at] + [text + " "]
                last = at
            return "".join(out + units[last:])
        if kind == "needles":  # RULER multikey_2: the haystack is made of distractor needles
            per = len(encode(self.tok, NIAH_NEEDLE.format(key="word", value="1234567") + "\n")) + 1
            keys = [self.key(rng) for _ in range(max(0, n_tokens // per))]
            lines = [NIAH_NEEDLE.format(key=k, value=rng.integers(1000000, 10000000)) + "\n"
                     for k in keys if k not in avoid]
        else:
            lines = self.shakespeare(rng, n_tokens).splitlines(keepends=True)
        out, last = [], 0
        for text, d in needles:
            at = int(round(d * len(lines)))
            out += lines[last:at] + [text + "\n"]
            last = at
        return "".join(out + lines[last:]).rstrip("\n")

    def fit(self, make, budget, estimate):
        """make(n) builds a prompt with an n-token haystack; shrink n until the prompt fits."""
        n = estimate
        for _ in range(6):
            text = make(n)
            ids = encode(self.tok, text, bos=True)
            if len(ids) <= budget:
                return text, ids
            n -= len(ids) - budget + 8
        return text, ids[:budget]

    # -- tasks: each returns (prompt ids, answer text)

    def passkey_cpp(self, context_tokens, depth, key):
        """lib/tasks/passkey.cpp's build_passkey_prompt, step for step."""
        def text(prefix, suffix):
            k = str(key)
            return (PK_INTRO + "\n" + PK_FILLER * prefix + "\nThe pass key is " + k + ". Remember it. " + k +
                    " is the pass key.\n" + PK_FILLER * suffix + "\n" + PK_QUESTION)
        fixed = len(encode(self.tok, text(0, 0), bos=True))
        per_rep = max(1, self.filler_tokens)
        if fixed > context_tokens:
            raise ValueError(f"passkey: context {context_tokens} is shorter than the bare prompt ({fixed})")
        reps = (context_tokens - fixed) // per_rep
        while reps >= 0:
            prefix = int(math.floor(depth * reps + 0.5))  # std::lround for non-negative values
            ids = encode(self.tok, text(prefix, reps - prefix), bos=True)
            if len(ids) <= context_tokens:
                break
            reps -= 1
        return ids

    def passkey(self, rng, budget):
        key = int(rng.integers(1, 100000))
        depth = sample_depth(rng)
        if rng.random() < 0.6:
            return self.passkey_cpp(budget, depth, key), f" {key}."
        needle = f"The pass key is {key}. Remember it. {key} is the pass key."
        fixed = len(encode(self.tok, PK_INTRO + "\n" + needle + "\n" + PK_QUESTION, bos=True))

        def make(n):
            lines = self.shakespeare(rng, n).splitlines(keepends=True)
            at = int(round(depth * len(lines)))
            prefix, suffix = "".join(lines[:at]).rstrip("\n"), "".join(lines[at:]).rstrip("\n")
            return PK_INTRO + "\n" + prefix + "\n" + needle + "\n" + suffix + "\n" + PK_QUESTION
        _, ids = self.fit(make, budget, budget - fixed - 4)
        return ids, f" {key}."

    def niah(self, rng, budget, variant, hay=None, key_pool=None):
        hay = hay or rng.choice(["shakespeare", "filler", "needles"], p=[0.75, 0.15, 0.10])
        keys_from = key_pool or self
        key = keys_from.key(rng)
        needles, values = [], []
        if variant == "multivalue":
            values = [int(v) for v in rng.integers(1000000, 10000000, size=int(rng.integers(2, 5)))]
            needles = [(NIAH_NEEDLE.format(key=key, value=v), sample_depth(rng)) for v in values]
            needles.sort(key=lambda nd: nd[1])
            values = [int(t.rsplit(" ", 1)[1][:-1]) for t, _ in needles]  # answer in text order
            question, answer = NIAH_Q_ALL.format(key=key), " " + ", ".join(map(str, values)) + "."
        else:
            value = int(rng.integers(1000000, 10000000))
            needles = [(NIAH_NEEDLE.format(key=key, value=value), sample_depth(rng))]
            if variant == "multikey":
                others, n_others = set(), int(rng.integers(1, 6))
                while len(others) < n_others:
                    k = keys_from.key(rng)
                    if k != key:
                        others.add(k)
                needles += [(NIAH_NEEDLE.format(key=k, value=int(rng.integers(1000000, 10000000))),
                             sample_depth(rng)) for k in sorted(others)]
            if rng.random() < 0.2:
                question, answer = NIAH_Q_ALL.format(key=key), f" {value}."
            else:
                question, answer = NIAH_Q_ONE.format(key=key), f" {value}."
        head, tail = NIAH_INTRO + "\n", "\n" + question
        fixed = len(encode(self.tok, head + "\n".join(t for t, _ in needles) + tail, bos=True))
        avoid = {key} | {t.split(" for ", 1)[1].split(" is: ", 1)[0] for t, _ in needles}
        _, ids = self.fit(lambda n: head + self.haystack(rng, hay, n, needles, avoid) + tail, budget,
                          budget - fixed - 4)
        return ids, answer

    def vartrack(self, rng, budget, hops=None):
        hops = hops or int(rng.integers(1, 3))

        def name():
            return "".join(chr(65 + c) for c in rng.integers(0, 26, size=5))
        chains = []
        for _ in range(2):  # the asked chain and one distractor chain
            names = [name() for _ in range(hops + 1)]
            value = int(rng.integers(10000, 100000))
            lines = [f"VAR {names[0]} = {value}."] + [f"VAR {b} = VAR {a}." for a, b in zip(names, names[1:])]
            depths = sorted(sample_depth(rng) for _ in lines)
            chains.append((names, value, list(zip(lines, depths))))
        names, value, _ = chains[0]
        needles = chains[0][2] + chains[1][2]
        hay = "shakespeare" if rng.random() < 0.8 else "filler"
        head, tail = VT_INTRO + "\n", "\n" + VT_QUESTION.format(var=names[-1])
        fixed = len(encode(self.tok, head + "\n".join(t for t, _ in needles) + tail, bos=True))
        _, ids = self.fit(lambda n: head + self.haystack(rng, hay, n, needles) + tail, budget,
                          budget - fixed - 4)
        return ids, f" {value}."

    # -- training rows

    def synthetic_row(self, rng, task, row_len, budget):
        if task == "passkey":
            ids, answer = self.passkey(rng, budget)
        elif task == "vartrack":
            ids, answer = self.vartrack(rng, budget)
        else:
            ids, answer = self.niah(rng, budget, task)
        ans = encode(self.tok, answer) + [self.eos]
        w = [0.0] + [CONTEXT_WEIGHT] * (len(ids) - 1) + [ANSWER_WEIGHT] * (len(ans) - 1) + [1.0]
        ids = ids + ans
        return ids[:row_len], w[:row_len]

    def text_row(self, rng, row_len):
        c = self.corpus
        hi = int(np.searchsorted(c.line_starts, len(c.ids) - row_len, side="right"))
        s = int(c.line_starts[rng.integers(0, max(1, hi))])
        ids = [self.bos] + c.ids[s:s + row_len - 1].tolist()
        return ids, [0.0] + [1.0] * (len(ids) - 1)


def sample_depth(rng):
    u = rng.random()
    return 0.0 if u < 0.1 else 1.0 if u < 0.2 else float(rng.random())


TASKS = ["text", "passkey", "single", "multikey", "multivalue", "vartrack"]
DEFAULT_MIX = "text=0.20,passkey=0.25,single=0.20,multikey=0.15,multivalue=0.08,vartrack=0.12"


def parse_mix(spec):
    """'text=0.2,passkey=0.25,...' -> odds in TASKS order (normalised)."""
    odds = dict.fromkeys(TASKS, 0.0)
    for part in spec.split(","):
        name, value = part.split("=")
        if name not in odds:
            raise SystemExit(f"--mix: unknown task {name!r} (tasks: {', '.join(TASKS)})")
        odds[name] = float(value)
    total = sum(odds.values())
    return [odds[t] / total for t in TASKS]


def curriculum(progress):
    """Prompt-length buckets (tokens) and their odds at this point of training."""
    if progress < 0.2:
        return [512, 1024], [0.5, 0.5]
    if progress < 0.45:
        return [1024, 2048], [0.4, 0.6]
    return [2048, 4096], [0.3, 0.7]


class Batches(torch.utils.data.IterableDataset):
    """Batch k is made by worker k % W from a generator seeded by (seed, k): the stream is the
    same whatever the number of workers."""

    def __init__(self, tok_json, corpus, keys, mix, seed, steps, tokens_per_step):
        self.tok_json, self.corpus, self.keys, self.mix = tok_json, corpus, keys, mix
        self.seed, self.steps, self.tokens_per_step = seed, steps, tokens_per_step

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        wid, nw = (info.id, info.num_workers) if info else (0, 1)
        builder = Builder(Tokenizer.from_str(self.tok_json), self.corpus, self.keys)
        for step in range(wid, self.steps, nw):
            yield make_batch(builder, np.random.default_rng([self.seed, step]),
                             step / max(1, self.steps), self.tokens_per_step, self.mix)


def make_batch(builder, rng, progress, tokens_per_step, mix):
    lengths, odds = curriculum(progress)
    T = int(rng.choice(lengths, p=odds))
    row_len = T + ROW_EXTRA
    rows = max(1, tokens_per_step // row_len)
    ids = np.full((rows, row_len), builder.eos, dtype=np.int64)
    w = np.zeros((rows, row_len), dtype=np.float32)
    is_text = np.zeros(rows, dtype=bool)
    for r in range(rows):
        task = TASKS[rng.choice(len(TASKS), p=mix)]
        is_text[r] = task == "text"
        if task == "text":
            x, y = builder.text_row(rng, row_len)
        else:
            budget = T if rng.random() < 0.3 else int(rng.integers(max(256, T // 2), T + 1))
            x, y = builder.synthetic_row(rng, task, row_len, budget)
        ids[r, :len(x)], w[r, :len(y)] = x, y
    return T, torch.from_numpy(ids), torch.from_numpy(w), torch.from_numpy(is_text)


# ----------------------------------------------------------------------------- model

def make_model(args, tok):
    cfg = transformers.LlamaConfig(
        vocab_size=tok.get_vocab_size(), hidden_size=args.hidden, intermediate_size=args.intermediate,
        num_hidden_layers=args.layers, num_attention_heads=args.heads, num_key_value_heads=args.kv_heads,
        head_dim=args.hidden // args.heads, max_position_embeddings=4096, rms_norm_eps=1e-5,
        initializer_range=0.02, tie_word_embeddings=True, attention_bias=False, mlp_bias=False,
        bos_token_id=tok.token_to_id(BOS), eos_token_id=[tok.token_to_id(EOT_TEXT), tok.token_to_id(EOT)])
    rope = {"rope_type": "default", "rope_theta": args.rope_theta}
    if hasattr(cfg, "rope_parameters"):
        cfg.rope_parameters = rope
    else:
        cfg.rope_theta = args.rope_theta
    model = transformers.AutoModelForCausalLM.from_config(cfg, attn_implementation="sdpa", dtype=torch.float32)
    model.generation_config = transformers.GenerationConfig(
        bos_token_id=cfg.bos_token_id, eos_token_id=cfg.eos_token_id, do_sample=False)
    return model


def lr_at(step, steps, peak, warmup):
    if step < warmup:
        return peak * (step + 1) / warmup
    p = (step - warmup) / max(1, steps - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, p))))


# ----------------------------------------------------------------------------- eval

@torch.no_grad()
def greedy(model, ids, n, device):
    x = torch.tensor([ids], device=device)
    out = model(input_ids=x, use_cache=True, logits_to_keep=1)
    past, tokens = out.past_key_values, []
    nxt = out.logits[0, -1].argmax()
    tokens.append(int(nxt))
    for _ in range(n - 1):
        out = model(input_ids=nxt.view(1, 1), past_key_values=past, use_cache=True)
        past = out.past_key_values
        nxt = out.logits[0, -1].argmax()
        tokens.append(int(nxt))
    return tokens


class HeldOutKeys:
    def __init__(self, keys):
        self.keys = keys

    def key(self, rng):
        k = self.keys[rng.integers(len(self.keys))]
        return k + "-" + self.keys[rng.integers(len(self.keys))] if rng.random() < 0.3 else k


def evaluate(model, tok, builder, val_ids, test_ids, eval_keys, samples, device, log):
    model.eval()
    results = {}
    # Passkey: kvlab's prompt builder and kvlab's rule (generate as many tokens as str(K)
    # encodes to, correct iff str(K) is a substring), plus the rule with the leading space.
    rng = np.random.default_rng(1234)
    pk = {}
    for length in (1024, 2048, 4096):
        for depth in (0.0, 0.25, 0.5, 0.75, 1.0):
            cpp_ok = fixed_ok = 0
            for _ in range(samples):
                key = int(rng.integers(1, 100000))
                ids = builder.passkey_cpp(length, depth, key)
                n_cpp = len(encode(tok, str(key)))
                n_fixed = len(encode(tok, " " + str(key)))
                out = greedy(model, ids, max(n_cpp, n_fixed), device)
                cpp_ok += str(key) in tok.decode(out[:n_cpp])
                fixed_ok += str(key) in tok.decode(out[:n_fixed])
            pk[f"{length}/{depth}"] = {"cpp_rule": cpp_ok / samples, "space_rule": fixed_ok / samples}
    results["passkey"] = pk

    def run_task(name, make, length, n):
        r = np.random.default_rng([zlib.crc32(name.encode()), length])
        score, first = 0.0, None
        for _ in range(n):
            ids, answer = make(r, length)
            want = re.findall(r"\d+", answer)
            out = tok.decode(greedy(model, ids, len(encode(tok, answer)), device))
            score += sum(v in out for v in want) / len(want)
            first = first or {"answer": answer, "output": out}
        results[f"{name}@{length}"] = score / n
        log(f"  {name}@{length}: {score / n:.3f}  (e.g. want {first['answer']!r} got {first['output']!r})")

    keys = HeldOutKeys(eval_keys)
    for length in (1024, 4096):
        run_task("niah_single", lambda r, L: builder.niah(r, L, "single", hay="shakespeare", key_pool=keys),
                 length, samples * 5)
    run_task("niah_single_filler", lambda r, L: builder.niah(r, L, "single", hay="filler", key_pool=keys),
             4096, samples * 2)
    run_task("niah_multikey", lambda r, L: builder.niah(r, L, "multikey", hay="shakespeare", key_pool=keys),
             4096, samples * 5)
    run_task("niah_multikey_needles", lambda r, L: builder.niah(r, L, "multikey", hay="needles", key_pool=keys),
             4096, samples * 2)
    run_task("niah_multivalue", lambda r, L: builder.niah(r, L, "multivalue", hay="shakespeare", key_pool=keys),
             4096, samples * 3)
    run_task("vartrack_1hop", lambda r, L: builder.vartrack(r, L, hops=1), 4096, samples * 3)
    run_task("vartrack_2hop", lambda r, L: builder.vartrack(r, L, hops=2), 4096, samples * 3)

    # Perplexity: "test" is the held-out text the training never looked at; "val" is the held-out
    # text that chose when to stop learning from the training text; "train" is training text.
    for window in (1024, 4096):
        results[f"ppl_test@{window}"] = math.exp(heldout_nll(model, builder.bos, test_ids, window, device))
    results["ppl_val@1024"] = math.exp(heldout_nll(model, builder.bos, val_ids, 1024, device))
    train_sample = builder.corpus.ids[:len(test_ids)].tolist()  # same size, from the training text
    results["ppl_train_text@1024"] = math.exp(heldout_nll(model, builder.bos, train_sample, 1024, device))
    return results


@torch.no_grad()
def heldout_nll(model, bos, heldout_ids, window, device, max_windows=None):
    """Mean next-token NLL of the held-out text in windows of BOS + (window - 1) tokens."""
    nll, count, body = 0.0, 0, window - 1
    starts = list(range(0, len(heldout_ids) - body + 1, body))[:max_windows]
    for s in starts:
        x = torch.tensor([[bos] + heldout_ids[s:s + body]], device=device)
        with torch.autocast(x.device.type, dtype=torch.bfloat16):
            logits = model(input_ids=x).logits[0, :-1].float()
        nll += float(F.cross_entropy(logits, x[0, 1:], reduction="sum"))
        count += body
    return nll / count if count else float("nan")


def eval_table(res):
    lines = ["Passkey accuracy (kvlab's prompt; greedy, full attention) — kvlab rule / rule with the space token",
             "", "| context | depth 0 | 0.25 | 0.5 | 0.75 | 1.0 | mean |", "|---|---|---|---|---|---|---|"]
    for length in (1024, 2048, 4096):
        cells = [res["passkey"][f"{length}/{d}"] for d in (0.0, 0.25, 0.5, 0.75, 1.0)]
        mean_c = sum(c["cpp_rule"] for c in cells) / 5
        mean_f = sum(c["space_rule"] for c in cells) / 5
        lines.append(f"| {length} | " + " | ".join(f"{c['cpp_rule']:.2f} / {c['space_rule']:.2f}" for c in cells)
                     + f" | {mean_c:.2f} / {mean_f:.2f} |")
    lines += ["", "| task | score |", "|---|---|"]
    lines += [f"| {k} | {v:.3f} |" for k, v in res.items() if k != "passkey"]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- main

def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def check_sdpa(device, log):
    from torch.nn.attention import SDPBackend, sdpa_kernel
    q = torch.randn(2, 6, 512, 64, device=device, dtype=torch.bfloat16)
    kv = torch.randn(2, 2, 512, 64, device=device, dtype=torch.bfloat16)
    for name, backend in (("flash", SDPBackend.FLASH_ATTENTION), ("cudnn", SDPBackend.CUDNN_ATTENTION),
                          ("efficient", SDPBackend.EFFICIENT_ATTENTION)):
        try:
            with sdpa_kernel([backend]), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                F.scaled_dot_product_attention(q, kv, kv, is_causal=True, enable_gqa=True)
            log(f"sdpa {name} with enable_gqa: ok")
        except Exception as e:  # noqa: BLE001 - only reported
            log(f"sdpa {name} with enable_gqa: unavailable ({str(e).splitlines()[0][:100]})")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--text", required=True, help="tinyshakespeare.txt; the last 5%% is held out")
    ap.add_argument("--out", required=True, help="output model directory")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--hidden", type=int, default=384)
    ap.add_argument("--intermediate", type=int, default=576)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--heads", type=int, default=6)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--rope-theta", type=float, default=10000.0)
    ap.add_argument("--steps", type=int, default=6000)
    ap.add_argument("--tokens-per-step", type=int, default=65536)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--warmup", type=int, default=150)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--workers", type=int, default=14)
    ap.add_argument("--max-train-seconds", type=float, default=400.0,
                    help="training time limit: the lr schedule runs on max(step, time) progress and "
                         "training stops (and says so) when either runs out, so eval and save still happen")
    ap.add_argument("--eval-samples", type=int, default=10, help="passkey samples per (length, depth) cell")
    ap.add_argument("--device", default="cuda", help="cuda; cpu only to test the script's plumbing")
    ap.add_argument("--log-every", type=int, default=50)
    ap.add_argument("--mix", default=DEFAULT_MIX, help="odds of each kind of training row")
    ap.add_argument("--heldout-every", type=int, default=500,
                    help="steps between validation checks (with --distill-text: while text is still learned)")
    ap.add_argument("--distill-text", action="store_true",
                    help="EXPERIMENTAL, see docs/default_model.md: once the validation NLL stops improving, "
                         "text rows are distilled from the best snapshot and synthetic context tokens carry no "
                         "loss. Stops the memorisation of the text, but in the one run made with it retrieval "
                         "never emerged")
    ap.add_argument("--lm-patience", type=int, default=2,
                    help="validation checks without improvement before the text loss turns into distillation")
    ap.add_argument("--lm-stop-by", type=float, default=0.3,
                    help="fraction of the steps by which the text loss turns into distillation at the latest")
    ap.add_argument("--smoke", action="store_true", help="30 steps and 2 eval samples: a quick end-to-end check")
    args = ap.parse_args()
    if args.smoke:
        args.steps, args.eval_samples, args.log_every, args.warmup = 30, 2, 5, 5
        args.heldout_every = min(args.heldout_every, 4)

    t_start = time.time()
    os.makedirs(args.out, exist_ok=True)
    log_file = open(os.path.join(args.out, "training_log.txt"), "w")

    def log(msg=""):  # written as it goes, so a run cut off at its time limit still leaves its log
        print(msg, flush=True)
        log_file.write(msg + "\n")
        log_file.flush()

    device = args.device
    torch.manual_seed(args.seed)
    torch.backends.cuda.matmul.allow_tf32 = True
    log("command: python3 " + " ".join(sys.argv))
    log(f"seed: {args.seed}")
    log("hyper-parameters: " + json.dumps(vars(args), sort_keys=True))
    mix = parse_mix(args.mix)
    log(f"mix: {dict(zip(TASKS, [round(m, 3) for m in mix]))}; answer weight {ANSWER_WEIGHT}, synthetic-context weight "
        f"{CONTEXT_WEIGHT}, text weight 1.0; curriculum " +
        ", ".join(f"from {p:.0%}: {curriculum(p + 1e-9)}" for p in (0.0, 0.2, 0.45)))
    log(f"versions: python {platform.python_version()}, torch {torch.__version__}, transformers "
        f"{transformers.__version__}, " + (f"gpu {torch.cuda.get_device_name(0)}" if device == "cuda" else device))
    if device == "cuda":
        check_sdpa(device, log)

    # Tokenizer, trained on the first 95% of the text only.
    text = open(args.text, encoding="utf-8").read()
    cut = text.rfind("\n\n", 0, int(len(text) * (1 - HELDOUT_FRACTION))) + 2
    train_text, heldout_text = text[:cut], text[cut:]
    t0 = time.time()
    tok = train_tokenizer(train_text, args.vocab)
    save_tokenizer(tok, args.out)
    log(f"tokenizer: vocab {tok.get_vocab_size()}, trained in {time.time() - t0:.1f}s")
    for s in (" 12345", "12345", "The pass key is 4821.", PK_QUESTION + " 77"):
        e = tok.encode(s, add_special_tokens=False)
        log(f"  {s!r} -> {e.tokens}")
    corpus = Corpus(tok, train_text)
    heldout_ids = encode(tok, heldout_text)
    n_val = int(len(heldout_ids) * 0.4)
    val_ids, test_ids = heldout_ids[:n_val], heldout_ids[n_val:]
    log(f"corpus: {len(corpus.ids)} training tokens ({len(train_text) / len(corpus.ids):.2f} chars/token), "
        f"{len(corpus.line_starts)} line starts; held out {len(heldout_ids)} tokens "
        f"({len(val_ids)} validation, {len(test_ids)} test)")
    words = key_words(train_text)
    perm = np.random.default_rng(args.seed).permutation(len(words))
    n_eval = len(words) // 5
    eval_keys = [words[i] for i in perm[:n_eval]]
    train_keys = [words[i] for i in perm[n_eval:]]
    log(f"needle keys: {len(train_keys)} training words, {len(eval_keys)} held-out words for eval")

    builder = Builder(tok, corpus, train_keys)
    # Sanity: one row of each task, shown decoded around the answer.
    rng = np.random.default_rng(0)
    for task in TASKS[1:]:
        x, y = builder.synthetic_row(rng, task, 1024 + ROW_EXTRA, 1024)
        a = [i for i, v in enumerate(y) if v == ANSWER_WEIGHT]
        log(f"  sample {task}: {len(x)} tokens; tail {tok.decode(x[a[0] - 24:a[-1] + 2])!r}")

    model = make_model(args, tok).to(device)
    n_params = sum(p.numel() for p in model.parameters())
    log(f"model: {n_params / 1e6:.2f}M parameters ({n_params * 2 / 2 ** 20:.2f} MiB in bf16); "
        f"attention {getattr(model.config, '_attn_implementation', '?')}")

    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95), eps=1e-8, **({"fused": True} if device == "cuda" else {}))
    data = torch.utils.data.DataLoader(
        Batches(tok.to_str(), corpus, train_keys, mix, args.seed, args.steps, args.tokens_per_step),
        batch_size=None, num_workers=args.workers, prefetch_factor=4 if args.workers else None,
        pin_memory=device == "cuda", persistent_workers=False)

    log("")
    log("step | T | loss | answer loss | lr | tokens/s | data wait s | elapsed s  (loss: the weighted loss "
        "optimised; answer loss: mean CE of answer tokens)")
    model.train()
    t_train = time.time()
    tokens_seen, wait, last_t, last_tokens = 0, 0.0, time.time(), 0
    step_times = {}
    stopped_early = False
    # The training text is only ~0.3M tokens and is seen hundreds of times, so a plain LM loss on it
    # memorises it (the default recipe: held-out ppl ~10^5, training-text ppl ~1). --distill-text
    # keeps cross-entropy on text only until the validation NLL stops improving, then distils text
    # rows from the best snapshot (KL to its predictions) and drops the synthetic rows' context loss.
    # That kept held-out ppl near its best, but retrieval never emerged: the context loss (repeated
    # filler, the needle's repeated number, the repeated key in the question) is probably what
    # grows the copying heads that the answers then use.
    best_val, best_step, best_state, bad_checks, teacher = float("inf"), -1, None, 0, None

    def check_val():
        model.eval()
        h = heldout_nll(model, builder.bos, val_ids, 1024, device)
        model.train()
        return h

    t_wait = time.time()
    for step, (T, ids, w, is_text) in enumerate(data):
        wait += time.time() - t_wait
        t_step = time.time()
        # Progress is the larger of steps and time, so a slow run still anneals its learning rate.
        progress = max(step / args.steps, (time.time() - t_train) / args.max_train_seconds)
        if progress >= 1.0:
            log(f"stopping early at step {step}: past --max-train-seconds {args.max_train_seconds}")
            stopped_early = True
            break
        lr = lr_at(int(progress * args.steps), args.steps, args.lr, args.warmup)
        for g in opt.param_groups:
            g["lr"] = lr
        ids = ids.to(device, non_blocking=True)
        w = w.to(device, non_blocking=True)
        is_text = is_text.to(device, non_blocking=True)
        with torch.autocast(device, dtype=torch.bfloat16):
            logits = model(input_ids=ids).logits
        ce = F.cross_entropy(logits[:, :-1].float().reshape(-1, logits.size(-1)), ids[:, 1:].reshape(-1),
                             reduction="none").view(ids.size(0), -1)
        wt = w[:, 1:]
        per_token = ce
        if teacher is not None:
            wt = torch.where((wt > 0) & (wt < 0.5), torch.zeros_like(wt), wt)  # synthetic context: off
            if bool(is_text.any()):
                with torch.no_grad(), torch.autocast(device, dtype=torch.bfloat16):
                    t_logp = F.log_softmax(teacher(input_ids=ids[is_text]).logits[:, :-1].float(), dim=-1)
                s_logp = F.log_softmax(logits[is_text][:, :-1].float(), dim=-1)
                kl = (t_logp.exp() * (t_logp - s_logp)).sum(-1)
                per_token = ce.clone()
                per_token[is_text] = kl
        loss = (per_token * wt).sum() / wt.sum().clamp(min=1e-6)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        tokens_seen += ids.numel()
        if args.smoke or step % args.log_every == 0 or step == args.steps - 1:
            amask = wt == ANSWER_WEIGHT
            ans = float((ce.detach() * amask).sum() / amask.sum().clamp(min=1))
            now = time.time()
            rate = (tokens_seen - last_tokens) / max(1e-9, now - last_t)
            last_t, last_tokens = now, tokens_seen
            log(f"{step} | {T} | {float(loss.detach()):.4f} | {ans:.4f} | {lr:.2e} | {rate:,.0f} | {wait:.1f} | "
                f"{now - t_train:.1f}")
        if args.smoke:
            sync(device)
            step_times.setdefault(int(T), []).append(time.time() - t_step)
        every = args.heldout_every if teacher is None else 5 * args.heldout_every
        if step > 0 and step % every == 0:
            h = check_val()
            log(f"{step} | validation NLL {h:.4f} (ppl {math.exp(h):.1f})")
            if args.distill_text and teacher is None:
                if h < best_val:
                    best_val, best_step, bad_checks = h, step, 0
                    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                else:
                    bad_checks += 1
                if bad_checks >= args.lm_patience or step >= args.lm_stop_by * args.steps:
                    teacher = make_model(args, tok).to(device)
                    teacher.load_state_dict(best_state)
                    teacher.eval().requires_grad_(False)
                    best_state = None
                    log(f"{step} | text loss becomes distillation from the step-{best_step} snapshot "
                        f"(validation NLL {best_val:.4f}, ppl {math.exp(best_val):.1f}); synthetic context "
                        f"loss off")
        t_wait = time.time()
    sync(device)
    train_s = time.time() - t_train
    steps_done = step + (0 if stopped_early else 1)
    log(f"training: {steps_done} steps, {tokens_seen / 1e6:.1f}M tokens, {train_s:.1f}s "
        f"({tokens_seen / train_s:,.0f} tokens/s), data wait {wait:.1f}s" + (" (stopped early)" if stopped_early else ""))
    if step_times:
        log("step time by T (smoke; first step of each T includes warm-up): " + json.dumps(
            {k: [round(x, 3) for x in v] for k, v in sorted(step_times.items())}))
    del data

    # Save first (a run cut off during eval keeps its model), then evaluate the model as saved: bf16.
    model = model.to(torch.bfloat16)
    model.config.use_cache = True
    model.save_pretrained(args.out)
    size = os.path.getsize(os.path.join(args.out, "model.safetensors"))
    log("")
    log(f"saved {args.out}: model.safetensors {size / 2 ** 20:.2f} MiB")
    t0 = time.time()
    log("")
    log("eval:")
    res = evaluate(model, tok, builder, val_ids, test_ids, eval_keys, args.eval_samples, device, log)
    log(f"eval took {time.time() - t0:.1f}s")
    log("")
    log(eval_table(res))
    log("")
    log(f"wall time: {time.time() - t_start:.1f}s")
    with open(os.path.join(args.out, "eval.json"), "w") as f:
        json.dump(res, f, indent=2)
    # Prompts and ids for checking kvlab's C++ tokenizer against this one.
    with open(os.path.join(args.out, "tokenizer_check.jsonl"), "w") as f:
        r = np.random.default_rng(7)
        samples = [PK_QUESTION + " 12345.", heldout_text[:2000], tok.decode(builder.passkey_cpp(1024, 0.5, 4821)),
                   tok.decode(builder.niah(r, 1024, "multikey")[0])]
        for s in samples:
            f.write(json.dumps({"text": s, "ids": encode(tok, s, bos=True)}) + "\n")


if __name__ == "__main__":
    main()
