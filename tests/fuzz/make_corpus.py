#!/usr/bin/env python3
"""Writes the seed corpus of each fuzz target under tests/fuzz/corpus/<target>/: small real inputs
cut from ../shared/data and ../shared/models (and the MiniLM download when present), plus
malformed ones. Files it does not name (crash-*, the safetensors seeds) are left alone, so the
regression inputs that fuzzing found stay. A target whose first byte picks a mode (see its
fuzz_<target>.cpp) gets that byte in front of the file text.

Run from the repository root: python3 tests/fuzz/make_corpus.py"""
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARED = os.path.join(ROOT, "..", "shared")
MINILM = os.path.expanduser("~/.cache/bertrazor/models/all-MiniLM-L6-v2")
TASKS = ["cola", "sst2", "mrpc", "qqp", "stsb", "mnli", "qnli", "rte", "wnli"]


def head(path, lines, fallback=None):
    """The first `lines` lines of a file, as bytes (fallback when it is absent)."""
    if not os.path.exists(path):
        if fallback is None:
            sys.exit(f"make_corpus: {path} is missing")
        return fallback
    with open(path, "rb") as f:
        return b"".join(f.readline() for _ in range(lines))


def write(target, name, data, mode=None):
    d = os.path.join(ROOT, "tests", "fuzz", "corpus", target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    if mode is not None:
        data = bytes([mode]) + data
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def glue_mode(task, split):  # fuzz_glue_tsv: task + 9 * split (train, validation, test)
    return TASKS.index(task) + 9 * ["train", "validation", "test"].index(split)


def main():
    # config.json
    for name, path in [("bert-base.json", f"{SHARED}/models/bert-base-uncased/config.json"),
                       ("bert-large.json", f"{SHARED}/models/bert-large-uncased/config.json"),
                       ("minilm.json", f"{MINILM}/config.json")]:
        if os.path.exists(path):
            write("config", name, head(path, 1000))
    write("config", "labels.json", json.dumps({
        "hidden_size": 8, "num_attention_heads": 2, "num_hidden_layers": 1, "intermediate_size": 16,
        "vocab_size": 40, "id2label": {"0": "entailment", "1": "not_entailment"},
        "label2id": {"entailment": 0, "not_entailment": 1}, "finetuning_task": "rte",
        "problem_type": "single_label_classification", "classifier_dropout": None}))
    write("config", "bad-heads.json", '{"hidden_size": 10, "num_attention_heads": 3}')
    write("config", "bad-id2label.json", '{"id2label": {"0": "a", "2": "b"}}')
    write("config", "bad-label2id.json", '{"id2label": {"0": "a"}, "label2id": {"a": 5}}')
    write("config", "bad-types.json", '{"vocab_size": 1.5, "hidden_act": 3}')
    write("config", "huge-num-labels.json", '{"num_labels": 1e300}')
    write("config", "not-json.json", '{"vocab_size": 30522,')
    write("config", "array.json", '[1, 2]')

    # GLUE TSV, original layout (RTE from the share; the other tasks' headers by hand)
    glue = f"{SHARED}/data/glue/RTE"
    write("glue_tsv", "rte-train.tsv", head(f"{glue}/train.tsv", 4), glue_mode("rte", "train"))
    write("glue_tsv", "rte-dev.tsv", head(f"{glue}/dev.tsv", 4), glue_mode("rte", "validation"))
    write("glue_tsv", "rte-test.tsv", head(f"{glue}/test.tsv", 3), glue_mode("rte", "test"))
    write("glue_tsv", "cola-train.tsv", "gj04\t1\t\tOur friends won't buy this analysis.\r\n"
          "gj04\t0\t*\tThey drank the pub.\r\n", glue_mode("cola", "train"))
    write("glue_tsv", "mrpc-train.tsv", "\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\n"
          "1\t702876\t702977\tAmrozi accused his brother.\tReferring to him, Amrozi accused his brother.\n",
          glue_mode("mrpc", "train"))
    write("glue_tsv", "stsb-dev.tsv", "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1"
          "\tsentence2\tscore\n0\tmain\tx\t2012\t1\tnone\tnone\tA man.\tA man.\t5.000\n",
          glue_mode("stsb", "validation"))
    write("glue_tsv", "qqp-train.tsv", "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n"
          "1\t1\t2\tWhy?\tWhy not?\t0\n2\t3\t4\tshort row\n3\t5\t6\tq\tq\t\n", glue_mode("qqp", "train"))
    write("glue_tsv", "mnli-dev.tsv", "index\tsentence1\tsentence2\tgold_label\n0\tA\tB\tneutral\r1\tC\tD\t2\r",
          glue_mode("mnli", "validation"))
    write("glue_tsv", "bad-columns.tsv", "index\tsentence1\tsentence2\tlabel\n0\tonly two\n",
          glue_mode("rte", "train"))
    write("glue_tsv", "bad-label.tsv", "index\tsentence1\tsentence2\tlabel\n0\ta\tb\tmaybe\n",
          glue_mode("rte", "train"))
    write("glue_tsv", "bad-score.tsv", "sentence1\tsentence2\tscore\nA\tB\tnan\n", glue_mode("stsb", "train"))
    write("glue_tsv", "no-header-column.tsv", "index\tsentence\n0\tx\n", glue_mode("rte", "train"))

    # --train_file exports: datasets' quoted TSV (HF layout), CSV, JSON lines. Mode: ext + 4 * as_task.
    hf = f"{SHARED}/data/glue-hf/rte"
    write("glue_export", "rte-train.tsv", head(f"{hf}/train.tsv", 4), 0 + 4)
    write("glue_export", "rte-validation-inferred.tsv", head(f"{hf}/validation.tsv", 4), 0)
    write("glue_export", "rte-test.tsv", head(f"{hf}/test.tsv", 3), 0 + 4)
    write("glue_export", "quoted.tsv", 'sentence1\tsentence2\tlabel\n"a ""quoted""\ttab"\t"line\nbreak"\t1\n'
          'plain\t\t0\n', 0 + 4)
    write("glue_export", "sentences.csv", 'sentence,label\n"Hello, world",positive\nBye,negative\n', 1)
    write("glue_export", "regression.csv", "sentence1,sentence2,label\na,b,0.5\nc,d,4.25\n", 1)
    write("glue_export", "rows.jsonl", '{"sentence1": "a", "sentence2": "b", "label": 1, "idx": 0}\n'
          '{"sentence1": "c", "sentence2": "d", "label": -1, "idx": 1}\n', 2 + 4)
    write("glue_export", "array.json", '[{"text": "x", "label": "pos"}, {"text": "y", "label": null}]', 3)
    write("glue_export", "bad-unterminated.tsv", 'sentence1\tsentence2\tlabel\n"never closed\tb\t1\n', 0 + 4)
    write("glue_export", "bad-after-quote.csv", 'a,label\n"x"y,1\n', 1)
    write("glue_export", "bad-duplicate-column.csv", "label,label\n1,1\n", 1)
    write("glue_export", "bad-width.tsv", "sentence1\tsentence2\tlabel\na\t1\n", 0 + 4)
    write("glue_export", "bad-json-line.jsonl", '{"sentence1": "a", "label": 1}\n{"sentence1": \n', 2)
    write("glue_export", "bad-json-value.jsonl", '{"sentence1": ["a"], "label": 1}\n', 2)

    # vocab.txt (mode bit 0: do_lower_case)
    write("vocab", "tiny.txt", head(os.path.join(ROOT, "tests/data/tiny_vocab.txt"), 1000), 1)
    if os.path.exists(f"{MINILM}/vocab.txt"):
        write("vocab", "minilm-head.txt", head(f"{MINILM}/vocab.txt", 120) + b"[MASK]\n##s\nthe\n", 1)
    write("vocab", "crlf.txt", "[PAD]\r\n[UNK]\r\n[CLS]\r\n[SEP]\r\nhello\r\n##lo\r\n", 0)
    write("vocab", "bad-duplicate.txt", "[PAD]\n[UNK]\n[CLS]\n[SEP]\na\na\n", 1)
    write("vocab", "bad-missing-sep.txt", "[PAD]\n[UNK]\n[CLS]\n", 1)
    write("vocab", "bad-utf8.txt", b"[PAD]\n[UNK]\n[CLS]\n[SEP]\n\xff\xfe\n", 1)
    write("vocab", "empty.txt", "", 1)

    # WordPiece text (mode: bit 0 lower, bit 1 pair split at a tab, bit 2 pad, bits 3-7 max_length - 3)
    write("wordpiece", "pair.txt", "Hello, World! unaffable\tcaf\u00e9 r\u00e9sum\u00e9 \u6211\u7231\u5317\u4eac",
          1 | 2 | 4 | (29 << 3))
    write("wordpiece", "sigma.txt", "\u039f\u03a3\u039f\u03a3 \u03bf\u03c3 [CLS] [MASK]x", 1 | (10 << 3))
    write("wordpiece", "controls.txt", b"a\x00b\x07c\xef\xbf\xbd d\xe2\x80\xa8e\xc2\xa0f\xff\xc0\x80", 1 | 2 | (2 << 3))
    write("wordpiece", "long-word.txt", "x" * 150 + " " + "a" * 30, 1 | 4 | (31 << 3))
    write("wordpiece", "short.txt", "the the the\tthe", 2)
    write("wordpiece", "rte-sentences.txt", b"\t".join(head(f"{glue}/dev.tsv", 2).split(b"\n")[1].split(b"\t")[1:3]),
          1 | 2 | 4 | (13 << 3))

    # flags (mode: command mod 7 in train eval predict memory init launch info order, + 7 for args.json)
    train = ["--model_name_or_path", "m", "--output_dir", "out", "--task_name", "RTE", "--do_train",
             "--do_eval", "--max_seq_length", "128", "--per_device_train_batch_size", "32",
             "--learning_rate", "2e-5", "--num_train_epochs", "3", "--backRazor", "True",
             "--prune_ratio", "0.8", "--evaluation_strategy", "steps", "--eval_steps", "10"]
    write("args", "train.txt", "\n".join(train), 0)
    write("args", "train-sites.txt", "\n".join(train + ["--backrazor_sites", "gelu_input=low:fp16",
                                                        "--backrazor_layers", "0-5:all,6-11:checkpoint+none"]), 0)
    write("args", "train-bad-bool.txt", "\n".join(train + ["--fp16", "maybe"]), 0)
    write("args", "train-inline.txt", "--model_name_or_path=m\n--output_dir=~/o\n--do_predict\n--report_to\nwandb\nnone", 0)
    write("args", "eval.txt", "--model_name_or_path\nm\n--output_dir\no\n--max_memory\n16GiB\n--no_pad_to_max_length", 1)
    write("args", "memory.txt", "--config_name\nc.json\n--per_device_train_batch_size\n8\n--backRazor\n"
          "--backrazor_preset\nbalanced\n--max_memory\n3.5GB\n--plan", 3)
    write("args", "init.txt", "--config_name\nc.json\n--output_dir\no\n--num_labels\n3", 4)
    write("args", "launch.txt", "--nproc_per_node\n2\n--master_port\n29500\ntrain\n--do_train", 5)
    write("args", "help.txt", "--help", 0)
    write("args", "train.json", json.dumps({"model_name_or_path": "m", "output_dir": "o", "do_train": True,
                                            "learning_rate": 2e-5, "report_to": ["none"], "save_total_limit": None}), 7)
    write("args", "bad-null.json", '{"model_name_or_path": null}', 7)
    write("args", "bad-unknown.json", '{"nope": 1}', 7)
    write("args", "bad-json.json", '{"do_train": tru', 7)

    # trainer_state.json
    state = {"best_metric": 0.6931, "best_model_checkpoint": "out/checkpoint-10", "epoch": 1.28,
             "global_step": 10, "is_hyper_param_search": False, "is_local_process_zero": True,
             "is_world_process_zero": True, "log_history": [
                 {"epoch": 0.5, "learning_rate": 1e-5, "loss": 0.69, "step": 5},
                 {"epoch": 1.28, "eval_accuracy": 0.5, "eval_loss": 0.6931, "step": 10}],
             "max_steps": 20, "num_train_epochs": 3, "total_flos": 1.3e15, "trial_name": None,
             "trial_params": None, "logging_steps": 5, "eval_steps": 10, "save_steps": 10,
             "train_batch_size": 8}
    write("trainer_state", "state.json", json.dumps(state, indent=2, sort_keys=True) + "\n")
    write("trainer_state", "empty-object.json", "{}")
    write("trainer_state", "bad-step-type.json", '{"global_step": "x"}')
    write("trainer_state", "bad-step-huge.json", '{"global_step": 1e300, "max_steps": -1e300}')
    write("trainer_state", "bad-history.json", '{"log_history": 5}')
    write("trainer_state", "bad-flag.json", '{"is_world_process_zero": 1}')
    write("trainer_state", "truncated.json", json.dumps(state)[:80])

    # manifest.json
    manifest = {"format": "bertrazor-checkpoint-manifest-1", "hash": "xxh3-128", "files": {
        "config.json": {"bytes": 650, "xxh3_128": "0123456789abcdef0123456789abcdef"},
        "model.safetensors": {"bytes": 90868376, "xxh3_128": "fedcba9876543210fedcba9876543210"}}}
    write("manifest", "manifest.json", json.dumps(manifest, indent=2) + "\n")
    write("manifest", "bad-hash.json", json.dumps(dict(manifest, hash="md5")))
    write("manifest", "bad-path.json", json.dumps(dict(manifest, files={"../../etc/passwd": {"bytes": 1, "xxh3_128": "0" * 32}})))
    write("manifest", "bad-bytes.json", json.dumps(dict(manifest, files={"a": {"bytes": -5, "xxh3_128": "0" * 32}})))
    write("manifest", "bad-bytes-float.json", '{"hash": "xxh3-128", "files": {"a": {"bytes": 1e300, "xxh3_128": "00"}}}')
    write("manifest", "bad-digest.json", json.dumps(dict(manifest, files={"a": {"bytes": 5, "xxh3_128": "xyz"}})))
    write("manifest", "bad-files.json", '{"hash": "xxh3-128", "files": [1, 2]}')
    write("manifest", "truncated.json", json.dumps(manifest)[:60])

    # rng_state.json (as save_checkpoint writes it)
    rng = {"seed": 42, "sampler_seed": 42, "epoch": 1, "micro_batches_in_epoch": 3, "global_step": 10}
    write("rng_state", "rng_state.json", json.dumps(rng, indent=2) + "\n")
    write("rng_state", "integral-float.json", '{"epoch": 2.0, "micro_batches_in_epoch": 0}')
    write("rng_state", "bad-missing.json", '{"epoch": 1}')
    write("rng_state", "bad-negative.json", '{"epoch": -1, "micro_batches_in_epoch": 3}')
    write("rng_state", "bad-huge.json", '{"epoch": 1e300, "micro_batches_in_epoch": 18446744073709551615}')
    write("rng_state", "bad-fraction.json", '{"epoch": 0.5, "micro_batches_in_epoch": "3"}')
    write("rng_state", "bad-array.json", '[1, 3]')
    write("rng_state", "truncated.json", json.dumps(rng)[:40])


if __name__ == "__main__":
    main()
