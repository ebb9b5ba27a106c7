#!/usr/bin/env python3
"""Writes the seed corpora in fuzz/corpus/<target>/ from the repository's real files, and the
hand-written reproducers in fuzz/regressions/<target>/.

Run from anywhere: python3 fuzz/make_corpus.py (needs scripts/fetch_tokenizers.sh's output).
Seeds are kept small (libFuzzer's -max_len follows the largest seed): real tensors cut to
the 1-D ones, real tokenizers cut to a few hundred tokens, real dataset lines. Reproducers that
libFuzzer saved are copied into fuzz/regressions/ by hand and are not rewritten here.
"""
import json
import os
import random
import shutil
import struct

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")
MODELS = os.path.join(ROOT, "datasets", "models")
TOKENIZERS = os.path.join(ROOT, "third_party", "tokenizers")


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def read_safetensors(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    header = json.loads(b[8:8 + n])
    base = 8 + n
    tensors = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        lo, hi = e["data_offsets"]
        tensors[name] = (e["dtype"], e["shape"], b[base + lo:base + hi])
    return header.get("__metadata__"), tensors


def encode_safetensors(tensors, metadata=None, pad=True):
    header, data = {}, b""
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header, separators=(",", ":")).encode()
    if pad:  # the reference writer pads the header with spaces to a multiple of 8
        text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def safetensors_seeds():
    t = "safetensors_header"
    for model in ["tiny-random-llama", "tiny-random-qwen2", "tiny-random-qwen3"]:
        d = os.path.join(MODELS, model)
        shard = sorted(f for f in os.listdir(d) if f.endswith(".safetensors"))[0]
        meta, tensors = read_safetensors(os.path.join(d, shard))
        small = {k: v for k, v in tensors.items() if len(v[1]) == 1}  # norms and biases
        write(t, model + "-1d.safetensors", encode_safetensors(dict(list(small.items())[:8]), meta))
        write(t, model + "-1d-unpadded.safetensors", encode_safetensors(dict(list(small.items())[:3]), None, False))
        raw = open(os.path.join(d, shard), "rb").read()
        n = struct.unpack("<Q", raw[:8])[0]
        write(t, model + "-header-only.safetensors", raw[:8 + n])  # the real header, data cut off
    f32 = struct.pack("<4f", 1.0, -2.0, 0.5, 3.25)
    write(t, "mixed-dtypes.safetensors", encode_safetensors({
        "f32": ("F32", [2, 2], f32), "f16": ("F16", [2], b"\x00\x3c\x00\xc0"),
        "bf16": ("BF16", [1, 2], b"\x80\x3f\x00\x40"), "i32": ("I32", [1], b"\x07\x00\x00\x00"),
        "empty": ("F32", [0, 4], b""), "scalar": ("F32", [], b"\x00\x00\x80\x3f")}))
    write(t, "empty-header.safetensors", encode_safetensors({}))
    write(t, "nan.safetensors", encode_safetensors({"w": ("F32", [2], struct.pack("<2f", float("nan"), 1.0))}))


def index_seeds():
    t = "safetensors_index"
    write(t, "tiny-random-llama.index.json",
          open(os.path.join(MODELS, "tiny-random-llama", "model.safetensors.index.json")).read())
    write(t, "small.index.json", json.dumps({"metadata": {"total_size": 12},
                                             "weight_map": {"a": "small.safetensors", "b": "small.safetensors",
                                                            "c": "small.safetensors"}}))
    write(t, "split.index.json", json.dumps({"weight_map": {
        "a": "small.safetensors", "lm_head.weight": "model-00002-of-00002.safetensors",
        "model.norm.weight": "model-00002-of-00002.safetensors"}}))
    write(t, "empty.index.json", '{"weight_map": {}}')


