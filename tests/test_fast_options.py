"""The Inductor settings of fast builds (benchopt_bilevel/fast_options.py)."""
from __future__ import annotations

import pytest

from benchopt_bilevel import fast_options

cpp = pytest.importorskip("torch._inductor.codegen.cpp")


def test_outer_loop_fusion_is_off_during_a_build_and_restored_after():
    original = cpp.CppScheduling._get_outer_loop_fusion_depth
    with fast_options.without_outer_loop_fusion():
        assert cpp.CppScheduling._get_outer_loop_fusion_depth(None, object(), object()) == 0
    assert cpp.CppScheduling._get_outer_loop_fusion_depth is original
    with pytest.raises(RuntimeError), fast_options.without_outer_loop_fusion():
        raise RuntimeError("a failed build")
    assert cpp.CppScheduling._get_outer_loop_fusion_depth is original


def test_a_torch_without_the_method_is_left_as_it_is(monkeypatch):
    monkeypatch.delattr(cpp.CppScheduling, "_get_outer_loop_fusion_depth")
    with fast_options.without_outer_loop_fusion():
        assert not hasattr(cpp.CppScheduling, "_get_outer_loop_fusion_depth")
    assert not hasattr(cpp.CppScheduling, "_get_outer_loop_fusion_depth")
