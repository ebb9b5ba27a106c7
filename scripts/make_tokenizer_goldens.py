#!/usr/bin/env python3
"""Writes the tokenizer goldens that tests/test_tokenizer.cpp and tests/test_chat_template.cpp
hold kvlab to: Hugging Face's own ids, decodings and chat-template renderings.

Needs tokenizers (0.23) and transformers (5.x); runs offline:

    python3 scripts/make_tokenizer_goldens.py --tokenizers third_party/tokenizers \
        --text /work/shared/data/text/tinyshakespeare.txt --out tests/golden/tokenizer

For each tokenizer folder (llama3_1, qwen3: tokenizer.json + tokenizer_config.json) it writes
<out>/<name>.jsonl, one compact JSON object a line:
  {"text": ..., "ids": [...], "ids_special": [...]?, "decoded": ...?}
      ids: Tokenizer.encode(text, add_special_tokens=False).ids; ids_special (every 8th text):
      the same with add_special_tokens=True; decoded: Tokenizer.decode(ids, skip_special_tokens=False),
      written only where it differs from text (NFC normalization, for instance).
  {"messages": [...], "add_generation_prompt": bool, "enable_thinking": false?, "text": ..., "ids": [...]}
      apply_chat_template(messages, tokenize=False) with the chat_template of tokenizer_config.json,
      and the ids of apply_chat_template(..., tokenize=True).
The texts are built deterministically (seeded) from the given English text and fixed samples of
other scripts, code, emoji, whitespace, digits, non-NFC text and inline special tokens.
"""

import argparse
import json
import random
import sys
from pathlib import Path

SEED = 20240726
TOKENIZER_NAMES = ("llama3_1", "qwen3")
SPECIAL_EVERY = 8  # every 8th text also gets ids with add_special_tokens=True
MAX_FILE_BYTES = 2_000_000

