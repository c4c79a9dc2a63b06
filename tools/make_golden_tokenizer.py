#!/usr/bin/env python3
"""Golden files for tests/train (tokenizer and metrics). Run with the venv from tools/setup_python.sh
and the vocab from tools/get_model.sh:
    $(tools/setup_python.sh | tail -1) tools/make_golden_tokenizer.py [model_dir]
model_dir defaults to ~/.cache/bertrazor/models/all-MiniLM-L6-v2 (its vocab.txt is bert-base-uncased's).

Writes tests/data/tokenizer_golden.jsonl, one JSON object per line:
  {"kind": "meta", ...}                                      versions and vocab checksum
  {"kind": "pair", "a", "b", "max_length", "input_ids", "token_type_ids", "attention_mask"}
      every RTE dev pair (/work/shared/data/glue/RTE/dev.tsv, read like datasets' glue.py) through
      the fast tokenizer as run_glue calls it: truncation=True (longest_first), padding="max_length",
      at max_length 128 and 24. "slow_input_ids" is added where the slow tokenizer's
      one-token-at-a-time truncation gives other ids (spec §4 "Slow difference").
  {"kind": "text", "hex", "tokens", "ids", "fast_ids"}
      hard strings, stored as hex of their UTF-8 bytes (some are not valid UTF-8: both tokenizers see
      bytes.decode("utf-8", errors="replace")); tokens/ids from the slow BertTokenizer, fast_ids from
      the fast one, no special tokens added.
and tests/data/metrics_golden.json: GLUE metrics on random predictions, computed with sklearn/scipy
as datasets' glue metric does, plus run_glue's float32 accuracy / mse for non-GLUE files.
"""
import csv
import hashlib
import json
import os
import random
import sys

import numpy as np
import scipy
import sklearn
import tokenizers
import transformers
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import f1_score, matthews_corrcoef

try:
    from transformers import BertTokenizerLegacy as SlowBertTokenizer  # transformers >= 5
except ImportError:
    from transformers import BertTokenizer as SlowBertTokenizer
from transformers import BertTokenizerFast

here = os.path.dirname(os.path.abspath(__file__))
out_dir = os.path.join(here, "..", "tests", "data")
model_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.expanduser(
    "~/.cache/bertrazor/models/all-MiniLM-L6-v2")
vocab = os.path.join(model_dir, "vocab.txt")
rte_dev = os.environ.get("BERTRAZOR_RTE_DEV", "/work/shared/data/glue/RTE/dev.tsv")

slow = SlowBertTokenizer(vocab, do_lower_case=True)
fast = BertTokenizerFast(vocab, do_lower_case=True)
assert not slow.is_fast and fast.is_fast

lines = []
with open(vocab, "rb") as f:
    lines.append({"kind": "meta", "vocab_sha256": hashlib.sha256(f.read()).hexdigest(),
                  "transformers": transformers.__version__, "tokenizers": tokenizers.__version__})


def encode(tok, a, b, max_length):
    return tok(a, b, truncation=True, max_length=max_length, padding="max_length")


with open(rte_dev, encoding="utf8") as f:
    rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
assert len(rows) == 277, len(rows)
slow_differs = 0
for row in rows:
    for max_length in (128, 24):
        e = encode(fast, row["sentence1"], row["sentence2"], max_length)
        rec = {"kind": "pair", "a": row["sentence1"], "b": row["sentence2"], "max_length": max_length,
               "input_ids": e["input_ids"], "token_type_ids": e["token_type_ids"],
               "attention_mask": e["attention_mask"]}
        s = encode(slow, row["sentence1"], row["sentence2"], max_length)
        if s["input_ids"] != e["input_ids"]:
            rec["slow_input_ids"] = s["input_ids"]
            slow_differs += 1
        lines.append(rec)

hard = [
    "Héllo Wörld! Ça va? naïve café résumé",
    "ÀÉÎÕÜ ñ Ñ ß ẞ ﬁ ligature Œuvre Ångström",
    "我爱北京天安门 日本語のテキスト 한국어 텍스트",
    "I ❤️ NY 😀👍🏽 🇺🇸 ☃",
    "a\x00b\x01c\x7fd\u0085e\tf\ng\rh\x0bi\x0cj",
    "zero\u200bwidth\u200cjoin\u200dner\ufeffbom \u00adsoft\u00adhyphen \u2060wj",
    "a" * 101,
    "x" * 100,
    "é" * 100,
    "é" * 101,
    "pneumonoultramicroscopicsilicovolcanoconiosis " + "supercalifragilisticexpialidocious" * 3,
    "Hello!!!??? ...--- $100+50=<150> ^_^ `quote` |pipe| ~tilde~ #hash @at \\back/slash {x}[y](z)",
    "“smart quotes” — em dash – en dash … ellipsis «guillemets» ¿qué? ¡sí! ‹›",
    "hello [SEP] world [CLS][MASK] [sep] [UNK]x a[PAD]b",
    "ΟΔΟΣ ΣΟΦΟΣ Σ ΑΣ.Β ΌΣΟΣ",
    "İstanbul IĞDIR ǅemal",
    "\u00a0non\u00a0breaking\u2003em\u3000ideographic \u2028line\u2029para\u1680ogham",
    "e\u0301 a\u0308 \u0301alone n\u0303",
    "∑∫√∞ ≠ ≤ ± × ÷ €£¥ ©®™ ° ¼ ²",
    "ภาษาไทย مرحبا بالعالم שלום हिन्दी Ελληνικά Русский",
    "3.14159 1,000,000 2nd 10% -5 +7 1e-9",
    "",
    "   ",
    "\x00\x01\x02",
    "HeLLo WoRLD USA U.S.A. McDonald's",
    "don't won't it's rock'n'roll ’tis",
    "https://example.com/path?q=1&b=2#frag e-mail@test.org",
    "ＡＢＣ１２３ ｶﾀｶﾅ",
    "The quick brown fox jumps over the lazy dog. unaffable unhappiness tokenization",
    "𠀀𪜀 𝐀𝐁𝐂 𝒜",
]
hard_bytes = [s.encode("utf-8") for s in hard] + [
    b"abc\xffdef",
    b"\xc3\x28 test",
    b"\xe2\x82 partial",
    b"\xed\xa0\x80surrogate",
    b"caf\xc3",
    b"\xf0\x9f\x98 emoji cut",
    b"ok\xc0\xafover",
    b"\xf4\x90\x80\x80big \xf5x",
    b"mid\x80dle\xbf",
]
text_differs = 0
for raw in hard_bytes:
    text = raw.decode("utf-8", errors="replace")
    tokens = slow.tokenize(text)
    ids = slow.convert_tokens_to_ids(tokens)
    fast_ids = fast(text, add_special_tokens=False)["input_ids"]
    text_differs += ids != fast_ids
    lines.append({"kind": "text", "hex": raw.hex(), "tokens": tokens, "ids": ids, "fast_ids": fast_ids})

