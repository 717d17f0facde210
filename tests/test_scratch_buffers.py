"""Kernel-only buffers of a built library on the stack (benchopt_bilevel/scratch_buffers.py): a
rewrite of the C++ wrapper's text, checked here on wrapper lines written as AOTInductor writes
them (torch 2.13); tests/test_fast.py checks a real build."""
from __future__ import annotations

from benchopt_bilevel.scratch_buffers import (MAX_BYTES, MAX_TOTAL_BYTES, SCRATCH_TYPE, scratch_count,
                                              stack_scratch_buffers)

PRELUDE = [
    "using namespace torch::aot_inductor;",
    "static constexpr int64_t int_array_0[] = {64L, };",
    "static constexpr int64_t int_array_1[] = {1L, };",
    "static constexpr int64_t *int_array_2=nullptr;",
    f"static constexpr int64_t int_array_3[] = {{{MAX_BYTES}L, }};",
    f"static constexpr int64_t int_array_4[] = {{{MAX_BYTES // 4}L, }};",
]


def allocation(name: str, sizes: str = "int_array_0", strides: str = "int_array_1", dtype: str = "float32",
               device: str = "cpu", rank: int = 1) -> list[str]:
    return [f"    AtenTensorHandle {name}_handle;",
            f"    AOTI_TORCH_ERROR_CODE_CHECK(aoti_torch_empty_strided({rank}, {sizes}, {strides}, cached_torch_dtype_"
            f"{dtype}, cached_torch_device_type_{device}, this->device_idx_, &{name}_handle));",
            f"    RAIIAtenTensorHandle {name}({name}_handle);"]


def rewrite(lines: list[str]) -> list[str]:
    code = "\n".join(PRELUDE + lines)
    out = stack_scratch_buffers(code).split("\n")
    assert len(out) == len(code.split("\n"))  # in place: the wrapper's line map still holds
    return out[len(PRELUDE):]


def on_stack(lines: list[str], name: str) -> bool:
    return f"    ScratchBuffer {name}{{{name}_storage}};" in lines


def test_a_buffer_only_kernels_use_goes_on_the_stack_with_its_bytes():
    out = rewrite(allocation("buf0") + allocation("buf1", sizes="int_array_2", strides="int_array_2", dtype="int64",
                                                  rank=0)
                  + ["    cpp_fused_0((float*)(buf0.data_ptr()), (int64_t*)(buf1.data_ptr()));",
                     "    buf0.reset();", "    buf1.reset();"])
    assert out[0] == "    alignas(64) char buf0_storage[256];" and on_stack(out, "buf0")
    assert out[3] == "    alignas(64) char buf1_storage[8];" and on_stack(out, "buf1")  # a 0-dim int64
    assert not any("empty_strided" in line for line in out)
    assert out[-3].startswith("    cpp_fused_0((float*)(buf0.data_ptr())")  # the kernel call is unchanged


def test_the_buffer_type_is_declared_once_after_the_namespace_line():
    code = "\n".join(PRELUDE + allocation("buf0") + ["    k((float*)(buf0.data_ptr()));"])
    out = stack_scratch_buffers(code).split("\n")
    assert out[0] == f"using namespace torch::aot_inductor; {SCRATCH_TYPE}"
    assert scratch_count("\n".join(out)) == 1


def test_a_buffer_that_leaves_the_kernels_keeps_its_tensor():
    cases = {
        "a loop carry moved out": ["    outer_buf3.reset();", "    outer_buf3 = std::move(buf0);"],
        "an extern call": ["    AOTI_TORCH_ERROR_CODE_CHECK(aoti_torch_cpu_mm_out(buf0, a, b));"],
        "a view": ["    auto buf9 = wrap_with_raii_handle_if_needed(reinterpret_tensor_wrapper(buf0, 1, s, t, 0L));"],
        "a borrowed subgraph input": ["    ConstantHandle body_arg0_1(buf0);"],
        "an output": ["    output_handles[0] = buf0.release();"],
    }
    for what, uses in cases.items():
        out = rewrite(allocation("buf0") + ["    k((float*)(buf0.data_ptr()));"] + uses)
        assert not on_stack(out, "buf0"), what
        assert any("aoti_torch_empty_strided" in line for line in out), what


def test_a_reused_buffer_goes_on_the_stack_only_if_its_new_name_qualifies_too():
    kept = rewrite(allocation("buf0") + ["    k((float*)(buf0.data_ptr()));",
                                         "    auto buf4 = std::move(buf0);  // reuse",
                                         "    k((float*)(buf4.data_ptr()));", "    buf4.reset();"])
    assert on_stack(kept, "buf0")
    moved_out = rewrite(allocation("buf0") + ["    k((float*)(buf0.data_ptr()));",
                                              "    auto buf4 = std::move(buf0);  // reuse",
                                              "    outer_buf1 = std::move(buf4);"])
    assert not on_stack(moved_out, "buf0")


def test_other_devices_dtypes_sizes_and_names_met_twice_are_left_alone():
    cases = {
        "a GPU buffer": allocation("buf0", device="cuda"),
        "an unknown dtype": allocation("buf0", dtype="complex64"),
        "over the stack limit": allocation("buf0", sizes="int_array_3"),
        "sizes not known": allocation("buf0", sizes="int_array_7"),
        "allocated twice": allocation("buf0") + allocation("buf0"),
    }
    for what, lines in cases.items():
        out = rewrite(lines + ["    k((float*)(buf0.data_ptr()));"])
        assert not on_stack(out, "buf0"), what


def test_a_name_is_matched_whole():
    # buf1's uses are data pointers only; W_buf1 and buf10 are other buffers, moved out
    out = rewrite(allocation("buf1") + ["    k((float*)(buf1.data_ptr()), (float*)(W_buf1.data_ptr()));",
                                        "    outer = std::move(W_buf1);", "    outer2 = std::move(buf10);"])
    assert on_stack(out, "buf1")


def test_code_without_the_namespace_line_is_returned_as_it_is():
    code = "\n".join(allocation("buf0") + ["    k((float*)(buf0.data_ptr()));"])
    assert stack_scratch_buffers(code) == code


def test_the_stack_buffers_together_stay_under_their_total():
    count = MAX_TOTAL_BYTES // MAX_BYTES + 2  # float32 buffers of MAX_BYTES each, past the total
    lines = []
    for k in range(count):
        lines += allocation(f"buf{k}", sizes="int_array_4") + [f"    k((float*)(buf{k}.data_ptr()));"]
    out = rewrite(lines)
    kept = [k for k in range(count) if on_stack(out, f"buf{k}")]
    assert kept == list(range(MAX_TOTAL_BYTES // MAX_BYTES))  # the first ones, in the code's order