JAPANESE = [
    "吾輩は猫である。名前はまだ無い。",
    "どこで生れたかとんと見当がつかぬ。",
    "今日はとても良い天気ですね。",
    "東京駅から新幹線で京都へ向かいました。",
    "この本は図書館で借りたものです。",
    "すみません、駅はどこですか？",
    "日本語の文章には空白がほとんどありません。",
    "カタカナとひらがなと漢字が混ざっています。",
    "明日の会議は午後三時からです。",
    "私はコーヒーよりお茶が好きです。",
    "富士山の頂上から見た日の出は素晴らしかった。",
    "ｶﾀｶﾅの半角文字も時々使われます。",
    "ＡＢＣと１２３は全角の英数字です。",
    "「こんにちは」と彼女は言った。",
    "雨が降りそうなので、傘を持って行きましょう。",
    "プログラミング言語のC++とPythonを勉強しています。",
    "桜の花が咲く季節になりました。",
    "電車が十分遅れています。",
    "ラーメンを食べに行きませんか？",
    "人工知能の研究は急速に進んでいる。",
]
CHINESE = [
    "我们今天去公园散步吧。",
    "这个问题比我想象的要复杂得多。",
    "北京是中华人民共和国的首都。",
    "他每天早上六点起床，然后去跑步。",
    "学而时习之，不亦说乎？",
    "有朋自远方来，不亦乐乎？",
    "床前明月光，疑是地上霜。举头望明月，低头思故乡。",
    "请把窗户关上，外面太冷了。",
    "機器學習是人工智慧的一個分支。",
    "繁體中文和簡體中文的寫法不同。",
    "这家餐厅的饺子非常好吃。",
    "大语言模型需要大量的计算资源。",
    "上海的夜景真漂亮！",
    "我在图书馆借了三本书。",
    "你好，世界！",
    "长江是中国最长的河流。",
    "他说：“明天见。”",
    "价格是１２８元，打八折。",
    "春眠不觉晓，处处闻啼鸟。",
    "请问，洗手间在哪里？",
]
KOREAN = [
    "안녕하세요, 만나서 반갑습니다.",
    "오늘 날씨가 정말 좋네요.",
    "저는 한국어를 공부하고 있어요.",
    "서울은 대한민국의 수도입니다.",
    "이 책은 정말 재미있어요!",
    "내일 아침에 회의가 있습니다.",
    "김치찌개를 좋아하세요?",
    "한글은 세종대왕이 만들었습니다.",
    "지하철역이 어디에 있나요?",
    "커피 한 잔 주세요.",
    "우리는 주말에 등산을 갔어요.",
    "인공지능 기술이 빠르게 발전하고 있다.",
    "감사합니다. 안녕히 가세요.",
    "그는 매일 운동을 합니다.",
    "부산 바다가 정말 아름다웠어요.",
]
OTHER_SCRIPTS = [
    "Привет, как дела? Всё хорошо, спасибо.",
    "Москва — столица России.",
    "Γειά σου Κόσμε! Η γλώσσα είναι ελληνική.",
    "مرحبا بالعالم! كيف حالك؟",
    "السَّلَامُ عَلَيْكُمْ",
    "שָׁלוֹם עוֹלָם, מה שלומך?",
    "नमस्ते दुनिया! आप कैसे हैं?",
    "क्षत्रिय और ज्ञान",
    "สวัสดีครับ ยินดีที่ได้รู้จัก",
    "Xin chào thế giới! Tiếng Việt có nhiều dấu.",
    "Ελληνικά και English μαζί.",
    "Zürich, Köln, Málaga, Øresund, Łódź, İstanbul, Ærø.",
    "naïve café résumé coöperate façade jalapeño",
    "Straße, Maß, groß — STRASSE",
    "ǅemal ǈubljana ǋegoš",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕞𝕒𝕥𝕙 𝐁𝐨𝐥𝐝 𝘪𝘵𝘢𝘭𝘪𝘤",
    "𠀀𠀁𠀂 𪚥 𩸽 are CJK extension characters.",
    "ᚠᚢᚦᚨᚱᚲ runes and ᏣᎳᎩ Cherokee",
    "ⅠⅡⅢⅣ Roman numerals, ①②③ circled, ½ ¾ fractions",
    "Ⓐⓑⓒ circled letters and 🄰🄱🄲 squared ones",
]
CODE = [
    'def fib(n: int) -> int:\n    """Return the n-th Fibonacci number."""\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n',
    "import numpy as np\n\nx = np.arange(10)\nprint(x[::2], x.sum())  # 0 2 4 6 8 45\n",
    "class Stack:\n\tdef __init__(self):\n\t\tself.items = []\n\n\tdef push(self, item):\n\t\tself.items.append(item)\n",
    "#include <iostream>\n#include <vector>\n\nint main() {\n    std::vector<int> v{1, 2, 3};\n    for (auto& x : v) std::cout << x << '\\n';\n    return 0;\n}\n",
    "template <typename T>\nT max(const T& a, const T& b) { return a < b ? b : a; }\n",
    "if (ptr != nullptr && ptr->next) { ptr = ptr->next; } // advance\n",
    '{"name": "kvlab", "version": "0.1.0", "tags": ["llm", "kv-cache"], "nested": {"a": 1, "b": [true, false, null]}}',
    '{\n  "model": {\n    "type": "BPE",\n    "dropout": null\n  }\n}\n',
    '#!/usr/bin/env bash\nset -euo pipefail\nfor f in *.txt; do\n  wc -l "$f" | awk \'{print $1}\'\ndone\n',
    "git log --oneline | head -n 5 && echo \"done\" > /tmp/out.log 2>&1",
    "SELECT id, name FROM users WHERE age >= 18 ORDER BY name DESC LIMIT 10;",
    "<div class=\"note\"><p>Hello &amp; welcome!</p><br/></div>",
    "fn main() {\n    let v: Vec<u32> = (0..10).map(|x| x * x).collect();\n    println!(\"{:?}\", v);\n}\n",
    "const add = (a, b) => a + b;\nconsole.log(`sum: ${add(2, 3)}`);\n",
    "\\begin{equation}\n  E = mc^2 \\quad \\int_0^\\infty e^{-x^2}\\,dx = \\frac{\\sqrt{\\pi}}{2}\n\\end{equation}",
    "| col a | col b |\n|-------|-------|\n| 1     | 2     |\n",
    "https://example.com/path/to/page?query=1&lang=en#section-2 and mailto:someone@example.org",
    "    indented with four spaces\n\tand a tab\n        and eight spaces",
]
EMOJI = [
    "😀", "😂🤣", "👍", "👍🏻👍🏼👍🏽👍🏾👍🏿", "👨‍👩‍👧‍👦", "👩‍💻", "🧑🏽‍🚀", "🏳️‍🌈", "🏴‍☠️",
    "🇯🇵🇺🇸🇩🇪", "❤️", "❤", "☺️", "1️⃣2️⃣#️⃣", "🤷🏽‍♀️", "👁️‍🗨️", "🫠🫶🏾", "🐈‍⬛", "🧔🏻‍♂️",
    "Great job! 🎉🎉🎉", "I ❤️ NY", "🙂🙃🙂🙃", "©️®️™️", "🏃‍♂️‍➡️",
]
NON_NFC = [
    "e\u0301", "Cafe\u0301 au lait", "A\u030a and \u212b and \u00c5", "\u2126 ohm vs \u03a9 omega",
    "\uf900\uf901 CJK compatibility", "\u1100\u1161\u11a8 Hangul jamo", "e\u0302\u0301 stacked marks",
    "n\u0303o decomposed", "Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d\u034f\u0334\u0319\u0324\u031e\u0349\u035a\u032f\u031e\u0320\u034dA\u036b\u0357\u0334\u0362\u0335\u031c\u0330\u0354L\u0368\u0367\u0369\u0358\u0320G\u0311\u0357\u030e\u0305\u035b\u0341\u0334\u033b\u0348\u034d\u0354\u0339O\u0342\u030c\u030c\u0358\u0328\u0335\u0339\u033b\u031d\u0333",
    "\u0301 leading combining mark", "x\u0338 and \u2260", "\u0958 Devanagari nukta", "\u00e9\u0301",
    "\ufb01 ligature fi, \ufb00 ff", "\u1e9b\u0323 long s with dots", "\u0344 and \u0340\u0341",
]
CONTRACTIONS = [
    "DON'T", "I'LL", "YOU'RE", "WE'VE", "I'M", "HE'D", "IT'S", "THEY'LL", "SHE'S", "CAN'T STOP",
    "don't", "I'll", "you're", "we've", "I'm", "he'd", "it's", "It'S", "dOn'T", "I'Ll", "WE'vE",
    "don\u2019t (curly)", "rock'n'roll", "'tis", "''", "'''", "' s", "o'clock", "James' book",
    "'\u017f long s", "I've been thinking: 'Sure,' she said, 'why not?'", "'S'T'RE'VE'M'LL'D",
]
WHITESPACE_UNITS = [" ", "  ", "\t", "\n", "\r\n", "\r", "\u00a0", "\u3000", "\u2028", "\u2029",
                    "\u0085", "\u180e", "\u2003", "\u200b", "\ufeff", "\x0b", "\x0c", "\u1680", "\u202f"]