path = os.path.join(out_dir, "tokenizer_golden.jsonl")
with open(path, "w", encoding="utf8") as f:
    for rec in lines:
        f.write(json.dumps(rec, ensure_ascii=False, separators=(",", ":")) + "\n")
print(f"wrote {path}: {len(lines)} records, slow truncation differs in {slow_differs} pairs, "
      f"slow/fast tokenization differs on {text_differs} hard strings")

# ---- metrics ----
rng = random.Random(1234)
cases = []


def glue_metric(task, preds, labels):
    # datasets/evaluate metrics/glue/glue.py, then run_glue's combined_score.
    preds, labels = np.array(preds), np.array(labels)
    if task == "cola":
        r = {"matthews_correlation": float(matthews_corrcoef(labels, preds))}
    elif task == "stsb":
        # The metric's features are float32. scipy of the 4.11 era (numpy 1.x promotion) then
        # computed in float64; today's scipy under numpy 2 stays in float32, which is noise.
        p32 = preds.astype(np.float32).astype(np.float64)
        l32 = labels.astype(np.float32).astype(np.float64)
        r = {"pearson": float(pearsonr(p32, l32)[0]), "spearmanr": float(spearmanr(p32, l32)[0])}
    elif task in ("mrpc", "qqp"):
        r = {"accuracy": float((preds == labels).mean()), "f1": float(f1_score(y_true=labels, y_pred=preds))}
    else:
        r = {"accuracy": float((preds == labels).mean())}
    if len(r) > 1:
        r["combined_score"] = np.mean(list(r.values())).item()
    return r


for task, k in [("cola", 2), ("sst2", 2), ("mrpc", 2), ("qqp", 2), ("mnli", 3), ("qnli", 2), ("rte", 2),
                ("wnli", 2)]:
    for n in (1, 7, 33, 277, 1043):
        labels = [rng.randrange(k) for _ in range(n)]
        bias = rng.random()
        preds = [l if rng.random() < bias else rng.randrange(k) for l in labels]
        cases.append({"task": task, "predictions": preds, "labels": labels,
                      "metrics": glue_metric(task, preds, labels)})
# Degenerate: all one class (MCC 0, F1 0).
cases.append({"task": "cola", "predictions": [1] * 9, "labels": [0, 1] * 4 + [1],
              "metrics": glue_metric("cola", [1] * 9, [0, 1] * 4 + [1])})
cases.append({"task": "mrpc", "predictions": [0] * 6, "labels": [1, 0, 1, 1, 0, 0],
              "metrics": glue_metric("mrpc", [0] * 6, [1, 0, 1, 1, 0, 0])})
for n in (3, 7, 33, 1500):
    labels = [round(rng.uniform(0, 5), 1) for _ in range(n)]  # ties, as STS-B scores have
    preds = [l + rng.gauss(0, 1.0) for l in labels]
    if n == 33:
        preds = [round(p) for p in preds]  # ties in the predictions too
    cases.append({"task": "stsb", "predictions": preds, "labels": labels,
                  "metrics": glue_metric("stsb", preds, labels)})

file_cases = []
for n in (5, 8, 100, 129, 1000):
    labels = [rng.randrange(3) for _ in range(n)]
    preds = [l if rng.random() < 0.6 else rng.randrange(3) for l in labels]
    acc = (np.array(preds) == np.array(labels)).astype(np.float32).mean().item()
    file_cases.append({"is_regression": False, "predictions": preds, "labels": labels, "metrics": {"accuracy": acc}})
    yl = [rng.uniform(-3, 3) for _ in range(n)]
    yp = [y + rng.gauss(0, 0.7) for y in yl]
    p32, l32 = np.array(yp, dtype=np.float32), np.array(yl, dtype=np.float32)
    mse = ((p32 - l32) ** 2).mean().item()
    file_cases.append({"is_regression": True, "predictions": [float(x) for x in p32],
                       "labels": [float(x) for x in l32], "metrics": {"mse": mse}})

path = os.path.join(out_dir, "metrics_golden.json")
with open(path, "w") as f:
    json.dump({"sklearn": sklearn.__version__, "scipy": scipy.__version__, "numpy": np.__version__,
               "glue": cases, "file": file_cases}, f, separators=(",", ":"))
print(f"wrote {path}: {len(cases)} GLUE cases, {len(file_cases)} file cases")
