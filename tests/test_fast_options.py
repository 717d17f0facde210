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


wrapper = pytest.importorskip("torch._inductor.codegen.cpp_wrapper_cpu")


def test_unused_loop_inputs_get_no_handle_during_a_build_and_the_wrapper_is_restored():
    original = wrapper.CppWrapperCpu.codegen_subgraph_prefix
    with fast_options.without_unused_subgraph_inputs():
        assert wrapper.CppWrapperCpu.codegen_subgraph_prefix is not original
    assert wrapper.CppWrapperCpu.codegen_subgraph_prefix is original
    with pytest.raises(RuntimeError), fast_options.without_unused_subgraph_inputs():
        raise RuntimeError("a failed build")
    assert wrapper.CppWrapperCpu.codegen_subgraph_prefix is original


def test_only_read_inputs_are_handed_to_the_original_prefix():
    import torch

    class Lowering:  # what the prefix reads of a subgraph's GraphLowering
        def __init__(self, module):
            self.module = module
            self.graph_inputs = {f"cond_{n.target}": object() for n in module.graph.nodes if n.op == "placeholder"}

    class Subgraph:
        def __init__(self, module):
            self.graph = Lowering(module)

    def cond(i, count, x, data):  # reads the counter and the count only
        return i < count

    subgraph = Subgraph(torch.fx.symbolic_trace(cond))
    handed = []
    original = wrapper.CppWrapperCpu.codegen_subgraph_prefix
    try:
        wrapper.CppWrapperCpu.codegen_subgraph_prefix = (
            lambda self, sub, outer_inputs, outer_outputs: handed.append((list(sub.graph.graph_inputs), outer_inputs)))
        with fast_options.without_unused_subgraph_inputs():
            wrapper.CppWrapperCpu.codegen_subgraph_prefix(None, subgraph, ["a", "b", "c", "d"], ["out"])
    finally:
        wrapper.CppWrapperCpu.codegen_subgraph_prefix = original
    assert handed == [(["cond_i", "cond_count"], ["a", "b"])]
    assert list(subgraph.graph.graph_inputs) == ["cond_i", "cond_count", "cond_x", "cond_data"]  # restored


value_ranges = pytest.importorskip("torch.utils._sympy.value_ranges")
dtype_propagation = pytest.importorskip("torch._inductor.dtype_propagation")


def test_an_equal_range_is_not_intersected_again_and_others_still_are():
    ranges = value_ranges.ValueRanges
    original = ranges.tighten
    calls = []
    ranges.tighten = lambda self, other: calls.append(other) or original(self, other)
    try:
        with fast_options.without_repeated_codegen_work():
            a = ranges(0, 10)
            assert a.tighten(ranges(0, 10)) is a and calls == []
            assert a.tighten(ranges(5, 20)) == ranges(5, 10) and len(calls) == 1
    finally:
        ranges.tighten = original


def test_the_dtype_rules_are_registered_once_then_again_when_their_table_grows(monkeypatch):
    pytest.importorskip("torch._inductor.lowering")  # registers the rules, as a build does first
    handler = dtype_propagation.DtypePropagationOpsHandler
    original = handler.__init__
    runs = []
    monkeypatch.setattr(handler, "__init__", lambda self: runs.append(1) or original(self))
    rules = dtype_propagation.torch._inductor.utils.op_dtype_propagation_rules
    with fast_options.without_repeated_codegen_work():
        handler(), handler()
        before = len(runs)
        monkeypatch.setitem(rules, "an_op_registered_later", next(iter(rules.values())))
        handler()
    assert before <= 1 and len(runs) == before + 1
    assert handler.__init__ is not original  # the test's own patch, restored by monkeypatch after
    with pytest.raises(RuntimeError), fast_options.without_repeated_codegen_work():
        raise RuntimeError("a failed build")
    assert value_ranges.ValueRanges.__dict__["tighten"].__name__ == "tighten"