SPECIALS = {
    "llama3_1": ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>", "<|start_header_id|>",
                 "<|end_header_id|>", "<|reserved_special_token_5|>", "<|finetune_right_pad_id|>",
                 "<|python_tag|>", "<|eom_id|>"],
    "qwen3": ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>", "<tool_call>",
              "</tool_call>", "<|fim_prefix|>", "<|vision_pad|>", "<tool_response>"],
}
SPECIAL_TEXTS = [
    "hello<|eot_id|>world", "<|begin_of_text|>Hello", "<|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>",
    "<|im_start|>user\nhi<|im_end|>", "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>assistant\n",
    "<think>\nLet me think.\n</think>\n\nThe answer is 4.", "<|eot_id|><|eot_id|>", " <|eot_id|> ",
    "<|eot_id", "<|eot_id|", "<|im_end|>\n\n", "x<|endoftext|>y", "<|reserved_special_token_250|>!",
    "<<|eot_id|>>", "<|<|im_start|>|>", "text <tool_call>{\"name\": \"f\"}</tool_call> more",
    "<|begin_of_text|><|begin_of_text|>", "a<|im_start|>b<|im_end|>c<|endoftext|>",
]
MISC = [
    "", " ", "a", "A", "!", "\n", "0", "Hello world", "hello world", " Hello", "HELLO WORLD!!!",
    "The quick brown fox jumps over the lazy dog.", "snake_case_name and camelCaseName and SCREAMING_CASE",
    "...", "?!?!", "--- *** ___ ===", "(parenthesized) [bracketed] {braced} <angled>", "a\u0000b\u0001c\u007f",
    "\x1b[31mred\x1b[0m", "tab\tseparated\tvalues", "trailing spaces   ", "   leading spaces",
    "\ufffd replacement char", "\ue000 private use", "\U0010fffd plane 16", "email: first.last+tag@sub.example.co.uk",
    "$19.99 + 7% tax = $21.39", "50°C ≈ 122°F", "α + β = γ; ∑ x² ≤ ∞", "→ ← ↑ ↓ ⇒ ⇔", "“quotes” ‘single’ «guillemets»",
    "ALL CAPS SENTENCE WITH NUMBERS 123 AND SYMBOLS #@!", "MiXeD CaSe TeXt", "hyphen-ated words and en–dash and em—dash",
]


