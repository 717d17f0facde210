"""The speed benchmarks run under the allocator the command line runs under (`allocator.py`:
tcmalloc where found, `BENCHOPT_BILEVEL_MALLOC` to choose): pytest is started again under it
before any benchmark imports torch, so their figures are those of `benchopt-bilevel run`."""
from benchopt_bilevel import allocator


def pytest_configure(config) -> None:
    allocator.reexecute_under_preferred()


def pytest_report_header(config) -> str:
    return f"allocator: {allocator.active()} ({allocator.VARIABLE}={allocator.requested()})"