def test_a_cpu_bool_item_reads_memory_and_other_items_are_left_to_torch():
    import torch

    class Writer:  # what codegen_tensor_item writes to
        def __init__(self, device):
            self.device, self.lines = device, []

        def writeline(self, line):
            self.lines.append(line)

    original = wrapper.CppWrapperCpu.codegen_tensor_item
    cpu, gpu, other = Writer("cpu"), Writer("cuda"), Writer("cpu")
    with fast_options.with_conditions_read_from_memory():
        wrapper.CppWrapperCpu.codegen_tensor_item(cpu, torch.bool, "cond", "cond_scalar")
        wrapper.CppWrapperCpu.codegen_tensor_item(gpu, torch.bool, "cond", "cond_scalar")
        wrapper.CppWrapperCpu.codegen_tensor_item(other, torch.float32, "t", "t_scalar")
    assert wrapper.CppWrapperCpu.codegen_tensor_item is original
    assert any("aoti_torch_get_data_ptr(cond, &cond_scalar_data)" in line for line in cpu.lines)
    assert cpu.lines[-1] == "bool cond_scalar = *static_cast<const bool*>(cond_scalar_data);"
    assert not any("item" in line for line in cpu.lines)
    assert any("aoti_torch_item_bool(cond, &cond_scalar)" in line for line in gpu.lines)
    assert any("aoti_torch_item_float32(t, &t_scalar)" in line for line in other.lines)


@pytest.mark.parametrize("borrow_carries", [True, False])
def test_read_inputs_borrow_the_outer_handle_unless_an_expression_or_returned(monkeypatch, borrow_carries):
    import torch

    class Lowering:
        def __init__(self, module, prefix):
            self.module = module
            self.graph_inputs = {f"{prefix}_{n.target}": object() for n in module.graph.nodes if n.op == "placeholder"}
            self.graph_outputs = []

    class Subgraph:
        def __init__(self, module, prefix):
            self.graph = Lowering(module, prefix)

    class Wrapper:
        def __init__(self):
            self.lines = []

        def writeline(self, line):
            self.lines.append(line)

    class Buffer:
        def __init__(self, name):
            self.name = name

        def get_name(self):
            return self.name

    def body(i, y, data):  # a carry i, a carry y, a closed-over data
        return i + 1, y * data

    monkeypatch.setattr(fast_options, "_is_tensor", lambda value: True)
    handed, freed = [], []
    monkeypatch.setattr(wrapper.CppWrapperCpu, "codegen_subgraph_prefix",
                        lambda self, sub, outer_inputs, outer_outputs: handed.append(
                            (list(sub.graph.graph_inputs), outer_inputs)))
    monkeypatch.setattr(wrapper.CppWrapperCpu, "make_buffer_free",
                        lambda self, buffer: freed.append(buffer.get_name()) or f"{buffer.get_name()}.reset();")
    out = Wrapper()
    subgraph = Subgraph(torch.fx.symbolic_trace(body), "body")
    with fast_options.without_unused_subgraph_inputs(borrow_carries=borrow_carries):
        # the carries' outer handles are replaced after the body (borrowed, or owned when asked);
        # data only read: borrowed
        wrapper.CppWrapperCpu.codegen_subgraph_prefix(out, subgraph, ["i0", "y0", "data0"], ["i0", "y0"])
        # an outer input that is an expression, not a variable, is never borrowed
        wrapper.CppWrapperCpu.codegen_subgraph_prefix(
            out, Subgraph(torch.fx.symbolic_trace(body), "other"), ["i0", "y0", "view(data0)"], ["i0", "y0"])
        # nor one the subgraph returns (its outer output takes an owning handle from it)
        returning = Subgraph(torch.fx.symbolic_trace(body), "ret")
        returning.graph.graph_outputs = [Buffer("ret_data")]
        wrapper.CppWrapperCpu.codegen_subgraph_prefix(out, returning, ["i0", "y0", "data0"], ["out0"])
        assert wrapper.CppWrapperCpu.make_buffer_free(out, Buffer("body_data")) == ""
        assert wrapper.CppWrapperCpu.make_buffer_free(out, Buffer("body_y")) == (
            "" if borrow_carries else "body_y.reset();")
    body_carries = ["ConstantHandle body_i(i0);", "ConstantHandle body_y(y0);"]
    other_carries = ["ConstantHandle other_i(i0);", "ConstantHandle other_y(y0);"]
    assert out.lines == ((body_carries if borrow_carries else []) + ["ConstantHandle body_data(data0);"]
                         + (other_carries if borrow_carries else [])
                         + ["ConstantHandle ret_i(i0);", "ConstantHandle ret_y(y0);"])
    assert handed == [([] if borrow_carries else ["body_i", "body_y"], [] if borrow_carries else ["i0", "y0"]),
                      (["other_data"] if borrow_carries else ["other_i", "other_y", "other_data"],
                       ["view(data0)"] if borrow_carries else ["i0", "y0", "view(data0)"]),
                      (["ret_data"], ["data0"])]
    assert freed == ([] if borrow_carries else ["body_y"])


