"""Deep equilibrium classification (MDEQ on CIFAR-10): the inner problem is the fixed point.

With x = θ (all weights: stem, equilibrium cell, classifier) and a batch b of images:

    inner map  T_θ(z; b) = MDEQ cell applied to the state z with the stem's injection of b's images
    inner      g(θ, z; b) = ½ ‖T_θ(z; b) − z‖² / |b|   (its minimiser is the equilibrium z*)
    outer      f(θ, z; b) = cross-entropy of the classifier on z against b's labels

so that h(θ) = E_b f(θ, z_b*(θ)), the DEQ training loss. The problem is episodic: each batch's
equilibrium starts from z = 0 and is never carried to another batch. It states its map T as
`inner_map` (the engine's fixed-point oracles use it: a Broyden forward evaluates the cell, a
backward iteration is one vjp of the cell), and `y_rows` = batch size (each image's state is
its own equilibrium), so that root finders treat each sample's state separately. Solvers built on the gradient of g (AID, ITD) also run,
on the least-squares form of the same equilibrium.

Backward rules (implicit, SHINE, Jacobian-free, capped) are parameters of the deq-implicit
solver (solvers/deq_implicit.py), not of this problem, so that they are ranked against each
other on one problem.

Data: synthetic (class-dependent smooth patterns plus noise, for tests), cifar10 (the python
pickles) or cifar10_jpeg ("CIFAR-10 (JPEG copy)", an image-folder layout read from `data_root`,
BENCHOPT_BILEVEL_CIFAR10_JPEG or the cache); shuffled once, cut into fixed batches, normalised
by the CIFAR-10 channel means and deviations; `image_size` < 32 resizes by area averaging;
the `n_test` scored test images are a seeded random subset (an image-folder copy lists them
class by class).
Metric (untimed): top-1 test accuracy with `eval_iters` Broyden iterations from 0; the target is
test_error ≤ 0.5 (reachable in short runs; the papers train MDEQ-large to about 7%).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import grad, vjp

from benchopt_bilevel.nn import FlatModel
from benchopt_bilevel.nn.broyden import broyden
from benchopt_bilevel.nn.mdeq import CONFIGS, MDEQ
from benchopt_bilevel.problem import Problem

Tensor = torch.Tensor
DATASETS = ("synthetic", "cifar10", "cifar10_jpeg")
MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
LABELS = {"synthetic": "synthetic images", "cifar10": "CIFAR-10", "cifar10_jpeg": "CIFAR-10 (JPEG copy)"}
# The exact hypergradient's equilibrium: Broyden from 0, then Newton steps with the dense Jacobian.
EXACT_BROYDEN_ITERS, EXACT_NEWTON_STEPS, EXACT_TOLERANCE = 60, 12, 1e-13  # relative residual
EXACT_ACCEPT = 1e-10  # else the batch has no equilibrium found, and the exact answer is NaN
EXACT_STEP_FRACTIONS = (1.0, 0.5, 0.25, 0.125, 0.0625, 0.03125)
# The runner asks for ∇h at every evaluation of every run that exposes an estimate: beyond this
# many state entries over the training set (images × state size; the tiny configuration on 8×8
# images has 384 a image) the exact answer is NaN (unknown) rather than minutes of dense solves.
EXACT_WORK_LIMIT = 8192


@dataclass
class DEQParams:
    dataset: str = "cifar10"  # synthetic | cifar10 | cifar10_jpeg
    config: str = "large"  # tiny | small | large (nn/mdeq.py)
    image_size: int = 32
    batch_size: int = 128
    n_train: int = 0  # first n training images (after the shuffle); 0: all
    n_test: int = 1000  # test images scored at each evaluation
    eval_iters: int = 30  # Broyden iterations when scoring
    data_root: str = ""
    seed: int = 0  # shuffle, synthetic data and initial weights

    def __post_init__(self) -> None:
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {', '.join(DATASETS)}, got {self.dataset!r}")
        if self.config not in CONFIGS:
            raise ValueError(f"config must be one of {', '.join(CONFIGS)}, got {self.config!r}")
        if self.batch_size < 1 or self.n_test < 1 or self.eval_iters < 1 or not 4 <= self.image_size <= 32:
            raise ValueError("need batch_size, n_test, eval_iters >= 1 and 4 <= image_size <= 32")


def _load(p: DEQParams, generator: torch.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """uint8 images (n, 3, 32, 32) and int64 labels, train then test."""
    if p.dataset == "synthetic":
        n_train, n_test = p.n_train or 512, p.n_test
        proto = torch.rand(10, 3, 4, 4, generator=generator)
        proto = F.interpolate(proto, size=(32, 32), mode="bilinear")

        def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
            labels = torch.randint(0, 10, (n,), generator=generator)
            images = proto[labels] + 0.3 * torch.randn(n, 3, 32, 32, generator=generator)
            return (images.clamp(0, 1) * 255).round().to(torch.uint8).numpy(), labels.numpy()

        return (*draw(n_train), *draw(n_test))
    from benchopt_bilevel.data import get_dataset

    data = get_dataset(p.dataset).load(flatten=False, **({"root": p.data_root} if p.data_root else {}))
    to_uint8 = lambda X: np.round(X * 255).astype(np.uint8)  # noqa: E731
    return to_uint8(data.X_train), data.y_train, to_uint8(data.X_test), data.y_test


class DEQ(Problem):
    """MDEQ classification; x = weights, y = the batch's equilibrium state (flattened)."""

    name = "deq"
    description = "Deep equilibrium (MDEQ) classification: the inner problem is the cell's fixed point"
    Params = DEQParams
    target_metric = "test_error"
    target_value = 0.5
    divergence_metric = "test_loss"
    value_metric = "test_loss"
    episodic = True

    def __init__(self, params: DEQParams, generator: torch.Generator) -> None:
        super().__init__(params, generator)
        p = params
        X_train, y_train, X_test, y_test = _load(p, generator)
        order = torch.randperm(len(X_train), generator=generator).numpy()
        if p.n_train:
            order = order[:p.n_train]
        n_batches = len(order) // p.batch_size
        if n_batches < 1:
            raise ValueError(f"{len(order)} training images are fewer than batch_size={p.batch_size}")
        order = order[:n_batches * p.batch_size]
        resize = lambda X: X if p.image_size == 32 else F.interpolate(  # noqa: E731
            torch.from_numpy(X).float(), size=(p.image_size,) * 2, mode="area").round().to(torch.uint8).numpy()
        self.train_images = torch.from_numpy(resize(X_train[order])).reshape(
            n_batches, p.batch_size, 3, p.image_size, p.image_size)
        self.train_labels = torch.from_numpy(y_train[order]).reshape(n_batches, p.batch_size)
        # Image-folder copies list the test set class by class: score a seeded random subset.
        test_order = torch.randperm(len(X_test), generator=generator).numpy()[:p.n_test]
        self.test_images = torch.from_numpy(resize(X_test[test_order]))
        self.test_labels = torch.from_numpy(y_test[test_order])
        self.model = FlatModel(lambda: MDEQ(CONFIGS[p.config]), seed=p.seed)
        self.theta0 = self.model.init(torch.float32)
        self.channel_mean = torch.tensor(MEAN).reshape(1, 3, 1, 1)
        self.channel_std = torch.tensor(STD).reshape(1, 3, 1, 1)
        self.state_shapes = self.model.module.state_shapes(p.image_size, p.image_size)
        self.state_size = sum(c * h * w for c, h, w in self.state_shapes)
        self.y_rows = p.batch_size
        self.dim_x, self.dim_y = self.model.numel, p.batch_size * self.state_size
        self.n_inner_batches = self.n_outer_batches = n_batches

    @property
    def dataset_name(self) -> str:
        return LABELS[self.params.dataset]

    # -- network pieces --------------------------------------------------------------------------
    def _images(self, images: Tensor, dtype: torch.dtype) -> Tensor:
        mean, std = self.channel_mean.to(dtype), self.channel_std.to(dtype)
        return (images.to(dtype) / 255.0 - mean) / std

    def _split(self, y: Tensor, rows: int) -> list[Tensor]:
        parts = torch.split(y.reshape(rows, -1), [c * h * w for c, h, w in self.state_shapes], dim=1)
        return [t.reshape(rows, *shape) for t, shape in zip(parts, self.state_shapes)]

    @staticmethod
    def _join(z: list[Tensor]) -> Tensor:
        return torch.cat([t.reshape(t.shape[0], -1) for t in z], 1)

    def cell(self, x: Tensor, y: Tensor, images: Tensor) -> Tensor:
        """T_θ(z) for a batch of raw images; y is (rows · state_size,) or (rows, state_size)."""
        rows = images.shape[0]
        injection = self.model(x, self._images(images, x.dtype), mode="inject")
        return self._join(self.model(x, *self._split(y, rows), injection, mode="cell")).reshape(y.shape)

    def logits(self, x: Tensor, y: Tensor, rows: int) -> Tensor:
        return self.model(x, *self._split(y, rows), mode="classify")

    # -- objectives ------------------------------------------------------------------------------
    def _batch(self, batch: Tensor | None) -> tuple[Tensor, Tensor]:
        batch = torch.zeros((), dtype=torch.int64, device=self.train_images.device) if batch is None else batch
        return self.block(self.train_images, batch), self.block(self.train_labels, batch)

    def inner_map(self, x: Tensor, y: Tensor, batch: Tensor | None) -> Tensor:
        images, _ = self._batch(batch)
        return self.cell(x, y, images)

    def inner(self, x: Tensor, y: Tensor, batch: Tensor | None) -> Tensor:
        return 0.5 * torch.sum((self.inner_map(x, y, batch) - y) ** 2) / self.params.batch_size

    def outer(self, x: Tensor, y: Tensor, batch: Tensor | None) -> Tensor:
        _, labels = self._batch(batch)
        return F.cross_entropy(self.logits(x, y, self.params.batch_size), labels)

    def x0(self) -> Tensor:
        return self.theta0.clone()

    def y_start(self, x: Tensor, batch: Tensor | None) -> Tensor:
        return torch.zeros(self.dim_y, dtype=x.dtype, device=x.device)

    # -- exact hypergradient ---------------------------------------------------------------------
    def state_jacobian(self, x: Tensor, z: Tensor, images: Tensor) -> Tensor:
        """J = ∂T/∂z per sample, (rows, n, n), dense: one vjp on n copies of each sample, whose
        k-th copy pulls back e_k (row k of J). Samples are independent (GroupNorm, no batch
        statistics), so a copy's output depends on its own state only."""
        n = self.state_size
        eye = torch.eye(n, dtype=z.dtype, device=z.device)
        rows = []
        for state, image in zip(z, images):
            copies = image.expand(n, *image.shape)
            _, pullback = vjp(lambda zs: self.cell(x, zs, copies), state.expand(n, n).clone())
            rows.append(pullback(eye)[0])
        return torch.stack(rows)

    def exact_equilibrium(self, x: Tensor, images: Tensor) -> Tensor:
        """z* (rows, state_size) to the dtype's accuracy: Broyden from 0, then damped Newton steps
        (the cell need not be contractive, so full Newton steps from Broyden's point can diverge;
        each sample keeps the first of the halved steps that lowers its residual)."""
        z, _ = self.equilibrium(x, images, EXACT_BROYDEN_ITERS)
        eye = torch.eye(self.state_size, dtype=x.dtype, device=x.device)
        residual = self.cell(x, z, images) - z
        for _ in range(EXACT_NEWTON_STEPS):
            norm = torch.linalg.vector_norm(residual, dim=1)
            if bool((norm <= EXACT_TOLERANCE * torch.linalg.vector_norm(z, dim=1)).all()):
                break
            newton = torch.linalg.solve(self.state_jacobian(x, z, images) - eye, residual[..., None])[..., 0]
            accepted = torch.zeros(len(z), dtype=torch.bool, device=z.device)
            for fraction in EXACT_STEP_FRACTIONS:
                trial = z - fraction * newton
                trial_residual = self.cell(x, trial, images) - trial
                better = ~accepted & (torch.linalg.vector_norm(trial_residual, dim=1) < norm)
                z = torch.where(better[:, None], trial, z)
                residual = torch.where(better[:, None], trial_residual, residual)
                accepted |= better
                if bool(accepted.all()):
                    break
        return z

    def solved(self, x: Tensor, z: Tensor, images: Tensor) -> bool:
        """Whether every sample's relative residual ‖T(z) − z‖ / ‖z‖ is within EXACT_ACCEPT."""
        residual = torch.linalg.vector_norm(self.cell(x, z, images) - z, dim=1)
        return bool((residual <= EXACT_ACCEPT * torch.linalg.vector_norm(z, dim=1)).all())

    def batch_hypergradient(self, x: Tensor, images: Tensor, labels: Tensor) -> Tensor:
        """∇ f_b(x, z_b*(x)) by implicit differentiation on one batch: with J = ∂_z T at z*,
        w = (I − Jᵀ)⁻¹ ∇_z f per sample (a dense solve), then ∇_x f + ∂_x Tᵀ w."""
        rows = len(labels)
        with torch.no_grad():
            z = self.exact_equilibrium(x, images)
        if not self.solved(x, z, images):  # no equilibrium found: no exact answer, not a wrong one
            return torch.full_like(x, float("nan"))
        jacobian = self.state_jacobian(x, z, images)
        loss = lambda x_, z_: F.cross_entropy(self.logits(x_, z_, rows), labels)  # noqa: E731
        grad_x_f, grad_z_f = grad(loss, argnums=(0, 1))(x, z)
        eye = torch.eye(self.state_size, dtype=x.dtype, device=x.device)
        w = torch.linalg.solve((eye - jacobian).transpose(1, 2), grad_z_f[..., None])[..., 0]
        _, pullback = vjp(lambda x_: self.cell(x_, z, images), x)
        return grad_x_f + pullback(w)[0]

    def hypergradient(self, x: Tensor) -> Tensor:
        """∇h(x) for h = the mean over the training batches of f(x, z_b*(x)), in float64: every
        batch's equilibrium solved to float64 accuracy and its adjoint system solved densely.
        Only for small training sets of small states (EXACT_WORK_LIMIT), else NaN: a dense Jacobian
        per sample."""
        x64 = x.detach().to(torch.float64)
        if self.train_labels.numel() * self.state_size > EXACT_WORK_LIMIT:
            return torch.full_like(x64, float("nan"))
        total = torch.zeros_like(x64)
        for images, labels in zip(self.train_images, self.train_labels):
            total += self.batch_hypergradient(x64, images, labels)
        return total / len(self.train_labels)

    def y_star(self, x: Tensor) -> Tensor:
        """z* of the full-batch inner problem (batch None: the first training batch, the whole
        training set when n_train = batch_size) in y's layout, in float64 like `hypergradient`;
        NaN where no equilibrium is found (like `hypergradient`)."""
        x64 = x.detach().to(torch.float64)
        images, _ = self._batch(None)
        with torch.no_grad():
            z = self.exact_equilibrium(x64, images)
            if not self.solved(x64, z, images):
                return torch.full((self.dim_y,), float("nan"), dtype=torch.float64, device=x.device)
        return z.reshape(-1)

    def value(self, x: Tensor) -> Tensor:
        """h(x) in float64: the mean over the training batches of f(x, z_b*(x)), equilibria exact."""
        x64, total = x.detach().to(torch.float64), torch.zeros((), dtype=torch.float64)
        with torch.no_grad():
            for images, labels in zip(self.train_images, self.train_labels):
                z = self.exact_equilibrium(x64, images)
                if not self.solved(x64, z, images):
                    return torch.tensor(float("nan"), dtype=torch.float64)
                total += F.cross_entropy(self.logits(x64, z, len(labels)), labels)
        return total / len(self.train_labels)

    # -- metrics ---------------------------------------------------------------------------------
    def equilibrium(self, x: Tensor, images: Tensor, iters: int) -> tuple[Tensor, Tensor]:
        """(z* (rows, state_size), relative residual per sample) by Broyden from 0."""
        rows = images.shape[0]
        z0 = torch.zeros(rows, self.state_size, dtype=x.dtype, device=x.device)
        z, _, residual = broyden(lambda z: self.cell(x, z, images), z0, iters)
        return z, residual

    def evaluate(self, x: Tensor, y: Tensor) -> dict[str, float]:
        x = x.detach()
        correct, loss, residual, n = 0.0, 0.0, 0.0, len(self.test_labels)
        with torch.no_grad():
            for start in range(0, n, self.params.batch_size):
                images = self.test_images[start:start + self.params.batch_size]
                labels = self.test_labels[start:start + self.params.batch_size]
                z, res = self.equilibrium(x, images, self.params.eval_iters)
                logits = self.logits(x, z, len(labels))
                correct += float((logits.argmax(1) == labels).sum())
                loss += float(F.cross_entropy(logits, labels, reduction="sum"))
                residual += float(res.sum())
        return {"test_accuracy": correct / n, "test_error": 1.0 - correct / n, "test_loss": loss / n,
                "test_residual": residual / n}
