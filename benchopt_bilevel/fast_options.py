"""Inductor options of fast builds (`fast.py`): what AOTInductor is told when it builds a
library. One place, so that a change here is part of the build's identity (the cache key hashes
this file with the rest of the engine's code)."""
from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import importlib
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from . import aoti_interface
from .scratch_buffers import stack_scratch_buffers

# Passed as `inductor_configs` to `aoti_compile_and_package`.
INDUCTOR_OPTIONS: dict[str, Any] = {
    # Single-threaded kernels whatever torch.get_num_threads() is when the library is built
    # (Inductor reads it at code generation, default cpp.threads = -1, and wraps loops with
    # enough work in OpenMP regions). A fast step is microseconds of arithmetic: SOBA on ijcnn1
    # built by a 2-thread process ran 1.2x slower on one thread and 1.7x slower on two than this
    # build (OpenMP fork/join per step; best of 128-step calls, speed/profile_fast_step.py
    # --compare, --threads 2 for the latter; 12x in 1024-step calls on a loaded machine).
    "cpp.threads": 1,
}
# Measured and not kept (speed/profile_fast_step.py --option): "memory_planning": True and
# "aot_inductor.allow_stack_allocation": True (fewer allocations per step) both fail to compile
# the wrapper of a while_loop (torch 2.13: subgraph buffers referenced out of scope, stack
# tensors assigned to heap handles); "realize_opcount_threshold": 20 (to compute a batch draw
# once instead of inlining its hash in every gather) still inlined it, with 24 allocations
# instead of 16; inlined draws cost nothing measurable anyway (the oracles-only variant).


def _private_module(module: str) -> Any | None:
    """One of torch's private modules, or None where this torch version has no such module."""
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


def _private_class(module: str, name: str) -> type | None:
    """One of torch's private classes, or None where this torch version has no such class."""
    return getattr(_private_module(module), name, None)


def _own_methods(owner: type | None, *names: str) -> dict[str, Callable] | None:
    """`owner`'s own definitions of `names` (not inherited ones), or None where one is missing:
    a patch applies only to the torch code it was written against."""
    if owner is None or not all(name in owner.__dict__ for name in names):
        return None
    return {name: owner.__dict__[name] for name in names}


@contextlib.contextmanager
def _replaced(owner: type, methods: dict[str, Callable]) -> Iterator[None]:
    """`owner`'s methods replaced by `methods` for the length of the block, the originals put
    back after it, also after an error (a failed build leaves torch as it found it)."""
    originals = {name: owner.__dict__[name] for name in methods}
    for name, method in methods.items():
        setattr(owner, name, method)
    try:
        yield
    finally:
        for name, method in originals.items():
            setattr(owner, name, method)


@contextlib.contextmanager
def _patched(owner: type | None, names: tuple[str, ...],
             replacements: Callable[[dict[str, Callable]], dict[str, Callable]]) -> Iterator[None]:
    """`owner`'s methods `names` replaced by `replacements(originals)` for the length of the block;
    nothing is changed where `owner` (a private torch class) or one of its methods is missing."""
    originals = _own_methods(owner, *names)
    if originals is None:
        yield
        return
    with _replaced(owner, replacements(originals)):
        yield


_CPP_WRAPPER = ("torch._inductor.codegen.cpp_wrapper_cpu", "CppWrapperCpu")  # AOTInductor's CPU wrapper


@contextlib.contextmanager
def without_outer_loop_fusion() -> Iterator[None]:
    """Inductor's C++ backend without its outer-loop fusion, for the length of a build.

    A fast step is one small fused kernel per loop body; Inductor first tries to fuse its nodes
    under a shared outer loop with local buffers, generating the body's code once for the
    attempt and again when the attempt is dropped (20 of SOBA's 61 s of build in a profile).
    Measured on ijcnn1, with and without, built one after the other in one process and their
    steps interleaved: SOBA build 35.6 s -> 26.7 s, 8.27 us/step both; AmIGO 64.5 s -> 49.9 s,
    107.9 -> 107.1 us/step; F2SA (three inner optimizers) 200 s -> 164 s, 93.7 -> 88.3 us/step;
    iterates identical. To measure it again: `speed/profile_fast_step.py --solver S --save a.pt2`,
    the same with `--outer-loop-fusion --save b.pt2`, then `--compare a.pt2 b.pt2`. torch 2.13 has no option for it,
    so the fusion-depth query of its C++ scheduler answers "none" while the build runs; where a
    torch version lacks that method, nothing is changed.
    """
    with _patched(_private_class("torch._inductor.codegen.cpp", "CppScheduling"), ("_get_outer_loop_fusion_depth",),
                  lambda originals: {"_get_outer_loop_fusion_depth": lambda self, node1, node2: 0}):
        yield


