"""Few-shot meta-learning (iMAML proximal form, or head-only ANIL form) on episodic image data.

Each batch is one episode (task) i: N classes, K support and Q query images per class, drawn
from the training classes by its index (problems/_episodes.py). With θ = x (meta-parameters):

    inner="imaml":  y = φ (all weights),   g_i(θ, φ) = L_i^support(φ) + λ/2 ‖φ − θ‖²
    inner="anil":   y = the linear head w, g_i(θ, w) = L_i^support(θ_backbone, w) + λ/2 ‖w − θ_head‖²
    f_i(θ, y) = L_i^query(y)   (cross-entropy; ANIL: with θ's backbone)

so that h(θ) = E_i f_i(θ, y_i*(θ)). The problem is episodic: the inner solution of each task
starts from y_start(θ) = θ (iMAML) or θ_head (ANIL) and is never carried to another task.
Networks: Conv-4 or ResNet-12 (benchopt_bilevel/nn), BatchNorm on the batch's statistics (as in
MAML), DropBlock keyed by the episode index.

Data: Omniglot (shipped: the official small background subsets, 242 characters × 20 drawings,
28×28 by area resizing, ink = 1; characters split 60/20/20 into train/validation/test classes
by a seeded permutation), miniImageNet (84×84, the 64/16/20 class split of its pickles), or
synthetic images (class prototypes plus noise, for tests). Splits are disjoint sets of classes.

Metric (untimed): the meta-test accuracy over `n_test_episodes` fixed test episodes, after
adapting from θ with `eval_inner_steps` gradient steps on g (step `eval_step`), with its 95%
confidence interval 1.96·std/√n; the target is test_error = 1 − accuracy ≤ 0.25.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import grad

from benchopt_bilevel import rng
from benchopt_bilevel.nn import FlatModel
from benchopt_bilevel.nn.conv4 import conv4
from benchopt_bilevel.nn.resnet12 import resnet12
from benchopt_bilevel.problem import Problem

from ._episodes import SALT, episode, split_classes

Tensor = torch.Tensor
DATASETS = ("omniglot", "miniimagenet", "synthetic")
DEFAULT_SIZE = {"omniglot": 28, "miniimagenet": 84, "synthetic": 16}


@dataclass
class FewShotParams:
    dataset: str = "omniglot"  # omniglot | miniimagenet | synthetic
    network: str = "conv4"  # conv4 | resnet12
    width: float = 1.0  # ResNet-12 width multiplier; Conv-4 has round(64 · width) channels
    image_size: int = 0  # 0: the dataset's usual size (28 Omniglot, 84 miniImageNet)
    n_way: int = 5
    k_shot: int = 1
    n_query: int = 15
    inner: str = "imaml"  # imaml | anil
    reg: float = 1.0  # λ of the proximal term (the iMAML Omniglot script's)
    drop_rate: float = 0.1  # DropBlock rate (ResNet-12)
    max_classes: int = 0  # keep at most this many classes per split (tiny configurations); 0: all
    n_test_episodes: int = 100  # the papers' protocol: 600
    eval_inner_steps: int = 10
    eval_step: float = 0.1
    data_root: str = ""  # folder with the dataset's files (default: the dataset's own lookup)
    seed: int = 0  # class split, synthetic data and initial weights

    def __post_init__(self) -> None:
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {', '.join(DATASETS)}, got {self.dataset!r}")
        if self.network not in ("conv4", "resnet12"):
            raise ValueError(f"network must be conv4 or resnet12, got {self.network!r}")
        if self.inner not in ("imaml", "anil"):
            raise ValueError(f"inner must be imaml or anil, got {self.inner!r}")
        if min(self.n_way, self.k_shot, self.n_query, self.n_test_episodes) < 1 or self.n_way < 2:
            raise ValueError("need n_way >= 2 and k_shot, n_query, n_test_episodes >= 1")
        if self.reg < 0 or self.width <= 0 or self.eval_inner_steps < 0:
            raise ValueError("reg must be >= 0, width > 0, eval_inner_steps >= 0")


def _omniglot(p: FewShotParams, size: int) -> dict[str, tuple[list[str], np.ndarray]]:
    from benchopt_bilevel.data import get_dataset

    store = get_dataset("omniglot").load(runs=False, **({"root": p.data_root} if p.data_root else {}))
    names = sorted(store.images)
    splits = split_classes(names, (0.6, 0.2, 0.2), p.seed)
    out = {}
    for split, classes in splits.items():
        ink = 255 - np.stack([store.images[c] for c in classes])  # (C, 20, 105, 105), ink high
        t = torch.from_numpy(ink).float().reshape(-1, 1, 105, 105)
        t = F.interpolate(t, size=(size, size), mode="area").round().clamp(0, 255).to(torch.uint8)
        out[split] = classes, t.reshape(len(classes), ink.shape[1], 1, size, size).numpy()
    return out


def _miniimagenet(p: FewShotParams, size: int) -> dict[str, tuple[list[str], np.ndarray]]:
    from benchopt_bilevel.data import get_dataset

    store = get_dataset("miniimagenet").load(**({"root": p.data_root} if p.data_root else {}))
    out = {}
    for split, key in (("train", "train"), ("validation", "validation"), ("test", "test")):
        images = np.stack([store.images[c] for c in store.splits[key]])  # (C, 600, 84, 84, 3)
        images = np.ascontiguousarray(images.transpose(0, 1, 4, 2, 3))
        if size != images.shape[-1]:
            t = torch.from_numpy(images).float().reshape(-1, 3, *images.shape[-2:])
            t = F.interpolate(t, size=(size, size), mode="area").round().to(torch.uint8)
            images = t.reshape(*images.shape[:2], 3, size, size).numpy()
        out[split] = list(store.splits[key]), images
    return out


def _synthetic(p: FewShotParams, size: int, generator: torch.Generator) -> dict[str, tuple[list[str], np.ndarray]]:
    """Per class a smooth random prototype; its 20 images are noisy, shifted copies."""
    n_classes, n_images = 60, 20
    proto = torch.rand(n_classes, 1, 1, size // 2, size // 2, generator=generator)
    proto = F.interpolate(proto.reshape(n_classes, 1, size // 2, size // 2), size=(size, size), mode="bilinear")
    images = proto.unsqueeze(1) + 0.25 * torch.randn(n_classes, n_images, 1, size, size, generator=generator)
    images = (images.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    names = [str(i) for i in range(n_classes)]
    splits = split_classes(names, (0.6, 0.2, 0.2), p.seed)
    return {s: (classes, images[[int(c) for c in classes]]) for s, classes in splits.items()}


class FewShot(Problem):
    """Episodic few-shot classification; x = meta-parameters, y = per-task weights."""

    name = "fewshot"
    description = "Few-shot meta-learning (iMAML proximal or ANIL head-only inner problem), episodic"
    Params = FewShotParams
    target_metric = "test_error"
    target_value = 0.25
    divergence_metric = "test_query_loss"
    value_metric = "test_query_loss"
    episodic = True

    def __init__(self, params: FewShotParams, generator: torch.Generator) -> None:
        super().__init__(params, generator)
        p = params
        size = p.image_size or DEFAULT_SIZE[p.dataset]
        if p.dataset == "omniglot":
            splits = _omniglot(p, size)
        elif p.dataset == "miniimagenet":
            splits = _miniimagenet(p, size)
        else:
            splits = _synthetic(p, size, generator)
        if p.max_classes:
            splits = {s: (names[:p.max_classes], a[:p.max_classes]) for s, (names, a) in splits.items()}
        self.class_names = {s: names for s, (names, _) in splits.items()}  # disjoint across splits
        splits = {s: a for s, (_, a) in splits.items()}
        for split, images in splits.items():
            if images.shape[0] < p.n_way or images.shape[1] < p.k_shot + p.n_query:
                raise ValueError(f"{p.dataset} {split} split has {images.shape[0]} classes of {images.shape[1]} "
                                 f"images: too few for {p.n_way}-way {p.k_shot}-shot with {p.n_query} queries")
        self.train_images = torch.from_numpy(splits["train"])
        self.validation_images = torch.from_numpy(splits["validation"])
        self.test_images = torch.from_numpy(splits["test"])
        self.class_counts = {s: int(a.shape[0]) for s, a in splits.items()}
        channels = self.train_images.shape[2]
        if p.network == "conv4":
            build = lambda: conv4(channels, size, p.n_way, max(1, round(64 * p.width)))  # noqa: E731
        else:
            build = lambda: resnet12(channels, p.n_way, p.width, p.drop_rate)  # noqa: E731
        self.model = FlatModel(build, seed=p.seed)
        self.theta0 = self.model.init(torch.float32)
        self.head_offset = self.model.offset("head")
        self.dim_x = self.model.numel
        self.dim_y = self.dim_x if p.inner == "imaml" else self.dim_x - self.head_offset
        self.n_inner_batches = self.n_outer_batches = 2**30  # a fresh task per draw, in effect
        self._dropblock = p.network == "resnet12" and p.drop_rate > 0

    # -- episodes ------------------------------------------------------------------------------
    def _episode(self, batch: Tensor, split: str = "train"):
        p = self.params
        store = {"train": self.train_images, "validation": self.validation_images, "test": self.test_images}[split]
        return episode(store, batch, p.n_way, p.k_shot, p.n_query, SALT[split], self.dtype)

    def _weights(self, x: Tensor, y: Tensor) -> Tensor:
        """Full network weights from (θ, y): y itself (iMAML) or θ's backbone and head y (ANIL)."""
        return y if self.params.inner == "imaml" else torch.cat([x[:self.head_offset], y])

    def _anchor(self, x: Tensor) -> Tensor:
        return x if self.params.inner == "imaml" else x[self.head_offset:]

    def _keys(self, batch: Tensor, train: bool):
        if not (train and self._dropblock):
            return None, None
        return rng.split(batch.to(torch.int64) + 0x5bd1e995, 2)

    def _loss(self, weights: Tensor, images: Tensor, labels: Tensor, key: Tensor | None) -> Tensor:
        logits = self.model(weights, images, key=key) if key is not None else self.model(weights, images)
        return F.cross_entropy(logits, labels)

    # -- objectives ----------------------------------------------------------------------------
    def inner(self, x: Tensor, y: Tensor, batch: Tensor | None) -> Tensor:
        support, labels, _, _ = self._episode(self._task(batch))
        key, _ = self._keys(self._task(batch), True)
        prox = 0.5 * self.params.reg * torch.sum((y - self._anchor(x)) ** 2)
        return self._loss(self._weights(x, y), support, labels, key) + prox

    def outer(self, x: Tensor, y: Tensor, batch: Tensor | None) -> Tensor:
        _, _, query, labels = self._episode(self._task(batch))
        _, key = self._keys(self._task(batch), True)
        return self._loss(self._weights(x, y), query, labels, key)

    def _task(self, batch: Tensor | None) -> Tensor:
        # There is no "full batch" of an episodic problem: None stands for episode 0.
        return torch.zeros((), dtype=torch.int64, device=self.train_images.device) if batch is None else batch

    # -- starting points -----------------------------------------------------------------------
    def x0(self) -> Tensor:
        return self.theta0.clone()

    def y0(self) -> Tensor:
        return self._anchor(self.theta0).clone()

    def y_start(self, x: Tensor, batch: Tensor | None) -> Tensor:
        return self._anchor(x)

    # -- metrics -------------------------------------------------------------------------------
    def adapt_and_score(self, x: Tensor, split: str, n_episodes: int) -> tuple[np.ndarray, np.ndarray]:
        """Per-episode query accuracy and loss after the fixed evaluation adaptation from x."""
        p = self.params
        accuracies, losses = [], []
        with torch.enable_grad():
            for i in range(n_episodes):
                index = torch.tensor(i, dtype=torch.int64, device=self.device)
                support, s_labels, query, q_labels = self._episode(index, split)
                anchor = self._anchor(x).detach()

                def inner(y: Tensor) -> Tensor:
                    prox = 0.5 * p.reg * torch.sum((y - anchor) ** 2)
                    return self._loss(self._weights(x, y), support, s_labels, None) + prox

                y = anchor
                for _ in range(p.eval_inner_steps):
                    y = (y - p.eval_step * grad(inner)(y)).detach()
                with torch.no_grad():
                    logits = self.model(self._weights(x, y), query)
                    losses.append(float(F.cross_entropy(logits, q_labels)))
                    accuracies.append(float((logits.argmax(1) == q_labels).to(torch.float64).mean()))
        return np.array(accuracies), np.array(losses)

    def evaluate(self, x: Tensor, y: Tensor) -> dict[str, float]:
        n = self.params.n_test_episodes
        accuracy, loss = self.adapt_and_score(x.detach(), "test", n)
        ci95 = 1.96 * accuracy.std(ddof=1) / math.sqrt(n) if n > 1 else float("nan")
        return {"test_accuracy": float(accuracy.mean()), "test_accuracy_ci95": float(ci95),
                "test_error": float(1.0 - accuracy.mean()), "test_query_loss": float(loss.mean())}
