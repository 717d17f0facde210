"""Outer optimizers: SGD and Adam as pure transforms over the solver's flat state."""
from __future__ import annotations

import pytest
import torch

from benchopt_bilevel.optim import adam, outer_optimizer, sgd


def _gradient(x):
    """∇ of ½ Σ c_i x_i² with very different curvatures c."""
    return torch.tensor([100.0, 1.0, 0.01], dtype=x.dtype) * x


def test_sgd_steps_along_the_direction_with_no_state():
    optimizer = sgd(0.1)
    x = torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64)
    assert optimizer.init(x) == {}
    update, state = optimizer.update(_gradient(x), {"x": x})
    torch.testing.assert_close(update, 0.1 * _gradient(x), rtol=0, atol=0)
    assert state == {}


def test_adam_matches_torch_adam():
    x0 = torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64)
    optimizer = adam(0.05)
    x, state = x0.clone(), optimizer.init(x0)
    reference = x0.clone().requires_grad_(True)
    torch_adam = torch.optim.Adam([reference], lr=0.05)
    for _ in range(20):
        update, opt_state = optimizer.update(_gradient(x), state)
        x, state = x - update, {**state, **opt_state}
        torch_adam.zero_grad()
        reference.grad = _gradient(reference.detach())
        torch_adam.step()
    assert float(state["t"]) == 20
    torch.testing.assert_close(x, reference.detach(), rtol=1e-10, atol=1e-12)
    assert float(torch.linalg.vector_norm(x - x0)) > 0.1  # it moved


def test_adam_first_step_is_sign_like_whatever_the_scale():
    # Bias correction makes the first step lr·d/(|d| + ε): curvature-free, unlike SGD's.
    x = torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64)
    optimizer = adam(0.1)
    update, _ = optimizer.update(_gradient(x), optimizer.init(x))
    torch.testing.assert_close(update, 0.1 * torch.sign(_gradient(x)), rtol=1e-5, atol=0)


def test_outer_optimizer_by_name():
    x = torch.ones(2)
    assert set(outer_optimizer("adam", 0.1).init(x)) == {"m", "s", "t"}
    assert outer_optimizer("sgd", 0.1).init(x) == {}
    with pytest.raises(ValueError, match="unknown outer optimizer"):
        outer_optimizer("rmsprop", 0.1)
