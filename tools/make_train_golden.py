#!/usr/bin/env python3
"""Golden files for tests/train: torch.randperm / RandomSampler / DistributedSampler orders and the
HF LR schedules. Run with the venv from tools/setup_python.sh:
    $(tools/setup_python.sh | tail -1) tools/make_train_golden.py
Writes tests/data/randperm_golden.json and tests/data/schedule_golden.json."""
import json
import os

import torch
from torch.utils.data import DistributedSampler, RandomSampler
import transformers
from transformers import get_scheduler

here = os.path.dirname(os.path.abspath(__file__))
out_dir = os.path.join(here, "..", "tests", "data")

randperm = []
for seed in [0, 1, 42, 43, 1234, 2**32 + 7, 2**40 + 5]:
    for n in [1, 2, 3, 7, 10, 33, 127, 300]:
        g = torch.Generator().manual_seed(seed)
        randperm.append({"seed": seed, "n": n, "perm": torch.randperm(n, generator=g).tolist()})
g = torch.Generator().manual_seed(42)
randperm.append({"seed": 42, "n": 2490, "perm": torch.randperm(2490, generator=g).tolist()})

# RandomSampler with a generator seeded once: each epoch draws the next permutation from the same stream.
random_sampler = []
for seed, n, epochs in [(42, 10, 3), (7, 33, 4), (2**32 + 7, 5, 2)]:
    g = torch.Generator().manual_seed(seed)
    s = RandomSampler(range(n), generator=g)
    random_sampler.append({"seed": seed, "n": n, "epochs": [list(iter(s)) for _ in range(epochs)]})

distributed = []
for n, world, seed in [(10, 4, 42), (33, 3, 7), (7, 8, 1), (2490, 4, 42), (12, 2, 0)]:
    for epoch in [0, 1, 5]:
        for rank in range(world):
            s = DistributedSampler(range(n), num_replicas=world, rank=rank, shuffle=True, seed=seed)
            s.set_epoch(epoch)
            distributed.append({"n": n, "world_size": world, "rank": rank, "seed": seed,
                                "epoch": epoch, "order": list(iter(s))})

with open(os.path.join(out_dir, "randperm_golden.json"), "w") as f:
    json.dump({"torch_version": torch.__version__, "randperm": randperm,
               "random_sampler": random_sampler, "distributed_sampler": distributed}, f)
    f.write("\n")

# LR schedules: the lr each optimizer step uses (step t, 0-based, after t scheduler steps).
schedules = []
for name, total, warmup in [("linear", 780, 0), ("linear", 100, 10), ("linear", 7, 3),
                            ("cosine", 100, 10), ("cosine", 33, 0), ("constant", 50, 5),
                            ("constant_with_warmup", 50, 5), ("constant_with_warmup", 9, 0),
                            ("linear", 5, 8), ("cosine", 5, 8), ("cosine_with_restarts", 40, 4),
                            ("polynomial", 30, 6), ("polynomial", 12, 0)]:
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=2e-5)
    sch = get_scheduler(name, opt, num_warmup_steps=warmup, num_training_steps=total)
    lrs = []
    for _ in range(total + 2):
        lrs.append(sch.get_last_lr()[0])
        opt.step()
        sch.step()
    schedules.append({"name": name, "total": total, "warmup": warmup, "base": 2e-5, "lr": lrs})
with open(os.path.join(out_dir, "schedule_golden.json"), "w") as f:
    json.dump({"transformers_version": transformers.__version__, "schedules": schedules}, f)
    f.write("\n")
