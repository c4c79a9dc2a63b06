#!/usr/bin/env python3
"""Reads the TensorBoard event files of a bertrazor run with the tensorboard package itself
(EventAccumulator) and checks every scalar against trainer_state.json's log_history: each logged
loss, grad_norm, learning_rate and eval metric must be in the events at its step.

    tools/setup_python.sh; ~/.cache/bertrazor/venv/bin/pip install tensorboard
    ~/.cache/bertrazor/venv/bin/python tools/check_tensorboard.py OUTPUT_DIR [LOGGING_DIR]
"""
import glob
import json
import math
import os
import sys

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def main():
    out = sys.argv[1]
    logdir = sys.argv[2] if len(sys.argv) > 2 else None
    files = glob.glob(os.path.join(logdir or os.path.join(out, "runs", "*"), "events.out.tfevents.*"))
    if len(files) != 1:
        sys.exit(f"check_tensorboard: expected one event file, found {files}")
    acc = EventAccumulator(os.path.dirname(files[0]), size_guidance={"scalars": 0})
    acc.Reload()
    tags = acc.Tags()["scalars"]
    events = {}  # tag -> step -> every value at that step (the final evaluation may share a step)
    for t in tags:
        for e in acc.Scalars(t):
            events.setdefault(t, {}).setdefault(e.step, []).append(e.value)
    state = json.load(open(os.path.join(out, "trainer_state.json")))
    checked = 0
    for entry in state["log_history"]:
        step = entry["step"]
        for key, value in entry.items():
            if key == "step" or not isinstance(value, (int, float)):
                continue
            tag = ("eval/" + key[5:] if key.startswith("eval_") else
                   "test/" + key[5:] if key.startswith("test_") else "train/" + key)
            got = events.get(tag, {}).get(step, [])
            if not any(math.isclose(g, value, rel_tol=1e-6, abs_tol=1e-30) for g in got):
                sys.exit(f"check_tensorboard: {tag} at step {step}: events {got}, history {value}")
            checked += 1
    total = sum(len(v) for v in events.values())
    print(f"check_tensorboard: {files[0]}: {len(tags)} tags, {total} scalars read by "
          f"tensorboard's EventAccumulator; all {checked} logged values of trainer_state.json "
          f"found at their steps")
    for t in sorted(tags):
        print(f"  {t}: steps {sorted(events[t])}")


if __name__ == "__main__":
    main()
