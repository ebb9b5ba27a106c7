#!/usr/bin/env python3
"""LongBench (v1 and LongBench-E) data files to kvlab's QA JSON Lines.

A LongBench file (THUDM/LongBench, data/<dataset>.jsonl: input, context, answers, _id, dataset,
length, ...) becomes `kvlab-eval --task qa` data: _id -> id, input -> question, context, answers,
length -> meta, and the task_type whose score is the dataset's LongBench metric. Only datasets
whose metric kvlab computes as LongBench does are taken: token F1 (qa_f1_score) and ROUGE-L
(rouge_score) on English text. The others are refused, naming their metric: kvlab's substring
accuracy is not LongBench's classification, retrieval or count score, it has no code similarity,
and its F1 splits words on spaces where LongBench's Chinese scores use jieba.

  python3 scripts/longbench_to_qa.py LongBench/data/hotpotqa.jsonl --out hotpotqa.qa.jsonl \\
      [--prompts LongBench/config/dataset2prompt.json] [--maxlen LongBench/config/dataset2maxlen.json]

With --prompts, the dataset's prompt goes beside the output (OUT.prompt.txt, with LongBench's
{context} and {input}, which --prompt-template takes as written); the command to run is printed,
with --max-new-tokens from --maxlen. As LongBench's pred.py, triviaqa and samsum lines are never
wrapped in a chat template ("chat": false); the others follow kvlab-eval's --chat. kvlab cuts a
long prompt in the middle of its context, where LongBench cuts the whole tokenized prompt.
"""
import argparse
import json
import sys

METRIC = {  # LongBench's dataset2metric, where kvlab computes the same score
    "narrativeqa": "qa", "qasper": "qa", "multifieldqa_en": "qa", "hotpotqa": "qa", "2wikimqa": "qa",
    "musique": "qa", "triviaqa": "qa",
    "gov_report": "rouge", "qmsum": "rouge", "multi_news": "rouge", "samsum": "rouge",
}
REFUSED = {
    "multifieldqa_zh": "qa_f1_zh_score (jieba words)", "dureader": "rouge_zh_score (jieba words)",
    "vcsum": "rouge_zh_score (jieba words)", "trec": "classification_score", "lsht": "classification_score",
    "passage_retrieval_en": "retrieval_score", "passage_retrieval_zh": "retrieval_zh_score",
    "passage_count": "count_score", "lcc": "code_sim_score", "repobench-p": "code_sim_score",
}
NO_CHAT = {"triviaqa", "samsum"}  # pred.py's list, less the refused datasets


def dataset_of(record, path, line):
    name = record.get("dataset")
    if not isinstance(name, str):
        sys.exit(f"{path}:{line}: no \"dataset\" field (is this a LongBench file?)")
    return name[:-2] if name.endswith("_e") else name  # LongBench-E's files name it dataset_e


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("data", help="a LongBench data/<dataset>.jsonl file")
    ap.add_argument("--out", required=True, help="kvlab QA JSON Lines to write")
    ap.add_argument("--prompts", help="LongBench's config/dataset2prompt.json")
    ap.add_argument("--maxlen", help="LongBench's config/dataset2maxlen.json")
    args = ap.parse_args()

    datasets, lines = set(), []
    with open(args.data, encoding="utf-8") as f:
        for n, text in enumerate(f, 1):
            if not text.strip():
                continue
            try:
                r = json.loads(text)
            except json.JSONDecodeError as e:
                sys.exit(f"{args.data}:{n}: not JSON: {e}")
            name = dataset_of(r, args.data, n)
            if name in REFUSED:
                sys.exit(f"{args.data}:{n}: {name} is scored by LongBench's {REFUSED[name]}, which kvlab does not "
                         f"compute; kvlab takes {', '.join(sorted(METRIC))}")
            if name not in METRIC:
                sys.exit(f"{args.data}:{n}: unknown LongBench dataset \"{name}\"")
            datasets.add(name)
            out = {"id": str(r["_id"]), "context": r["context"], "question": r["input"], "answers": r["answers"],
                   "task_type": METRIC[name], "meta": {"dataset": r["dataset"], "length": r.get("length")}}
            if name in NO_CHAT:
                out["chat"] = False
            lines.append(json.dumps(out, ensure_ascii=False))
    if not lines:
        sys.exit(f"{args.data}: no examples")
    with open(args.out, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    print(f"{args.out}: {len(lines)} examples of {', '.join(sorted(datasets))}")

    if args.prompts:
        if len(datasets) != 1:
            sys.exit("--prompts needs a file of one dataset: its prompt goes with the whole file")
        (name,) = datasets
        prompt = json.load(open(args.prompts, encoding="utf-8"))[name]
        with open(args.out + ".prompt.txt", "w", encoding="utf-8") as f:
            f.write(prompt)
        max_new = json.load(open(args.maxlen, encoding="utf-8"))[name] if args.maxlen else None
        print(f"build/bin/kvlab-eval --task qa --data {args.out} --prompt-template \"$(cat {args.out}.prompt.txt)\""
              + (f" --max-new-tokens {max_new}" if max_new else "") + " --model MODEL_DIR [--chat]")


if __name__ == "__main__":
    main()
