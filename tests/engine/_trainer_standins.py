"""Small stand-ins for the trainer tests: a noisy regression "detector", targets, loader, checkpointer, EMA.

They exercise exactly what ``do_train`` touches (targets with ``len``/``to``/``has_field``; a loss dict; a
``save(name, **extras)`` checkpointer; a batch sampler that restarts at ``start_iter``), so the loop's resume,
skip, AMP, clipping and validation logic is tested without the real model and data.
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler
from yacs.config import CfgNode


def make_cfg(output_dir: str, max_iter: int = 12) -> CfgNode:
    cfg = CfgNode()
    cfg.OUTPUT_DIR = output_dir
    cfg.SOLVER = CfgNode()
    cfg.SOLVER.MAX_ITER = max_iter
    cfg.SOLVER.MAX_EPOCH = 0
    cfg.SOLVER.CHECKPOINT_PERIOD = 4
    cfg.SOLVER.CHECKPOINT_PER_EPOCH = -1.0
    cfg.SOLVER.MAX_NEG_PER_BATCH = 0.1
    cfg.SOLVER.USE_AMP = False
    cfg.SOLVER.AMP_DTYPE = "float16"
    cfg.SOLVER.GRAD_CLIP = 0.0
    cfg.SOLVER.CLIP_GRADIENTS = CfgNode()
    cfg.SOLVER.CLIP_GRADIENTS.ENABLED = False
    cfg.SOLVER.CLIP_GRADIENTS.CLIP_VALUE = 0.0
    cfg.SOLVER.CLIP_GRADIENTS.CLIP_TYPE = "full_model"
    cfg.SOLVER.CLIP_GRADIENTS.NORM_TYPE = 2.0
    cfg.SOLVER.USE_AUTOSTEP = False
    cfg.SOLVER.AUTO_TERMINATE_PATIENCE = -1
    cfg.SOLVER.USE_EMA_FOR_MONITOR = False
    return cfg


class Target:
    """Minimal BoxList-like target: n boxes, an optional caption."""

    def __init__(self, n: int, caption: str = "a thing"):
        self.n = n
        self.caption = caption

    def __len__(self):
        return self.n

    def to(self, device):
        return self

    def has_field(self, name):
        return name == "caption"

    def get_field(self, name):
        return self.caption


class Images:
    def __init__(self, tensors):
        self.tensors = tensors

    def to(self, device):
        return Images(self.tensors.to(device))


class NoisyDataset(Dataset):
    """Sample i: a fixed input plus noise from the global torch/numpy/python RNGs (like random augmentation)."""

    def __init__(self, size: int = 10, empty=()):
        gen = torch.Generator().manual_seed(0)
        self.x = torch.randn(size, 6, generator=gen)
        self.y = self.x @ torch.randn(6, 1, generator=gen)
        self.empty = set(empty)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        jitter = 0.01 * (torch.randn(6) + float(np.random.rand()) + random.random())
        return self.x[i] + jitter, self.y[i], 0 if i in self.empty else 1, i


class ResumableBatchSampler(Sampler):
    """Batches of a seeded per-epoch permutation, iteration-based, restartable at ``start_iter``."""

    def __init__(self, size: int, batch_size: int, max_iter: int, start_iter: int = 0, seed: int = 0):
        self.size, self.batch_size, self.max_iter = size, batch_size, max_iter
        self.start_iter, self.seed = start_iter, seed

    def _all_batches(self):
        epoch = 0
        while True:
            order = torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed + epoch)).tolist()
            for k in range(0, self.size - self.batch_size + 1, self.batch_size):
                yield order[k : k + self.batch_size]
            epoch += 1

    def __iter__(self):
        for iteration, batch in enumerate(self._all_batches()):
            if iteration >= self.max_iter:
                return
            if iteration >= self.start_iter:
                yield batch

    def __len__(self):
        return self.max_iter - self.start_iter


def collate(samples):
    x = torch.stack([s[0] for s in samples])
    y = torch.stack([s[1] for s in samples])
    targets = [Target(s[2]) for s in samples]
    ids = tuple(s[3] for s in samples)
    return Images(x), targets, ids, y, None


def make_loader(dataset, max_iter: int, start_iter: int = 0, batch_size: int = 2):
    sampler = ResumableBatchSampler(len(dataset), batch_size, max_iter, start_iter)
    return DataLoader(dataset, batch_sampler=sampler, collate_fn=collate, num_workers=0)


class TinyRegressor(nn.Module):
    """Dropout + linear layers; "positive_map" carries the regression target. Returns two loss terms."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 1))
        self.register_buffer("steps", torch.zeros((), dtype=torch.int64))
        self.calls = 0

    def forward(self, images, targets=None, captions=None, positive_map=None):
        self.calls += 1
        pred = self.body(images.tensors)
        if not self.training:
            return pred
        err = pred.float() - positive_map
        return {"loss_a": (err**2).mean(), "loss_b": 0.1 * err.abs().mean()}


class StepScheduler(torch.optim.lr_scheduler.LambdaLR):
    def __init__(self, optimizer):
        super().__init__(optimizer, lambda it: 1.0 / (1 + 0.1 * it))


class PlainCheckpointer:
    """Saves model/optimizer/scheduler + extras to save_dir/<name>.pth atomically; last_checkpoint pointer."""

    def __init__(self, model, optimizer, scheduler, save_dir):
        self.model, self.optimizer, self.scheduler, self.save_dir = model, optimizer, scheduler, save_dir
        self.saved = []

    def save(self, name, **extras):
        data = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), **extras}
        path = os.path.join(self.save_dir, f"{name}.pth")
        torch.save(data, path + ".tmp")
        os.replace(path + ".tmp", path)
        with open(os.path.join(self.save_dir, "last_checkpoint"), "w") as handle:
            handle.write(path)
        self.saved.append(name)

    def load_last(self):
        with open(os.path.join(self.save_dir, "last_checkpoint")) as handle:
            path = handle.read().strip()
        data = torch.load(path, weights_only=True)
        self.model.load_state_dict(data.pop("model"))
        self.optimizer.load_state_dict(data.pop("optimizer"))
        self.scheduler.load_state_dict(data.pop("scheduler"))
        return data


class SimpleEma:
    def __init__(self, model, decay=0.9):
        import copy

        self.module = copy.deepcopy(model)
        self.decay = decay

    def update(self, model):
        with torch.no_grad():
            for e, p in zip(self.module.state_dict().values(), model.state_dict().values()):
                if e.dtype.is_floating_point:
                    e.mul_(self.decay).add_(p, alpha=1 - self.decay)
                else:
                    e.copy_(p)

    def state_dict(self):
        return self.module.state_dict()

    def load_state_dict(self, state):
        self.module.load_state_dict(state)