@contextlib.contextmanager
def without_unused_subgraph_inputs(borrow_carries: bool = True) -> Iterator[None]:
    """AOTInductor's C++ wrapper without a new tensor handle for a loop's inputs its condition or
    body never reads, and with a borrowed one for the inputs it only reads, for the length of a
    build.

    torch's `while_loop` hands every carry and every closed-over tensor to both the condition
    and the body, and the wrapper (torch 2.13, `codegen_subgraph_prefix`) creates one owning
    tensor handle per input at every iteration (a new at::Tensor sharing the outer one's
    storage, freed at the iteration's end), used or not. A condition reads two of them (the
    counter and the count), so a loop closing over M tensors paid for M - 2 handles per
    iteration for nothing, in each inner loop too. Now:

    - an input with no reader is skipped (nothing else of the generated code refers to it);
    - an input the subgraph reads and does not return, and whose outer reference is a variable,
      is a `ConstantHandle` on the outer handle (AOTInductor's non-owning handle, the one it
      gives constants): no at::Tensor is created, and its free at last use is dropped
      (`make_buffer_free`). Its data are the same storage either way. The outer handle
      outlives every use: a condition's inputs, a body's closed-over tensors and a branch's
      operands are not written back, and a loop's carries are replaced only after the body's
      last line (`codegen_subgraph_suffix`: reset, then move the body's output in), which is
      why an input the subgraph returns, or a view of it, keeps an owning handle.

    Measured with `speed/profile_fast_step.py --compare` (docs/fast-vs-jax.md); `--unused-inputs`
    builds without this, `--carries-owned` (borrow_carries=False) with owning handles for the
    carries. Where a torch version lacks either method, nothing is changed."""

    def replacements(originals: dict[str, Callable]) -> dict[str, Callable]:
        original, free = originals["codegen_subgraph_prefix"], originals["make_buffer_free"]
        borrowed_names: set[str] = set()  # subgraph input names are unique within a build

        def prefix(self, subgraph, outer_inputs, outer_outputs):
            read = _read_inputs(subgraph)
            if read is None:
                return original(self, subgraph, outer_inputs, outer_outputs)
            all_inputs = dict(subgraph.graph.graph_inputs)
            kept = [(name, outer) for name, outer in zip(all_inputs, outer_inputs) if name in read]
            returned = _output_names(subgraph)
            borrowed = [(name, outer) for name, outer in kept
                        if isinstance(outer, str) and outer.isidentifier() and (borrow_carries or outer not in outer_outputs)
                        and name not in returned and _is_tensor(all_inputs[name])]
            owned = [(name, outer) for name, outer in kept if (name, outer) not in borrowed]
            for name, outer in borrowed:
                self.writeline(f"ConstantHandle {name}({outer});")
            borrowed_names.update(name for name, _ in borrowed)
            try:
                subgraph.graph.graph_inputs = {name: all_inputs[name] for name, _ in owned}
                return original(self, subgraph, [outer for _, outer in owned], outer_outputs)
            finally:
                subgraph.graph.graph_inputs = all_inputs

        def make_buffer_free(self, buffer):
            if buffer.get_name() in borrowed_names:
                return ""  # a borrowed handle: the outer one owns the tensor
            return free(self, buffer)

        return {"codegen_subgraph_prefix": prefix, "make_buffer_free": make_buffer_free}

    with _patched(_private_class(*_CPP_WRAPPER), ("codegen_subgraph_prefix", "make_buffer_free"), replacements):
        yield