def test_a_loop_condition_i_less_than_n_on_int64_scalars_is_recognised_and_nothing_else():
    import torch
    from torch.fx.experimental.proxy_tensor import make_fx

    class Lowering:
        def __init__(self, module):
            self.module = module

    class Subgraph:
        def __init__(self, fn, *args):
            self.graph = Lowering(make_fx(fn, tracing_mode="fake")(*args))

    i, n, x = torch.tensor(0), torch.tensor(5), torch.zeros(3)
    assert fast_options._less_than_operands(Subgraph(lambda i, x, n: i < n, i, x, n)) == (0, 2)
    assert fast_options._less_than_operands(Subgraph(lambda i, x, n: n < i, i, x, n)) == (2, 0)
    assert fast_options._less_than_operands(Subgraph(lambda i, x, n: i <= n, i, x, n)) is None
    assert fast_options._less_than_operands(Subgraph(lambda i, x, n: (i + 1) < n, i, x, n)) is None
    assert fast_options._less_than_operands(Subgraph(lambda a, b: a < b, x, x)) is None  # not 0-dim
    half = torch.tensor(0.5)
    assert fast_options._less_than_operands(Subgraph(lambda a, b: a < b, half, half)) is None  # not int64


def test_a_patch_applies_only_to_a_class_that_defines_every_method_it_replaces():
    class Base:
        def inherited(self):
            return "base"

    class Owner(Base):
        def own(self):
            return "own"

    assert fast_options._own_methods(Owner, "own") == {"own": Owner.__dict__["own"]}
    assert fast_options._own_methods(Owner, "own", "inherited") is None  # not Owner's to patch
    assert fast_options._own_methods(None, "own") is None  # a torch without the class
    assert fast_options._private_class("torch._inductor.no_such_module", "Anything") is None
    with pytest.raises(RuntimeError), fast_options._replaced(Owner, {"own": lambda self: "patched"}):
        assert Owner().own() == "patched"
        raise RuntimeError("a failed build")
    assert Owner().own() == "own"


def test_a_loops_closed_over_views_are_made_once_before_the_loop(monkeypatch):
    class Node:
        def __init__(self, reference):
            self.reference = reference

        def codegen_reference(self, writer=None):
            return self.reference

    class WhileLoop:
        additional_inputs = [Node("buf1"), Node("wrap_with_raii_handle_if_needed(reinterpret_tensor_wrapper(buf2, 0))"),
                             Node("s0 + 1")]

        def get_name(self):
            return "buf9"

    class Wrapper:
        def __init__(self):
            self.lines = []

        def writeline(self, line):
            self.lines.append(line)

    seen = []
    monkeypatch.setattr(wrapper.CppWrapperCpu, "codegen_while_loop", lambda self, loop, stack_output=False: seen.append(
        [node.codegen_reference() for node in loop.additional_inputs]))
    out, loop = Wrapper(), WhileLoop()
    inputs = loop.additional_inputs
    with fast_options.with_loop_invariants_hoisted():
        wrapper.CppWrapperCpu.codegen_while_loop(out, loop)
    assert out.lines[0].startswith("auto buf9_invariant1 = wrap_with_raii_handle_if_needed(reinterpret_tensor_wrapper(buf2, 0));")
    assert len(out.lines) == 1  # a variable and an integer expression are left as they are
    assert seen == [["buf1", "buf9_invariant1", "s0 + 1"]]
    assert loop.additional_inputs is inputs  # the loop's own inputs are put back after its code