def config_seeds():
    t = "config"
    for model in ["tiny-random-llama", "tiny-random-qwen2", "tiny-random-qwen3", "tiny-random-qwen3-yarn"]:
        write(t, model + ".json", open(os.path.join(MODELS, model, "config.json")).read())
    # The shapes of the published Llama-3.1-8B, Qwen2.5-7B and Qwen3-8B configs.
    write(t, "llama-3.1-8b.json", json.dumps({
        "architectures": ["LlamaForCausalLM"], "attention_bias": False, "bos_token_id": 128000,
        "eos_token_id": [128001, 128008, 128009], "hidden_act": "silu", "hidden_size": 4096,
        "intermediate_size": 14336, "max_position_embeddings": 131072, "mlp_bias": False,
        "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8, "rms_norm_eps": 1e-05,
        "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                         "original_max_position_embeddings": 8192, "rope_type": "llama3"},
        "rope_theta": 500000.0, "tie_word_embeddings": False, "torch_dtype": "bfloat16", "vocab_size": 128256}, indent=2))
    write(t, "qwen2.5-7b.json", json.dumps({
        "architectures": ["Qwen2ForCausalLM"], "bos_token_id": 151643, "eos_token_id": 151645,
        "hidden_act": "silu", "hidden_size": 3584, "intermediate_size": 18944, "max_position_embeddings": 32768,
        "max_window_layers": 28, "num_attention_heads": 28, "num_hidden_layers": 28, "num_key_value_heads": 4,
        "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "sliding_window": 131072, "tie_word_embeddings": False,
        "torch_dtype": "bfloat16", "use_sliding_window": False, "vocab_size": 152064,
        "rope_scaling": {"type": "linear", "factor": 2.0}}, indent=2))
    # Qwen2.5-7B-Instruct with the YaRN block its model card adds for 128K.
    write(t, "qwen2.5-7b-yarn.json", json.dumps({
        "architectures": ["Qwen2ForCausalLM"], "hidden_size": 3584, "intermediate_size": 18944,
        "max_position_embeddings": 32768, "num_attention_heads": 28, "num_hidden_layers": 28,
        "num_key_value_heads": 4, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "vocab_size": 152064,
        "rope_scaling": {"factor": 4.0, "original_max_position_embeddings": 32768, "type": "yarn"}}, indent=2))
    write(t, "qwen3-8b.json", json.dumps({
        "architectures": ["Qwen3ForCausalLM"], "attention_bias": False, "bos_token_id": 151643,
        "eos_token_id": 151645, "head_dim": 128, "hidden_act": "silu", "hidden_size": 4096,
        "intermediate_size": 12288, "max_position_embeddings": 40960, "num_attention_heads": 32,
        "num_hidden_layers": 36, "num_key_value_heads": 8, "rms_norm_eps": 1e-06,
        "rope_parameters": {"rope_theta": 1000000, "rope_type": "default"}, "tie_word_embeddings": False,
        "dtype": "bfloat16", "vocab_size": 151936}, indent=2))


def cut_tokenizer(path, keep_vocab, keep_added):
    """A real tokenizer.json with its vocabulary cut to the first ids and the merges among them."""
    j = json.load(open(path, encoding="utf-8"))
    vocab = {k: v for k, v in j["model"]["vocab"].items() if v < keep_vocab}
    merges = []
    for m in j["model"]["merges"]:
        a, b = m.split(" ", 1) if isinstance(m, str) else m
        if a in vocab and b in vocab and a + b in vocab:
            merges.append(m)
    j["model"]["vocab"] = vocab
    j["model"]["merges"] = merges
    j["added_tokens"] = j["added_tokens"][:keep_added]
    return json.dumps(j, ensure_ascii=False, indent=1)


def tokenizer_seeds():
    t = "tokenizer_load"
    write(t, "tiny-random.json", open(os.path.join(MODELS, "tiny-random-llama", "tokenizer.json"), "rb").read())
    for name in ["llama3_1", "qwen3"]:
        write(t, name + "-cut.json", cut_tokenizer(os.path.join(TOKENIZERS, name, "tokenizer.json"), 400, 12))
    t = "tokenizer_encode"
    random.seed(9)
    lines = [json.loads(l)["text"] for l in open(os.path.join(ROOT, "tests", "golden", "tokenizer", "llama3_1.jsonl"),
                                                encoding="utf-8")]
    lines = [l for l in lines if 0 < len(l.encode()) <= 600]
    for i, text in enumerate(random.sample(lines, 40)):
        write(t, "golden-%02d.txt" % i, text)
    for name, raw in {
        "specials.txt": "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|><|im_start|>x<|im_end|>",
        "spaces.txt": " \t \n\n\n   a  " + " " * 200 + "\u3000\u00a0b",
        "digits.txt": "1234567890 3.14159 -42 1e10 0x1F 1,000,000",
        "invalid-continuation.bin": b"ab\x80cd",
        "invalid-overlong.bin": b"\xc0\xaf",
        "invalid-surrogate.bin": b"\xed\xa0\x80",
        "invalid-truncated.bin": b"caf\xc3",
        "invalid-above-max.bin": b"\xf4\x90\x80\x80",
        "nul.bin": b"a\x00b",
    }.items():
        write(t, name, raw)


def jsonl_seeds():
    t = "jsonl_dataset"
    path = os.path.join(ROOT, "datasets", "qa", "example.jsonl")
    if not os.path.exists(path):
        return
    lines = open(path, encoding="utf-8").read().splitlines()
    write(t, "example-head.jsonl", "\n".join(lines[:3]) + "\n")
    write(t, "bom-blank-crlf.jsonl", "\ufeff" + lines[0] + "\r\n\r\n" + lines[1] + "\r\n")
    write(t, "bad-lines.jsonl", "\n".join([lines[0], "{", "[]", '{"id": 1}', lines[0], '{"id":"x","context":"c",'
                                           '"question":"q","answers":["."],"extra":1}']) + "\n")