@contextlib.contextmanager
def with_loop_invariants_hoisted() -> Iterator[None]:
    """A `while_loop`'s closed-over views made once before the loop, not at every iteration,
    for the length of a build.

    AOTInductor's C++ wrapper (torch 2.13, `codegen_while_loop`) writes a closed-over input that
    is a view of an outer buffer (a 0-dim view of the parameter vector: an inner loop's step
    size) as an expression, `wrap_with_raii_handle_if_needed(reinterpret_tensor_wrapper(...))`,
    evaluated inside the loop: a new TensorImpl per iteration, and a new handle on it for the
    body. The loop does not change what a closed-over input refers to, so the expression is
    evaluated once into a variable declared just before the loop; the body then borrows that
    variable (`without_unused_subgraph_inputs`). Other inputs are left as they are. Where a torch
    version lacks the method, nothing is changed."""

    def replacements(originals: dict[str, Callable]) -> dict[str, Callable]:
        loop_code = originals["codegen_while_loop"]

        def codegen_while_loop(self, while_loop, *args, **kwargs):
            inputs = getattr(while_loop, "additional_inputs", None)
            if not inputs:
                return loop_code(self, while_loop, *args, **kwargs)
            hoisted = []
            for k, node in enumerate(inputs):
                reference = node.codegen_reference()
                if not (isinstance(reference, str) and reference.startswith(_OWNING_VIEW)):
                    hoisted.append(node)
                    continue
                name = f"{while_loop.get_name()}_invariant{k}"
                self.writeline(f"auto {name} = {reference};  // closed over by the loop below, made once")
                hoisted.append(_NamedReference(node, name))
            while_loop.additional_inputs = hoisted
            try:
                return loop_code(self, while_loop, *args, **kwargs)
            finally:
                while_loop.additional_inputs = inputs

        return {"codegen_while_loop": codegen_while_loop}

    with _patched(_private_class(*_CPP_WRAPPER), ("codegen_while_loop",), replacements):
        yield


def _rewritten_wrapper(wrapper: Any, result: Any, rewrite: Callable[[str], str | None]) -> Any:
    """What `CppWrapperCpu.generate` returned (`result`) with its C++ text replaced by
    `rewrite(text)`; unchanged for a GPU wrapper, a result laid out otherwise (another torch
    version) or a rewrite that returns None."""
    if getattr(wrapper, "device", None) != "cpu" or not (isinstance(result, tuple) and result):
        return result
    code = result[0]
    if not (dataclasses.is_dataclass(code) and isinstance(getattr(code, "value", None), str)):
        return result
    text = rewrite(code.value)
    return result if text is None else (dataclasses.replace(code, value=text), *result[1:])


@contextlib.contextmanager
def with_kernel_only_buffers_on_the_stack() -> Iterator[None]:
    """A CPU library's buffers that only its kernels use live on the stack, for the length of a
    build: the generated wrapper's source is rewritten by `scratch_buffers.stack_scratch_buffers`
    (what qualifies, and why, is said there). Measured with `speed/profile_fast_step.py
    --compare` (docs/fast-vs-jax.md); `--heap-buffers` builds without it. A GPU wrapper, or a
    torch version whose `generate` returns something else, is left as it is."""

    def replacements(originals: dict[str, Callable]) -> dict[str, Callable]:
        generate = originals["generate"]

        def generate_with_scratch(self, *args, **kwargs):
            return _rewritten_wrapper(self, generate(self, *args, **kwargs), stack_scratch_buffers)

        return {"generate": generate_with_scratch}

    with _patched(_private_class(*_CPP_WRAPPER), ("generate",), replacements):
        yield