def whitespace_runs(rng: random.Random, count: int) -> list[str]:
    lines = []
    for _ in range(count):
        parts = []
        for _ in range(rng.randint(1, 6)):
            unit = rng.choice(WHITESPACE_UNITS)
            parts.append(unit * rng.choice([1, 2, 3, 5, 17, 64, 300]))
            if rng.random() < 0.6:
                parts.append(rng.choice(["word", "x", "Hello", "42", "!", "日本", "é"]))
        lines.append("".join(parts))
    return lines


def digit_runs(rng: random.Random, count: int) -> list[str]:
    fixed = ["1", "12", "123", "1234", "12345", "1234567", "3.14159", "1,234,567.89", "2024-07-26",
             "+1 (555) 010-9999", "0x7fffffff", "1e-10", "v1.2.3", "abc123def456", "١٢٣٤٥ Arabic-Indic",
             "१२३ Devanagari", "１２３４５ full width", "²³⁴ superscripts", "Ⅻ and ⅻ", "𝟙𝟚𝟛 math digits"]
    lines = list(fixed)
    for _ in range(count - len(fixed)):
        n = rng.choice([4, 7, 10, 31, 100, 257])
        digits = "".join(rng.choice("0123456789") for _ in range(n))
        lines.append(rng.choice(["{}", "x{}", "{} apples", "id={}", "{}.{}"]).format(digits, digits[: n // 2]))
    return lines


def shakespeare_lines(path: Path, rng: random.Random, singles: int, chunks: int) -> list[str]:
    lines = path.read_text(encoding="utf-8").split("\n")
    picked = [rng.choice(lines) for _ in range(singles)]
    for _ in range(chunks):
        start = rng.randrange(len(lines) - 12)
        picked.append("\n".join(lines[start:start + rng.randint(2, 12)]))
    return picked


def build_texts(shakespeare: Path) -> list[str]:
    rng = random.Random(SEED)
    texts = []
    texts += shakespeare_lines(shakespeare, rng, singles=500, chunks=150)
    for pool in (JAPANESE, CHINESE, KOREAN, OTHER_SCRIPTS, CODE, EMOJI, NON_NFC, CONTRACTIONS,
                 SPECIAL_TEXTS, MISC):
        texts += pool
    texts += [s for name in TOKENIZER_NAMES for s in SPECIALS[name]]
    texts += ["\n".join(JAPANESE[i:i + 4]) for i in range(0, len(JAPANESE), 4)]
    texts += ["".join(CHINESE[i:i + 5]) for i in range(0, len(CHINESE), 5)]
    texts += [line for snippet in CODE for line in snippet.split("\n") if line]
    texts += whitespace_runs(rng, 150)
    texts += digit_runs(rng, 120)
    texts += [w.upper() for w in CONTRACTIONS] + [w.lower() for w in CONTRACTIONS]

    # Random combinations of everything, joined the ways text is joined.
    pools = [JAPANESE, CHINESE, KOREAN, OTHER_SCRIPTS, CODE, EMOJI, NON_NFC, CONTRACTIONS, SPECIAL_TEXTS,
             MISC, SPECIALS["llama3_1"], SPECIALS["qwen3"], texts[:650]]
    separators = ["", " ", "  ", "\n", "\n\n", "\t", " \n ", "\u3000", "-", ""]
    while len(texts) < 2600:
        parts = [rng.choice(rng.choice(pools)) for _ in range(rng.randint(2, 6))]
        text = parts[0]
        for part in parts[1:]:
            text += rng.choice(separators) + part
        texts.append(text)
    return texts


def chats() -> list[dict]:
    """Conversations, each with the apply_chat_template arguments they are rendered with."""
    system = {"role": "system", "content": "You are a helpful assistant."}
    conversations = [
        [{"role": "user", "content": "Hello!"}],
        [system, {"role": "user", "content": "What is 2+2?"}],
        [system, {"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "4"},
         {"role": "user", "content": "And 3+3?"}],
        [{"role": "system", "content": "  Be terse.\n\n"}, {"role": "user", "content": "\n  padded question \t\n"}],
        [{"role": "user", "content": "Solve x+1=3."},
         {"role": "assistant", "content": "<think>\nSubtract 1.\n</think>\n\nx = 2."},
         {"role": "user", "content": "Now x+2=5?"}],
        [{"role": "user", "content": "日本語で答えてください。"}, {"role": "assistant", "content": "はい、わかりました。"},
         {"role": "user", "content": "ありがとう 🙏🏽"}],
        [{"role": "user", "content": "Call the tool."}, {"role": "assistant", "content": "Calling it."},
         {"role": "tool", "content": "{\"temperature\": 21}"}, {"role": "tool", "content": "second result"},
         {"role": "user", "content": "Thanks."}],
        [system, {"role": "user", "content": "first"}, {"role": "system", "content": "a mid-conversation system turn"},
         {"role": "user", "content": "second"}],
        [{"role": "user", "content": "Say <|eot_id|> and <|im_end|> literally."}],
        [{"role": "user", "content": "line one\nline two\n\n\nline five"}],
    ]
    entries = [{"messages": m, "add_generation_prompt": True} for m in conversations]
    # An assistant turn last, without the prompt: Qwen3 shows the final turn's (empty) reasoning.
    entries.append({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello! How can I help?"}],
                    "add_generation_prompt": False})
    entries.append({"messages": [{"role": "user", "content": "Hi"},
                                 {"role": "assistant", "content": "<think>\nGreet back.\n</think>\n\nHello!"}],
                    "add_generation_prompt": False})
    entries.append({"messages": conversations[1], "add_generation_prompt": True, "enable_thinking": False})
    return entries


def token_content(value):
    """tokenizer_config.json spells special tokens as strings or as {"content": ...} objects."""
    if isinstance(value, dict):
        return value.get("content")
    return value if isinstance(value, str) else None


def load_transformers_tokenizer(folder: Path, config: dict):
    from tokenizers import Tokenizer
    try:
        from transformers import PreTrainedTokenizerFast
    except ImportError:  # transformers 5 may only export the new name
        from transformers import TokenizersBackend as PreTrainedTokenizerFast
    kwargs = {"chat_template": config.get("chat_template")}
    for key in ("bos_token", "eos_token", "pad_token", "unk_token"):
        content = token_content(config.get(key))
        if content is not None:
            kwargs[key] = content
    return PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_file(str(folder / "tokenizer.json")), **kwargs)


def input_ids(result) -> list[int]:
    """apply_chat_template(tokenize=True, return_dict=True) gives a BatchEncoding; older versions a list."""
    ids = result["input_ids"] if hasattr(result, "keys") else result
    if hasattr(ids, "tolist"):
        ids = ids.tolist()
    if ids and isinstance(ids[0], list):
        ids = ids[0]
    return [int(i) for i in ids]


def write_goldens(folder: Path, texts: list[str], out: Path) -> dict:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    lines = []
    counts = {"texts": 0, "with_special": 0, "decoded_differs": 0, "chats": 0}
    for i, text in enumerate(texts):
        ids = tokenizer.encode(text, add_special_tokens=False).ids
        entry = {"text": text, "ids": ids}
        if i % SPECIAL_EVERY == 0:
            entry["ids_special"] = tokenizer.encode(text, add_special_tokens=True).ids
            counts["with_special"] += 1
        decoded = tokenizer.decode(ids, skip_special_tokens=False)
        if decoded != text:
            entry["decoded"] = decoded
            counts["decoded_differs"] += 1
        lines.append(json.dumps(entry, ensure_ascii=False, separators=(",", ":")))
        counts["texts"] += 1

    hf = load_transformers_tokenizer(folder, config)
    template = config.get("chat_template")
    if not isinstance(template, str):
        sys.exit(f"{folder}/tokenizer_config.json: chat_template is not a single template string")
    for chat in chats():
        extra = {"enable_thinking": chat["enable_thinking"]} if "enable_thinking" in chat else {}
        kwargs = dict(add_generation_prompt=chat["add_generation_prompt"], chat_template=template, **extra)
        text = hf.apply_chat_template(chat["messages"], tokenize=False, **kwargs)
        ids = input_ids(hf.apply_chat_template(chat["messages"], tokenize=True, return_dict=True, **kwargs))
        plain = tokenizer.encode(text, add_special_tokens=False).ids
        if ids != plain:
            print(f"warning: {folder.name}: chat ids differ from encode(text, add_special_tokens=False); "
                  f"keeping apply_chat_template's", file=sys.stderr)
        entry = dict(chat, text=text, ids=ids)
        lines.append(json.dumps(entry, ensure_ascii=False, separators=(",", ":")))
        counts["chats"] += 1

    data = ("\n".join(lines) + "\n").encode("utf-8")
    if len(data) > MAX_FILE_BYTES:
        sys.exit(f"{out}: {len(data)} bytes is over the {MAX_FILE_BYTES}-byte budget for a golden file")
    out.write_bytes(data)
    counts["bytes"] = len(data)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokenizers", type=Path, required=True,
                        help="folder with one subfolder per tokenizer (llama3_1, qwen3)")
    parser.add_argument("--text", type=Path, required=True, help="English text to draw lines from (tinyshakespeare)")
    parser.add_argument("--out", type=Path, required=True, help="folder for <name>.jsonl")
    args = parser.parse_args()

    import tokenizers
    import transformers
    print(f"tokenizers {tokenizers.__version__}, transformers {transformers.__version__}")

    texts = build_texts(args.text)
    args.out.mkdir(parents=True, exist_ok=True)
    for name in TOKENIZER_NAMES:
        out = args.out / f"{name}.jsonl"
        counts = write_goldens(args.tokenizers / name, texts, out)
        print(f"{out}: {counts['texts']} texts ({counts['with_special']} with ids_special, "
              f"{counts['decoded_differs']} whose decoding differs from the text), "
              f"{counts['chats']} chats, {counts['bytes']} bytes")


if __name__ == "__main__":
    main()
