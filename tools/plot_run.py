#!/usr/bin/env python3
"""Loss, learning rate and the evaluation metric against the step, from the trainer_state.json of
one or several bertrazor (or Hugging Face Trainer) output folders, one line per run.

    ~/.cache/bertrazor/venv/bin/pip install matplotlib      # once, in the tools venv
    ~/.cache/bertrazor/venv/bin/python tools/plot_run.py out/dense out/balanced -o runs.png
        [--labels dense,balanced] [--metric eval_accuracy]
"""
import argparse
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def history(out):
    path = os.path.join(out, "trainer_state.json")
    try:
        return json.load(open(path))["log_history"]
    except (OSError, KeyError, ValueError) as e:
        sys.exit(f"plot_run: {path}: {e}")


def series(logs, key):
    points = [(e["step"], e[key]) for e in logs if key in e and "step" in e]
    return [p[0] for p in points], [p[1] for p in points]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("runs", nargs="+", help="output folders holding trainer_state.json")
    p.add_argument("-o", "--output", default="runs.png")
    p.add_argument("--labels", help="comma-separated, one per run (default: folder names)")
    p.add_argument("--metric", help="eval key to plot (default: the first eval_ metric found)")
    a = p.parse_args()
    labels = a.labels.split(",") if a.labels else [os.path.basename(os.path.normpath(r)) for r in a.runs]
    if len(labels) != len(a.runs):
        sys.exit(f"plot_run: {len(labels)} labels for {len(a.runs)} runs")
    logs = [history(r) for r in a.runs]
    metric = a.metric
    if not metric:
        skip = {"eval_loss", "eval_runtime", "eval_samples_per_second", "eval_steps_per_second"}
        keys = [k for l in logs for e in l for k in e if k.startswith("eval_") and k not in skip]
        metric = keys[0] if keys else "eval_loss"
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for (key, title), ax in zip([("loss", "training loss"), ("learning_rate", "learning rate"),
                                 (metric, metric)], axes):
        for l, label in zip(logs, labels):
            x, y = series(l, key)
            if x:
                ax.plot(x, y, marker="o" if key == metric else None, markersize=3, label=label)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(a.output, dpi=110)
    print(f"plot_run: wrote {a.output} ({len(a.runs)} runs, metric {metric})")


if __name__ == "__main__":
    main()