@contextlib.contextmanager
def with_runtime_interface_compiled_once() -> Iterator[None]:
    """A CPU library's wrapper is compiled without AOTInductor's runtime interface, which is
    compiled once per toolchain and linked in (`aoti_interface.py`: what, why, and the split's
    safeguards). Three hooks, for the length of a build: `generate` splits the wrapper's text;
    the wrapper's compile (the builder of a `.wrapper.cpp`) runs on a worker thread, with the
    interface's when its object is not there yet (the wrapper's own compile options), while the
    build goes on to compile its kernels; the link (a builder whose sources hold the
    `.wrapper.o`) waits for them and takes the interface's object too. A wrapper that does not
    split builds whole, as torch builds it. AmIGO on ijcnn1: wrapper 6.3 s then kernels 1.3 s of
    g++ before, 4.7 s for the wrapper's part with the kernels compiled meanwhile now
    (docs/compile.md); `speed/profile_fast_step.py --whole-wrapper` builds without it."""
    builder_class = _private_class("torch._inductor.cpp_builder", "CppBuilder")
    cache_dir = getattr(_private_module("torch._inductor.runtime.cache_dir_utils"), "cache_dir", None)
    if cache_dir is None or _own_methods(builder_class, "__init__", "build") is None:
        yield
        return
    interface: dict[str, Any] = {"source": None, "object": None}
    pending: list[concurrent.futures.Future] = []

    def generate_replacements(originals: dict[str, Callable]) -> dict[str, Callable]:
        generate = originals["generate"]

        def graph_part(text: str) -> str | None:
            parts = aoti_interface.split_interface(text)
            if parts is None:
                return None
            interface["source"] = parts[0]
            return parts[1]

        def generate_split(self, *args, **kwargs):
            return _rewritten_wrapper(self, generate(self, *args, **kwargs), graph_part)

        return {"generate": generate_split}

    def builder_replacements(originals: dict[str, Callable]) -> dict[str, Callable]:
        init, build = originals["__init__"], originals["build"]

        def sources_of(sources: Any) -> list[str]:
            return [sources] if isinstance(sources, str) else list(sources)

        def init_with_interface(self, name, sources, BuildOption, output_dir=""):  # noqa: N803 - torch's name
            if interface["source"] is not None and any(s.endswith(".wrapper.o") for s in sources_of(sources)):
                for job in pending:  # the link: the wrapper's object (and the interface's) first
                    job.result()  # a failed compile raises here
                pending.clear()
                if interface["object"] is None:  # a torch that compiles its wrapper another way
                    raise RuntimeError("the wrapper was split from its runtime interface, but its compile "
                                       "was not seen: build with fast_options' patches off")
                sources = [*sources_of(sources), str(interface["object"])]
            init(self, name, sources, BuildOption, output_dir)
            self._benchopt_compiles_wrapper = (  # the wrapper's compile, split above
                interface["source"] is not None and BuildOption.get_compile_only()
                and any(s.endswith(".wrapper.cpp") for s in sources_of(sources)))

        def build_with_interface(self):
            if not getattr(self, "_benchopt_compiles_wrapper", False):
                return build(self)
            options = self._build_option
            command = builder_class(name="interface", sources="interface.cpp", BuildOption=options).get_command_line()
            directory = Path(cache_dir()) / "benchopt_aoti_interface"

            def compile_to(source_path: Path) -> str:
                builder = builder_class(name=source_path.stem, sources=str(source_path), BuildOption=options,
                                        output_dir=str(source_path.parent))
                return aoti_interface.compile_object(builder.get_command_line(), builder.get_target_file_path())

            # The wrapper and, the first time, the interface compile on worker threads while the
            # build compiles its kernels; the link waits for them (`init_with_interface`).
            interface["object"] = aoti_interface.object_path(interface["source"], command, directory)
            if not interface["object"].exists():
                pending.append(workers.submit(aoti_interface.interface_object, interface["source"], command,
                                              directory, compile_to))
            pending.append(workers.submit(aoti_interface.compile_object, self.get_command_line(),
                                          self.get_target_file_path()))

        return {"__init__": init_with_interface, "build": build_with_interface}

    with (concurrent.futures.ThreadPoolExecutor(max_workers=2) as workers,
          _patched(_private_class(*_CPP_WRAPPER), ("generate",), generate_replacements),
          _patched(builder_class, ("__init__", "build"), builder_replacements)):
        yield


_OWNING_VIEW = "wrap_with_raii_handle_if_needed("  # a view the expression's value owns


class _NamedReference:
    """An IR node whose generated code refers to it by `name` (a variable made before a loop)."""

    def __init__(self, node: Any, name: str):
        self._node, self._name = node, name

    def codegen_reference(self, *args: Any, **kwargs: Any) -> str:
        return self._name

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self._node, attribute)


def _is_tensor(value: Any) -> bool:
    """An input the wrapper passes as a tensor handle (not a symbolic size)."""
    try:
        from torch._inductor import ir  # noqa: PLC0415 - private
    except ImportError:
        return False
    return isinstance(value, ir.TensorBox)


def _output_names(subgraph: Any) -> set[str]:
    """The names of the buffers a subgraph returns or returns a view of."""
    names = set()
    for output in getattr(subgraph.graph, "graph_outputs", None) or ():
        try:
            names.add(output.get_name())
        except (AttributeError, NotImplementedError):
            pass
    return names


