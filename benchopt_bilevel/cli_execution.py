"""Where and how runs execute, as command-line options shared by every command that runs cells
(`run`, `tune`): the executor, its workers, the time limit per run, the Slurm resources, and
`--force` (rerun runs already complete in the output directory).

`@execution_options` adds the options to a click command and hands them to it as one
`Execution` keyword argument, `execution`.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, fields
from typing import Callable

import click

from .errors import UserError


# Seconds added to the default per-run limit when a run may build a fast-path library: the slowest
# cold build measured on a 2-core CPU (docs/compile.md) with room for a loaded machine.
BUILD_ALLOWANCE = 600.0


@dataclass(frozen=True)
class Execution:
    """The values of the execution options, as given on the command line."""

    jobs: int = 1
    executor: str = "local"
    timeout: float | None = None
    threads: int | None = None
    force: bool = False
    slurm_partition: str | None = None
    slurm_cpus: int = 1
    slurm_mem_gb: float | None = None
    slurm_array_parallelism: int = 256
    slurm_options: tuple[str, ...] = ()

    def make_executor(self, max_time: float, step_path: str = "eager"):
        """The executor these options ask for; a run's time limit defaults to 10 × max_time + 300 s,
        plus BUILD_ALLOWANCE when its steps may be built for the fast path (a cold build of a
        solver with long inner loops takes minutes on a small CPU; a cache hit well under a second)."""
        from .executors import make_executor  # noqa: PLC0415 - workers and submitit on demand

        timeout = self.timeout or 10 * max_time + 300 + (BUILD_ALLOWANCE if step_path != "eager" else 0)
        if self.executor == "local":
            return make_executor("local", jobs=self.jobs, timeout=timeout, threads=self.threads)
        if self.executor == "slurm":
            return make_executor("slurm", timeout=timeout, cpus_per_task=self.threads or self.slurm_cpus,
                                 mem_gb=self.slurm_mem_gb, partition=self.slurm_partition,
                                 array_parallelism=self.slurm_array_parallelism,
                                 additional_parameters=_sbatch_options(self.slurm_options))
        return make_executor("inline")


def _sbatch_options(options: tuple[str, ...]) -> dict[str, str]:
    extra = {}
    for option in options:
        key, sep, value = option.partition("=")
        if not sep or not key.strip():
            raise UserError(f"cannot read --slurm-option {option!r}: expected KEY=VALUE")
        extra[key.strip()] = value.strip()
    return extra


_OPTIONS = (
    click.option("-j", "--jobs", type=click.IntRange(min=1), default=1, show_default=True,
                 help="runs in parallel (local executor: worker processes)."),
    click.option("--executor", type=click.Choice(["local", "slurm", "inline"]), default="local", show_default=True,
                 help="local: a pool of isolated worker processes; slurm: job arrays through submitit; "
                      "inline: in this process, no isolation (debugging)."),
    click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None,
                 help="wall-clock seconds per run before it is killed (default 10 × max-time + 300, "
                      "+ 600 when steps may be built for the fast path)."),
    click.option("--threads", type=click.IntRange(min=1), default=None,
                 help="torch/BLAS threads per worker (default: cores / jobs; slurm: cpus per task)."),
    click.option("--force", is_flag=True, help="rerun runs already complete in the output directory."),
    click.option("--slurm-partition", default=None, help="Slurm partition (default: the cluster's)."),
    click.option("--slurm-cpus", type=click.IntRange(min=1), default=1, show_default=True,
                 help="CPUs per run on Slurm."),
    click.option("--slurm-mem-gb", type=click.FloatRange(min=0, min_open=True), default=None,
                 help="memory per run on Slurm, in GB."),
    click.option("--slurm-array-parallelism", type=click.IntRange(min=1), default=256, show_default=True,
                 help="runs of one array running at once on Slurm."),
    click.option("--slurm-option", "slurm_options", multiple=True, metavar="KEY=VALUE",
                 help="any other sbatch option, e.g. account=abc or qos=short; repeatable."),
)
_NAMES = tuple(field.name for field in fields(Execution))


def execution_options(command: Callable) -> Callable:
    """Add the execution options to a click command; it receives them as `execution=Execution(...)`."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        execution = Execution(**{name: kwargs.pop(name) for name in _NAMES})
        return command(*args, execution=execution, **kwargs)

    for option in reversed(_OPTIONS):
        wrapper = option(wrapper)
    return wrapper
