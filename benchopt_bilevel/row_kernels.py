"""Full-batch row passes that library kernels take in several: one torch op, one native kernel.

    sigmoid_row_mean(rows, rows_t, ys)[q] = 1/n Σ_i σ(−ys_q · r_i) r_i

for the points ys (Q, d) and the n rows r_i of rows (n, d), rows_t its transposed copy (d, n):
the data term of the full-batch logistic gradient, −∇ of 1/n Σ_i log(1 + exp(−y · r_i)), for Q
points at once. Library kernels compute it in three passes (the (Q, n) margins ys @ rows_t, their
sigmoid, the (Q, n) x (n, d) product), reading the rows twice and writing the margins between;
csrc/sigmoid_row_mean.cpp does it in one pass over L1-sized blocks of rows. On ijcnn1's 40,000
x 22 rows with Q = 11 (ESJ's inner step: its 10 perturbed runs and the unperturbed one), float32,
one thread, an AMD EPYC (Zen 4): the three library kernels 342 + 186 + 701 µs, the one pass
606 µs; ESJ's 10 inner steps 14,986 against 6,439 µs (`python speed/full_batch_products.py`).
Its products then run at about the rate of a large square sgemm on the same core.

`sigmoid_row_mean` is a `torch.library` custom op, so that one call site serves every path: eager
calls it, `torch.export` and AOTInductor (the fast path) keep it as one node that the compiled
library calls back through torch's dispatcher, torch.compile treats it as opaque, and vmap
(`linalg.map_rows`: ESJ's Q + 1 runs) folds the batch into its Q rows. The op runs the native
kernel on CPU float32 and float64 when it built (`native.py`), else the torch composite, which
computes the same sum in another order. Autograd: the vjp of the composite.
"""
from __future__ import annotations

import ctypes

import torch

from . import native

Tensor = torch.Tensor
KERNEL = "sigmoid_row_mean"
_FUNCTIONS = {torch.float32: "sigmoid_row_mean_float", torch.float64: "sigmoid_row_mean_double"}


def composite(rows: Tensor, rows_t: Tensor, ys: Tensor) -> Tensor:
    """The op in torch ops (the layouts `problems/_logistic.py` measured fastest for Q rows)."""
    return torch.sigmoid(-(ys @ rows_t)) @ rows / rows.shape[0]


def _native_function(rows_t: Tensor, ys: Tensor):
    """The native kernel for these arguments, or None (not CPU, another dtype, not built)."""
    name = _FUNCTIONS.get(ys.dtype)
    if name is None or ys.device.type != "cpu" or rows_t.dtype != ys.dtype:
        return None
    library = native.library(KERNEL)
    if library is None:
        return None
    function = getattr(library, name)
    function.argtypes = [ctypes.c_void_p] * 3 + [ctypes.c_int64] * 3
    function.restype = None
    return function


def uses_native(rows_t: Tensor, ys: Tensor) -> bool:
    """Whether the op runs the native kernel on such arguments."""
    return _native_function(rows_t, ys) is not None


@torch.library.custom_op("benchopt_bilevel::sigmoid_row_mean", mutates_args=())
def sigmoid_row_mean(rows: Tensor, rows_t: Tensor, ys: Tensor) -> Tensor:
    """1/n Σ_i σ(−ys_q · r_i) r_i for every point ys_q (rows (n, d), rows_t (d, n), ys (Q, d))."""
    function = _native_function(rows_t, ys)
    if function is None:
        return composite(rows, rows_t, ys)
    rows_t, ys = rows_t.contiguous(), ys.contiguous()
    out = ys.new_empty(ys.shape)
    function(rows_t.data_ptr(), ys.data_ptr(), out.data_ptr(), ys.shape[0], ys.shape[1], rows_t.shape[1])
    return out


@sigmoid_row_mean.register_fake
def _(rows: Tensor, rows_t: Tensor, ys: Tensor) -> Tensor:
    return ys.new_empty(ys.shape)


@sigmoid_row_mean.register_vmap
def _(info, in_dims, rows: Tensor, rows_t: Tensor, ys: Tensor):
    """A batch of points is more rows of ys: one call. Batched data (no caller here) runs the
    composite under vmap."""
    rows_dim, rows_t_dim, ys_dim = in_dims
    if rows_dim is not None or rows_t_dim is not None:
        return torch.vmap(composite, in_dims=in_dims)(rows, rows_t, ys), 0
    if ys_dim is None:
        return sigmoid_row_mean(rows, rows_t, ys), None
    batched = ys.movedim(ys_dim, 0)
    out = sigmoid_row_mean(rows, rows_t, batched.reshape(-1, batched.shape[-1]))
    return out.reshape(batched.shape), 0


def _setup_context(ctx, inputs, output) -> None:
    ctx.save_for_backward(*inputs)


def _backward(ctx, grad: Tensor):
    _, pullback = torch.func.vjp(composite, *ctx.saved_tensors)
    return pullback(grad)


sigmoid_row_mean.register_autograd(_backward, setup_context=_setup_context)