def _read_inputs(subgraph: Any) -> set[str] | None:
    """The names of the subgraph's inputs that one of its nodes reads (None: unknown)."""
    module = getattr(subgraph.graph, "module", None)
    graph = getattr(module, "graph", None)
    if graph is None:
        return None
    placeholders = [node for node in graph.nodes if node.op == "placeholder"]
    names = list(subgraph.graph.graph_inputs)  # the placeholders' names, prefixed by the subgraph's
    if len(placeholders) != len(names) or not all(n.endswith(str(p.target)) for p, n in zip(placeholders, names)):
        return None  # not the inputs as the wrapper knows them: change nothing
    return {name for node, name in zip(placeholders, names) if node.users}


@contextlib.contextmanager
def without_repeated_codegen_work() -> Iterator[None]:
    """Two of Inductor's code-generation costs skipped where they recompute what they have, for
    the length of a build; the generated C++ is the same, byte for byte.

    - `ValueRanges.tighten` intersects a CSE variable's value range with the range of the same
      expression met again, building sympy `Max`/`Min` each time: the counter hash of a batch
      draw is inlined into each kernel that gathers rows, and its ~20 integer constants are met
      thousands of times. A range intersected with an equal range is that range: returned as is.
    - `DtypePropagationOpsHandler` is a singleton whose `__init__` re-registers a rule per op
      (hundreds of `setattr`) each time code generation asks for it, once per generated op:
      it now runs again only if the rule tables have grown.

    Measured on ijcnn1 (`speed/profile_fast_step.py --solver S`, one process, docs/compile.md):
    the Python part of a build about 30 % shorter (SABA 20.8 -> 14.1 s, AmIGO 22.4 -> 14.9 s);
    the packages' kernel and wrapper sources identical but for their temporary paths. Where a
    torch version lacks either, nothing is changed for it."""

    def ranges(originals: dict[str, Callable]) -> dict[str, Callable]:
        tighten = originals["tighten"]

        def tighten_unless_equal(self, other):
            return self if other is self or other == self else tighten(self, other)

        return {"tighten": tighten_unless_equal}

    utils = _private_module("torch._inductor.utils")
    common = _private_module("torch._inductor.codegen.common")

    def tables() -> tuple[int, int]:
        return len(utils.op_dtype_propagation_rules), len(common.pointwise_overrides_data)

    def dtype_rules(originals: dict[str, Callable]) -> dict[str, Callable]:
        if not (hasattr(utils, "op_dtype_propagation_rules") and hasattr(common, "pointwise_overrides_data")):
            return {}  # no tables to watch: leave the handler as it is
        init = originals["__init__"]

        def init_once(self) -> None:
            if self.__dict__.get("_fast_tables") != tables():
                init(self)
                self._fast_tables = tables()

        return {"__init__": init_once}

    with (_patched(_private_class("torch.utils._sympy.value_ranges", "ValueRanges"), ("tighten",), ranges),
          _patched(_private_class("torch._inductor.dtype_propagation", "DtypePropagationOpsHandler"), ("__init__",),
                   dtype_rules)):
        yield


