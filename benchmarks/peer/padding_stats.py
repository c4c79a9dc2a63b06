#!/usr/bin/env python3
"""How much of a per-batch-padded GLUE training epoch is real tokens, and what splitting each batch
by length (bertrazor train --split_batch_by_length, train/batch.h split_by_length) leaves of it.

Tokenizes a GLUE TSV sentence-pair file with the HF tokenizer of MODEL, shuffles it EPOCHS times,
and prints, per max_seq_length: real/padded tokens of whole batches, and the cost of the cheapest
length groups under the trainer's cost model (fixed + n*s*(1 + s/q) tokens per model call) over
that of whole batches. Needs transformers (tools/setup_python.sh).
  padding_stats.py MODEL TRAIN_TSV [--batch 16] [--lengths 128 48] [--epochs 5]
"""
import argparse
import csv
import random

from transformers import BertTokenizerFast


def cheapest(lengths, cost):
    b = sorted(lengths)
    best, cut = [0.0] + [None] * len(b), [0] * (len(b) + 1)
    for j in range(1, len(b) + 1):
        for i in range(j):
            c = best[i] + cost(j - i, b[j - 1])
            if best[j] is None or c < best[j]:
                best[j], cut[j] = c, i
    groups, j = 0, len(b)
    while j:
        groups, j = groups + 1, cut[j]
    return best[-1], groups


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("train_tsv")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lengths", type=int, nargs="+", default=[128, 48])
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--fixed", type=float, default=145.0, help="LengthCost::fixed")
    args = ap.parse_args()
    tok = BertTokenizerFast.from_pretrained(args.model)
    with open(args.model + "/config.json") as f:
        import json
        c = json.load(f)
    q = c["hidden_size"] ** 2 / (48.0 * c["num_attention_heads"])  # length_cost()

    def cost(n, s):
        return args.fixed + n * s * (1 + s / q)

    rows = list(csv.reader(open(args.train_tsv), delimiter="\t", quoting=csv.QUOTE_NONE))[1:]
    lens = [len(tok(r[1], r[2])["input_ids"]) for r in rows]
    for S in args.lengths:
        L = [min(n, S) for n in lens]
        random.seed(0)
        real = padded = whole = split = 0
        groups = {}
        for _ in range(args.epochs):
            idx = list(range(len(L)))
            random.shuffle(idx)
            for i in range(0, len(idx), args.batch):
                b = [L[j] for j in idx[i:i + args.batch]]
                real += sum(b)
                padded += max(b) * len(b)
                whole += cost(len(b), max(b))
                c_, g = cheapest(b, cost)
                split += c_
                groups[g] = groups.get(g, 0) + 1
        print(f"max_seq_length {S}: real/padded {real / padded:.3f}, split/whole cost "
              f"{split / whole:.3f}, batches by group count {dict(sorted(groups.items()))}")


if __name__ == "__main__":
    main()
