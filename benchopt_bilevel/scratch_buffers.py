"""Kernel-only buffers of a built library on the stack: a rewrite of AOTInductor's C++ wrapper.

AOTInductor's CPU wrapper (torch 2.13) allocates every intermediate buffer of a step with
`aoti_torch_empty_strided`: a new at::Tensor, TensorImpl and storage, each time the step or a
loop iteration runs. A buffer that only a generated kernel reads and writes (the batch's margins
between two reductions of one fused kernel, say) needs none of it: its memory is enough. In a
loop body such buffers are most of the allocations (SRBA: 14 of 22 per iteration), and an
allocation costs more than the arithmetic of a batch of 64 rows.

`stack_scratch_buffers(code)` rewrites the wrapper's source so that such a buffer is an array on
the stack of the block that allocated it, wrapped in a `ScratchBuffer` that offers what the
wrapper calls on it: `data_ptr()`, `reset()` (nothing to free) and a move (a buffer reused under
another name). A buffer qualifies when it is allocated once, on the CPU, with sizes and strides
known from `int_array` constants, at most `MAX_BYTES` (and all of them at most
`MAX_TOTAL_BYTES`), and every other mention of its name is `NAME.data_ptr()`, `NAME.reset();` or
`auto OTHER = std::move(NAME);  // reuse` with OTHER qualifying too. Anything else (a loop carry moved out, an extern call's argument, a view, an
output) keeps the tensor. Lines are rewritten in place, never added, so the wrapper's line map
still holds.
"""
from __future__ import annotations

import re

MAX_BYTES = 64 * 1024  # a stack array per buffer; larger ones keep their heap tensor
# All of a wrapper's stack buffers together, whatever their blocks (a compiler may give every
# block's arrays their own place in one frame): well under a thread's stack (8 MiB by default on
# Linux, less for some worker threads). Buffers past it, in the order of the code, stay on the heap.
MAX_TOTAL_BYTES = 512 * 1024

ITEM_BYTES = {"float32": 4, "float64": 8, "int64": 8, "int32": 4, "int16": 2, "int8": 1, "uint8": 1,
              "bool": 1, "float16": 2, "bfloat16": 2}

SCRATCH_TYPE = ("struct ScratchBuffer { void* storage; void* data_ptr() const { return storage; } "
                "void reset() {} };  // a kernel-only buffer on the stack (benchopt_bilevel/scratch_buffers.py)")

_ANCHOR = "using namespace torch::aot_inductor;"
_INT_ARRAY = re.compile(r"static constexpr int64_t (int_array_\d+)\[\] = \{([^}]*)\};")
_NULL_ARRAY = re.compile(r"static constexpr int64_t \*(int_array_\d+)=nullptr;")
_ALLOCATION = re.compile(
    r"^(\s*)AOTI_TORCH_ERROR_CODE_CHECK\(aoti_torch_empty_strided\((\d+), (int_array_\d+), (int_array_\d+), "
    r"cached_torch_dtype_(\w+), cached_torch_device_type_cpu, this->device_idx_, &(\w+)_handle\)\);$")
_REUSE = re.compile(r"^\s*auto (\w+) = std::move\((\w+)\);  // reuse$")


def _int_arrays(lines: list[str]) -> dict[str, tuple[int, ...] | None]:
    """Each `int_array_N` constant's values (None where two declarations disagree)."""
    arrays: dict[str, tuple[int, ...] | None] = {}
    for line in lines:
        found = [(m.group(1), tuple(int(v.strip().rstrip("L")) for v in m.group(2).split(",") if v.strip()))
                 for m in _INT_ARRAY.finditer(line)]
        found += [(m.group(1), ()) for m in _NULL_ARRAY.finditer(line)]
        for name, values in found:
            arrays[name] = values if arrays.get(name, values) == values else None
    return arrays


def _nbytes(sizes: tuple[int, ...], strides: tuple[int, ...], dtype: str) -> int | None:
    """The bytes a strided buffer spans (None: unknown dtype or ranks that disagree)."""
    if dtype not in ITEM_BYTES or len(sizes) != len(strides):
        return None
    if any(size == 0 for size in sizes):
        return ITEM_BYTES[dtype]
    return (1 + sum((size - 1) * stride for size, stride in zip(sizes, strides))) * ITEM_BYTES[dtype]


def _mentions(lines: list[str], name: str) -> list[tuple[int, str]]:
    """(line index, line) of every line that mentions `name` as a whole identifier."""
    pattern = re.compile(rf"\b{re.escape(name)}\b")
    return [(k, line) for k, line in enumerate(lines) if pattern.search(line)]


def _only_kernel_uses(lines: list[str], name: str, allocated_at: set[int], seen: set[str]) -> bool:
    """Whether every mention of `name` outside its allocation is a data pointer, a free or a reuse
    by a name that qualifies too."""
    if name in seen:
        return False
    seen = seen | {name}
    handle = re.compile(rf"\b{re.escape(name)}\b")
    for k, line in _mentions(lines, name):
        if k in allocated_at:
            continue
        rest = line.replace(f"{name}.data_ptr()", "")
        if not handle.search(rest):
            continue  # data pointers only
        if line.strip() == f"{name}.reset();":
            continue
        reuse = _REUSE.match(line)
        if reuse and reuse.group(2) == name and _only_kernel_uses(lines, reuse.group(1), {k}, seen):
            continue
        return False
    return True


def stack_scratch_buffers(code: str) -> str:
    """The wrapper's source with its kernel-only CPU buffers on the stack (module docstring)."""
    lines = code.split("\n")
    anchors = [k for k, line in enumerate(lines) if line.strip() == _ANCHOR]
    if not anchors:
        return code
    arrays = _int_arrays(lines)
    allocations: dict[str, list[int]] = {}
    for k, line in enumerate(lines):
        match = _ALLOCATION.match(line)
        if match:
            allocations.setdefault(match.group(6), []).append(k)
    changed, total = False, 0
    for name, sites in allocations.items():
        if len(sites) != 1:
            continue
        k = sites[0]
        indent, rank, sizes_name, strides_name, dtype, _ = _ALLOCATION.match(lines[k]).groups()
        sizes, strides = arrays.get(sizes_name), arrays.get(strides_name)
        declared, owned = lines[k - 1].strip(), lines[k + 1].strip() if k + 1 < len(lines) else ""
        if (sizes is None or strides is None or len(sizes) != int(rank)
                or declared != f"AtenTensorHandle {name}_handle;"
                or owned != f"RAIIAtenTensorHandle {name}({name}_handle);"):
            continue
        nbytes = _nbytes(sizes, strides, dtype)
        if nbytes is None or nbytes > MAX_BYTES or total + nbytes > MAX_TOTAL_BYTES:
            continue
        handles = {k - 1, k, k + 1}
        if not _only_kernel_uses(lines, name, handles, set()) or len(_mentions(lines, f"{name}_handle")) != 3:
            continue
        total += nbytes
        lines[k - 1] = f"{indent}alignas(64) char {name}_storage[{max(nbytes, 1)}];"
        lines[k] = f"{indent}// {name}: {dtype} {list(sizes)}, read and written by kernels only: on the stack"
        lines[k + 1] = f"{indent}ScratchBuffer {name}{{{name}_storage}};"
        changed = True
    if not changed:
        return code
    lines[anchors[0]] = f"{lines[anchors[0]]} {SCRATCH_TYPE}"
    return "\n".join(lines)


def scratch_count(code: str) -> int:
    """How many buffers a rewritten wrapper keeps on the stack (for reports and tests)."""
    return sum(1 for line in code.split("\n") if line.lstrip().startswith("ScratchBuffer "))