@contextlib.contextmanager
def with_conditions_read_from_memory() -> Iterator[None]:
    """A CPU library's loop conditions read from memory, for the length of a build.

    AOTInductor's C++ wrapper (torch 2.13) evaluates a `while_loop`'s condition at every
    iteration by running the condition's subgraph, which allocates a one-element bool and calls
    a kernel writing `i < n` into it, and then reads that bool through `aoti_torch_item_bool`,
    i.e. `at::Tensor::item()` through the dispatcher. Here:

    - a condition that is `i < n` on two 0-dim int64 tensors (`linalg.repeat`'s, the step
      loop's) is one C++ comparison of the two values read from their data pointers: no
      allocation, no kernel call;
    - any other bool `item()` of a CPU wrapper reads the bool's data pointer.

    Measured (`speed/profile_fast_step.py --compare`, one process, ijcnn1): the item read alone
    took AmIGO 43.7 -> 39.8 µs per step and stocBiO 44.9 -> 42.1 (two inner loops of 10
    iterations per step each). A GPU wrapper, or another dtype, is left as it is; where a torch
    version lacks the methods, nothing is changed."""

    def replacements(originals: dict[str, Callable]) -> dict[str, Callable]:
        item, subgraph_code = originals["codegen_tensor_item"], originals["codegen_subgraph"]
        direct: dict[str, str] = {}  # a condition's output handle -> the C++ bool computed instead

        def codegen_subgraph(self, subgraph, outer_inputs, outer_outputs):
            operands = _less_than_operands(subgraph) if getattr(self, "device", None) == "cpu" else None
            if operands is None or len(outer_outputs) != 1:
                return subgraph_code(self, subgraph, outer_inputs, outer_outputs)
            left, right = (outer_inputs[k] for k in operands)
            if not (isinstance(left, str) and left.isidentifier() and isinstance(right, str) and right.isidentifier()):
                return subgraph_code(self, subgraph, outer_inputs, outer_outputs)
            out = outer_outputs[0]
            # The subgraph is still generated (the wrapper's memory planning reads its scheduler,
            # and a later subgraph may call the kernel it defines), then its lines are dropped but
            # its kernel definitions: its kernel stays defined, and is not called here.
            start = len(self.lines)
            subgraph_code(self, subgraph, outer_inputs, outer_outputs)
            self.lines[start:] = [line for line in self.lines[start:] if type(line).__name__ == "KernelDefinitionLine"]
            self.writeline(f"// subgraph: {subgraph.name}, {left} < {right} read from memory")
            for side, handle in (("left", left), ("right", right)):
                self.writeline(f"void* {out}_{side};")
                self.writeline(f"AOTI_TORCH_ERROR_CODE_CHECK(aoti_torch_get_data_ptr({handle}, &{out}_{side}));")
            self.writeline(f"bool {out}_direct = *static_cast<const int64_t*>({out}_left) < "
                           f"*static_cast<const int64_t*>({out}_right);")
            direct[out] = f"{out}_direct"
            return None

        def codegen_tensor_item(self, dtype, tensor, scalar, indented_buffer=None):
            if dtype != torch.bool or getattr(self, "device", None) != "cpu":
                return item(self, dtype, tensor, scalar, indented_buffer)
            writer = indented_buffer or self
            if tensor in direct:
                writer.writeline(f"bool {scalar} = {direct[tensor]};")
                return None
            writer.writeline(f"void* {scalar}_data;")
            writer.writeline(f"AOTI_TORCH_ERROR_CODE_CHECK(aoti_torch_get_data_ptr({tensor}, &{scalar}_data));")
            writer.writeline(f"bool {scalar} = *static_cast<const bool*>({scalar}_data);")
            return None

        return {"codegen_subgraph": codegen_subgraph, "codegen_tensor_item": codegen_tensor_item}

    with _patched(_private_class(*_CPP_WRAPPER), ("codegen_tensor_item", "codegen_subgraph"), replacements):
        yield


def _less_than_operands(subgraph: Any) -> tuple[int, int] | None:
    """(k, l) when the subgraph returns `input_k < input_l` of two 0-dim int64 inputs, else None."""
    module = getattr(subgraph.graph, "module", None)
    graph = getattr(module, "graph", None)
    if graph is None:
        return None
    nodes = list(graph.nodes)
    placeholders = [node for node in nodes if node.op == "placeholder"]
    calls = [node for node in nodes if node.op == "call_function"]
    outputs = [node for node in nodes if node.op == "output"]
    if len(calls) != 1 or len(outputs) != 1 or calls[0].target is not torch.ops.aten.lt.Tensor:
        return None
    returned = outputs[0].args[0]
    returned = returned[0] if isinstance(returned, (tuple, list)) and len(returned) == 1 else returned
    left, right = calls[0].args[:2] if len(calls[0].args) >= 2 else (None, None)
    if returned is not calls[0] or left not in placeholders or right not in placeholders:
        return None
    for operand in (left, right):
        value = operand.meta.get("val")
        if not isinstance(value, torch.Tensor) or value.dim() != 0 or value.dtype != torch.int64:
            return None
        if value.device.type != "cpu":
            return None
    return placeholders.index(left), placeholders.index(right)


@contextlib.contextmanager
def build_patches() -> Iterator[None]:
    """Every change above, for the length of one build (`fast.build_library`). Each is looked up
    when a build starts, so that `speed/profile_fast_step.py` can build without one of them."""
    with contextlib.ExitStack() as stack:
        for patch in (without_outer_loop_fusion, without_unused_subgraph_inputs, without_repeated_codegen_work,
                      with_conditions_read_from_memory, with_loop_invariants_hoisted,
                      with_kernel_only_buffers_on_the_stack, with_runtime_interface_compiled_once):
            stack.enter_context(patch())
        yield