def sweep_seeds():
    t = "sweep_file"
    path = os.path.join(ROOT, "configs", "sweep_example.json")
    if os.path.exists(path):
        write(t, "sweep_example.json", open(path).read())
    write(t, "minimal.json", json.dumps({"tasks": ["passkey"], "caches": ["full"]}))
    write(t, "zip-list.json", json.dumps({
        "name": "z", "base": {"context": 160},
        "models": [{"model": "datasets/models/tiny-random-llama", "grid": {"seed": [0, 1]}}],
        "tasks": [{"task": "passkey", "zip": [{"samples": [1, 2], "seed": [3, 4]}]}],
        "caches": [{"cache": "snapkv", "grid": {"budget": [32, "50%"]}, "cache_params": {"window": 8}}]}))


def regressions():
    """Reproducers of what fuzzing and review found (see fuzz/README.md), written by hand."""
    def put(target, name, data):
        d = os.path.join(ROOT, "fuzz", "regressions", target)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, name), "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)

    # An error message quoting a value nested deeper than the stack: 150,000 levels overflow
    # nlohmann's recursive dump() in a Release build (100,000 do; 50,000 do not).
    deep = "[" * 150000 + "]" * 150000
    put("config", "deep-value-in-error-message.json",
        '{"architectures": ["LlamaForCausalLM"], "vocab_size": %s}' % deep)
    header = '{"w": {"dtype": "F32", "shape": %s, "data_offsets": [0, 4]}}' % deep
    put("safetensors_header", "deep-shape-in-error-message.safetensors",
        struct.pack("<Q", len(header)) + header.encode() + b"\0" * 4)
    put("tokenizer_load", "deep-value.json",
        '{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "normalizer": %s}' % deep)
    put("sweep_file", "deep-value.json", '{"tasks": ["passkey"], "caches": ["full"], "base": {"context": %s}}' % deep)
    # BF16 data at an odd address: the header is not padded to a multiple of 8.
    header = '{"w":{"dtype":"BF16","shape":[3],"data_offsets":[0,6]}}'
    assert len(header) % 2 == 1
    put("safetensors_header", "misaligned-bf16.safetensors",
        struct.pack("<Q", len(header)) + header.encode() + b"\x80\x3f\x00\x40\x40\x40")
    # YaRN finds its band through log(rope_theta): at theta 1 the band edges are infinite and the
    # frequencies NaN; an attention factor beyond fp32 makes every cos and sin inf; a theta of
    # 1e-40 is 0 in fp32 and every frequency inf.
    yarn = {"architectures": ["Qwen2ForCausalLM"], "vocab_size": 8, "hidden_size": 8, "intermediate_size": 8,
            "num_hidden_layers": 1, "num_attention_heads": 1, "max_position_embeddings": 4096,
            "rope_theta": 1.0, "rope_scaling": {"rope_type": "yarn", "factor": 4.0}}
    put("config", "yarn-theta-one.json", json.dumps(yarn))
    yarn["rope_theta"] = 10000.0
    yarn["rope_scaling"]["attention_factor"] = 1e300
    put("config", "yarn-attention-factor-beyond-fp32.json", json.dumps(yarn))
    del yarn["rope_scaling"]
    yarn["rope_theta"] = 1e-40
    put("config", "theta-zero-in-fp32.json", json.dumps(yarn))
    # A number beyond double's range: nlohmann throws out_of_range (406), not parse_error.
    put("tokenizer_load", "number-overflow.json", '{"version": 1e999, "model": {}}')
    put("jsonl_dataset", "number-overflow.jsonl",
        '{"id": "a", "context": "c", "question": "q", "answers": ["x"], "meta": 1e999}\n')
    # A post-processor that prepends an id no token has.
    put("tokenizer_load", "post-processor-id-not-a-token.json", json.dumps({
        "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]},
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True},
        "decoder": {"type": "ByteLevel"},
        "post_processor": {"type": "TemplateProcessing",
                           "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                                      {"Sequence": {"id": "A", "type_id": 0}}],
                           "special_tokens": {"<s>": {"id": "<s>", "ids": [999], "tokens": ["<s>"]}}}}))


if __name__ == "__main__":
    shutil.rmtree(CORPUS, ignore_errors=True)
    safetensors_seeds()
    index_seeds()
    config_seeds()
    tokenizer_seeds()
    jsonl_seeds()
    sweep_seeds()
    regressions()
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(CORPUS) for f in fs)
    regressions_total = sum(os.path.getsize(os.path.join(d, f))
                            for d, _, fs in os.walk(os.path.join(ROOT, "fuzz", "regressions")) for f in fs)
    print("fuzz/corpus: %d bytes, fuzz/regressions: %d bytes" % (total, regressions_total))
