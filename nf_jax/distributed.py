"""One multi-host launch convention for every command line (``experiments/main.py``,
``python -m nf_jax.pareto``).

Run the same command on every host (one process per host), adding::

  --coordinator_address=<host of process 0>:<free port> --num_processes=<N> --process_id=<i>

or, on a cluster that JAX detects by itself (SLURM, Open MPI, Cloud TPU), only
``--distributed``. Either calls :func:`jax.distributed.initialize` before any JAX work; the
devices of all processes then form one mesh (CPU processes talk over Gloo, JAX's default CPU
collectives). Only process 0 writes files, so every process must see the **same workdir on a
shared filesystem** (NFS, a cluster file system): the others read its checkpoints when they
resume. Defining the flags here, once, keeps the two CLIs from drifting apart.
"""

from __future__ import annotations

import re

import jax
from absl import flags, logging

FLAGS = flags.FLAGS


def define_flags() -> None:
  """Defines the multi-host flags (idempotent); a CLI calls it when it starts, never at import."""
  if "coordinator_address" in FLAGS:
    return
  flags.DEFINE_string(
    "coordinator_address",
    None,
    "host:port of process 0 (every process passes the same); with --num_processes and "
    "--process_id, calls jax.distributed.initialize (multi-host; see nf_jax/distributed.py).",
  )
  flags.DEFINE_integer("num_processes", None, "Processes (hosts) in a multi-host run.")
  flags.DEFINE_integer("process_id", None, "This process's index in [0, num_processes).")
  flags.DEFINE_bool(
    "distributed",
    False,
    "Multi-host on a cluster JAX detects by itself (SLURM, Open MPI, Cloud TPU): calls "
    "jax.distributed.initialize() with no arguments.",
  )
  flags.DEFINE_integer(
    "distributed_timeout_s", 300, "Seconds to wait for every process to join the group."
  )


def check_args(
  coordinator_address: str | None,
  num_processes: int | None,
  process_id: int | None,
  auto: bool = False,
  timeout_s: int = 300,
) -> bool:
  """Validates a launch; returns whether it is multi-host (``jax.distributed`` to be called).

  Raises:
    ValueError: naming the flag, when the set is partial or out of range.
  """
  explicit = (coordinator_address, num_processes, process_id)
  if timeout_s <= 0:
    raise ValueError(f"--distributed_timeout_s={timeout_s} must be > 0 (seconds)")
  if all(v is None for v in explicit):
    return auto
  if any(v is None for v in explicit):
    missing = [
      f"--{n}"
      for n, v in zip(("coordinator_address", "num_processes", "process_id"), explicit)
      if v is None
    ]
    raise ValueError(
      f"multi-host needs --coordinator_address, --num_processes and --process_id together; "
      f"missing {', '.join(missing)} (or pass only --distributed on a cluster JAX detects)"
    )
  if not re.fullmatch(r"\[?[\w.:-]+\]?:\d{1,5}", coordinator_address or ""):
    raise ValueError(
      f"--coordinator_address={coordinator_address!r} must be host:port (e.g. 10.0.0.1:1234), "
      "the same on every process"
    )
  if num_processes < 1:  # type: ignore[operator]
    raise ValueError(f"--num_processes={num_processes} must be >= 1")
  if not 0 <= process_id < num_processes:  # type: ignore[operator]
    raise ValueError(f"--process_id={process_id} must be in [0, {num_processes}) (--num_processes)")
  return True


def initialize(
  coordinator_address: str | None = None,
  num_processes: int | None = None,
  process_id: int | None = None,
  auto: bool = False,
  timeout_s: int = 300,
  heartbeat_timeout_s: int = 100,
) -> None:
  """Joins the process group if the arguments ask for one (see :func:`check_args`).

  Must run before any JAX computation (JAX refuses otherwise). Logs this process's place.
  ``heartbeat_timeout_s``: how long the group outlives a member that died (JAX's default).
  """
  if check_args(coordinator_address, num_processes, process_id, auto, timeout_s):
    jax.distributed.initialize(
      coordinator_address=coordinator_address,
      num_processes=num_processes,
      process_id=process_id,
      initialization_timeout=timeout_s,
      heartbeat_timeout_seconds=heartbeat_timeout_s,
    )
  logging.info(
    "devices: %s (process %d of %d)", jax.devices(), jax.process_index(), jax.process_count()
  )


def initialize_from_flags() -> None:
  """:func:`initialize` with the flags of :func:`define_flags` (the CLIs call it first thing in
  ``main``)."""
  initialize(
    FLAGS.coordinator_address,
    FLAGS.num_processes,
    FLAGS.process_id,
    auto=FLAGS.distributed,
    timeout_s=FLAGS.distributed_timeout_s,
  )


def is_writer() -> bool:
  """Whether this process writes the shared workdir (process 0 of the group)."""
  return jax.process_index() == 0
