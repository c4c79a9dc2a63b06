"""Hugging Face Trainer on a GLUE sentence-pair task from the original GLUE TSV layout, the peer of
`bertrazor train` in cpu_compare.py's end-to-end check. It does what run_glue.py does with its
defaults (dynamic padding through DataCollatorWithPadding, truncation to --max_seq_length, AdamW,
linear schedule, no warm-up) without needing the `datasets` package, and writes the metrics run_glue
writes (train_runtime, eval_samples_per_second, eval_accuracy) as one JSON object on stdout.

  python3 hf_glue.py --model DIR --data_dir ../shared/data/glue/RTE --max_seq_length 128 \
      --batch 16 --eval_batch 8 --lr 5e-5 --epochs 1 --seed 42 --output_dir /tmp/hf_rte
"""
import argparse
import csv
import json
import sys

import torch

# GLUE tasks whose TSV rows are (index, sentence1, sentence2, label), as run_glue names them.
LABELS = {"rte": ["entailment", "not_entailment"], "wnli": ["0", "1"]}


def read_tsv(path, labels):
    rows = []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader)
        a, b, y = header.index("sentence1"), header.index("sentence2"), header.index("label")
        for r in reader:
            rows.append((r[a], r[b], labels.index(r[y])))
    return rows


class Pairs(torch.utils.data.Dataset):
    def __init__(self, rows, tok, max_len):
        self.items = []
        for a, b, y in rows:
            enc = tok(a, b, truncation=True, max_length=max_len)
            enc["labels"] = y
            self.items.append(enc)

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", required=True, help="folder with config.json, vocab.txt, model.safetensors")
    p.add_argument("--data_dir", required=True)
    p.add_argument("--task", default="rte", choices=sorted(LABELS))
    p.add_argument("--max_seq_length", type=int, default=128)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--eval_batch", type=int, default=8)
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--output_dir", required=True)
    args = p.parse_args()

    import numpy as np
    from transformers import (AutoModelForSequenceClassification, BertTokenizerFast,
                              DataCollatorWithPadding, Trainer, TrainingArguments, set_seed)

    set_seed(args.seed)
    tok = BertTokenizerFast(vocab_file=f"{args.model}/vocab.txt", do_lower_case=True)
    labels = LABELS[args.task]
    train = Pairs(read_tsv(f"{args.data_dir}/train.tsv", labels), tok, args.max_seq_length)
    dev = Pairs(read_tsv(f"{args.data_dir}/dev.tsv", labels), tok, args.max_seq_length)
    model = AutoModelForSequenceClassification.from_pretrained(args.model, num_labels=len(labels))

    def accuracy(pred):
        return {"accuracy": float((np.argmax(pred.predictions, axis=1) == pred.label_ids).mean())}

    targs = TrainingArguments(output_dir=args.output_dir, per_device_train_batch_size=args.batch,
                              per_device_eval_batch_size=args.eval_batch, learning_rate=args.lr,
                              num_train_epochs=args.epochs, seed=args.seed, use_cpu=True,
                              report_to="none", save_strategy="no", logging_strategy="no",
                              disable_tqdm=True)
    trainer = Trainer(model=model, args=targs, train_dataset=train, eval_dataset=dev,
                      data_collator=DataCollatorWithPadding(tok), compute_metrics=accuracy)
    out = dict(trainer.train().metrics)
    out.update(trainer.evaluate())
    out.update(torch=torch.__version__, threads=torch.get_num_threads(),
               train_examples=len(train), eval_examples=len(dev))
    print(json.dumps(out, sort_keys=True), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
