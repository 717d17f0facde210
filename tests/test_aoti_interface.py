"""AOTInductor's runtime interface compiled once (benchopt_bilevel/aoti_interface.py): the split
of a wrapper's text, checked on text laid out as AOTInductor writes it (torch 2.13), and the
object kept across builds; tests/test_fast.py checks a real build."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from benchopt_bilevel.aoti_interface import (INTERFACE_END, MODEL_BASE, compile_object, interface_object,
                                             object_path, split_interface)

INCLUDES = ["", "#include <torch/csrc/inductor/aoti_include/cpu.h>", "// Definition of AOTI runtime interface functions",
            "", "#include <torch/csrc/inductor/aoti_runtime/interface.h>", "#include <vector>", ""]
INTERFACE = ["static thread_local std::string g_aoti_last_error;", 'extern "C" {',
             "AOTIRuntimeError AOTInductorModelContainerRun(AOTInductorModelContainerHandle h) {",
             "  CONVERT_EXCEPTION_TO_ERROR_CODE({ run(h); })", "}", INTERFACE_END]
GRAPH = ['extern "C"  void  cpp_fused_add_0(float* out_ptr0);', "namespace torch::aot_inductor {",
         "AOTInductorModel::AOTInductorModel(std::shared_ptr<ConstantMap> constants_map)",
         "    : AOTInductorModelBase(8, 6, 2, device_str) {", "}",
         "void AOTInductorModel::run_impl(AtenTensorHandle* input_handles) {", "}", "}  // namespace"]


def wrapper(graph: list[str] = GRAPH) -> str:
    return "\n".join(INCLUDES + INTERFACE + graph) + "\n"


def test_the_interface_and_the_graph_part_split_at_the_end_of_the_extern_c_block():
    interface, graph = split_interface(wrapper())
    # The model's base is compiled with the interface, once; the graph's part only declares it.
    assert interface == "\n".join(INCLUDES + INTERFACE + [f"template class {MODEL_BASE};"]) + "\n"
    assert graph == "\n".join(INCLUDES + [f"extern template class {MODEL_BASE};"] + GRAPH) + "\n"


def test_a_model_without_the_base_initializer_splits_without_the_instantiation():
    other = [line.replace(": AOTInductorModelBase(", ": SomeOtherBase(") for line in GRAPH]
    interface, graph = split_interface(wrapper(other))
    assert interface == "\n".join(INCLUDES + INTERFACE) + "\n" and graph == "\n".join(INCLUDES + other) + "\n"


def test_a_wrapper_laid_out_otherwise_stays_whole():
    assert split_interface("\n".join(INCLUDES + GRAPH)) is None  # no end of an interface
    no_run = wrapper().replace("AOTInductorModelContainerRun(", "AOTInductorModelContainerGo(")
    assert split_interface(no_run) is None  # what ends there is not the runtime interface
    uses_the_interface = GRAPH[:-1] + ["  AOTINoGradGuard guard;", GRAPH[-1]]
    assert split_interface(wrapper(uses_the_interface)) is None  # the graph part would not compile alone


def test_the_object_is_compiled_once_per_source_and_command(tmp_path: Path):
    compiled = []

    def compile_to(source: Path) -> str:
        time.sleep(0.2)  # long enough for the other thread to arrive while this one compiles
        compiled.append(source.read_text())
        out = source.with_suffix(".o")
        out.write_bytes(b"object")
        return str(out)

    threads = [threading.Thread(target=interface_object, args=("int f();", "g++ -O1", tmp_path, compile_to))
               for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    target = object_path("int f();", "g++ -O1", tmp_path)
    assert compiled == ["int f();"] and target.read_bytes() == b"object"
    assert interface_object("int f();", "g++ -O1", tmp_path, compile_to) == target and len(compiled) == 1
    assert object_path("int f();", "g++ -O2", tmp_path) != target != object_path("int g();", "g++ -O1", tmp_path)
    assert not [p for p in tmp_path.iterdir() if p.is_dir()]  # the scratch directory is gone


def test_a_failed_compile_raises_with_the_compilers_last_lines(tmp_path: Path):
    with pytest.raises(RuntimeError, match=r"interface.o failed:\nfirst\nno such header"):
        compile_object("sh -c 'echo first; echo no such header; exit 3'", str(tmp_path / "interface.o"))
    assert compile_object("sh -c 'echo ok'", str(tmp_path / "x.o")) == str(tmp_path / "x.o")
