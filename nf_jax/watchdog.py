"""Restart a long run that stopped making progress, so that it resumes from its checkpoints.

Why: on this project's 2-core CPU machines, XLA:CPU has twice wedged a training sweep for good
(every thread parked on a futex, the main thread inside an eager ``jnp.zeros`` during optimizer
init, 0% CPU), a known class of XLA:CPU thread-pool deadlock (e.g.
https://github.com/PyAutoLabs/PyAutoFit/issues/1528, worked around there by single-threaded
Eigen, which halves matmul throughput on 2 cores). A sweep resumes from its last epoch checkpoint
and skips finished models, so re-executing the same command loses at most one epoch of one group.

Usage: the launcher calls :func:`start`; long loops call :func:`beat` with the time by which
they promise to beat again (short while stepping, long before a compile). Without :func:`start`,
:func:`beat` does nothing.

Multi-host (``jax.process_count() > 1``): re-executing one member of a process group would leave
it waiting to join a group that no longer exists, and the others blocked in a collective. There a
missed deadline dumps the stacks and exits with status 3 instead; JAX's coordination service
then ends the other processes (after its heartbeat timeout, 100 s by default), and rerunning the
group's command on every host resumes from the checkpoints (:mod:`nf_jax.distributed`).
"""

from __future__ import annotations

import faulthandler
import os
import sys
import threading
import time

from absl import logging

RESTARTS_ENV = "NF_WATCHDOG_RESTARTS"
# A missed deadline with at least this share of one core's CPU time spent since the promise is
# a slow process (starved by other jobs, or a compile longer than planned), not the wedge this
# guards against (every thread parked, 0% CPU): the deadline is extended, up to
# MAX_EXTENSIONS times per promise, instead of throwing the work away.
BUSY_CPU_SHARE = 0.05
MAX_EXTENSIONS = 10

_deadline: float | None = None
_within = 0.0
_cpu_at_promise = 0.0
_extensions = 0
_what = ""
_lock = threading.Lock()
_started = False


def beat(within_s: float, what: str = "") -> None:
  """Promises the next beat within ``within_s`` seconds (``what``: the work in flight, logged)."""
  global _deadline, _what, _within, _cpu_at_promise, _extensions
  with _lock:
    _deadline = time.monotonic() + within_s
    _within = within_s
    _cpu_at_promise = time.process_time()
    _extensions = 0
    _what = what


def _extend_if_busy() -> bool:
  """Extends a missed deadline of a process that is using CPU; False if it looks wedged."""
  global _deadline, _cpu_at_promise, _extensions
  cpu = time.process_time() - _cpu_at_promise  # every thread of this process
  if _extensions >= MAX_EXTENSIONS or cpu < BUSY_CPU_SHARE * _within:
    return False
  _extensions += 1
  logging.warning(
    "watchdog: %r is past its %.1f s deadline but used %.1f s of CPU since: slow, not wedged; "
    "extending (%d of at most %d)",
    _what,
    _within,
    cpu,
    _extensions,
    MAX_EXTENSIONS,
  )
  _deadline = time.monotonic() + _within
  _cpu_at_promise = time.process_time()
  return True


def _process_group() -> tuple[int, int]:
  """(this process's index, processes in its group); (0, 1) unless jax.distributed is up."""
  jax = sys.modules.get("jax")  # not imported: no group (and no reason to import it here)
  if jax is None or not jax.distributed.is_initialized():
    return 0, 1
  return jax.process_index(), jax.process_count()


def _restart(max_restarts: int, group: tuple[int, int]) -> None:
  restarts = int(os.environ.get(RESTARTS_ENV, "0"))
  faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
  if group[1] > 1:
    logging.error(
      "watchdog: no progress on %r by its deadline in process %d of a group of %d; exiting "
      "(status 3) instead of re-executing this process alone, which would hang the group. "
      "Rerun the command on every host to resume from the last checkpoint",
      _what,
      group[0],
      group[1],
    )
    sys.stderr.flush()
    os._exit(3)
  if restarts >= max_restarts:
    logging.error("watchdog: stalled again after %d restarts; giving up", restarts)
    sys.stderr.flush()
    os._exit(3)  # the main thread is wedged: only a hard exit ends the process
  logging.error(
    "watchdog: no progress on %r by its deadline; re-executing %s (restart %d of at most %d) "
    "to resume from the last checkpoint",
    _what,
    " ".join(sys.orig_argv),
    restarts + 1,
    max_restarts,
  )
  sys.stdout.flush()
  sys.stderr.flush()
  os.environ[RESTARTS_ENV] = str(restarts + 1)
  os.execv(sys.executable, sys.orig_argv)  # the interpreter's own argv: `-m`, `-c` included


def start(first_beat_within_s: float, max_restarts: int = 5, poll_s: float = 5.0) -> None:
  """Starts the monitor thread; a missed deadline re-executes the process (``sys.orig_argv``),
  or, in a multi-host group, exits it (status 3; see the module docstring). A process that
  used CPU since its promise (:data:`BUSY_CPU_SHARE`) is slow, not wedged: its deadline is
  extended instead, at most :data:`MAX_EXTENSIONS` times per promise.

  Call it after :func:`jax.distributed.initialize` (:mod:`nf_jax.distributed`), so that the
  group is known.

  Args:
    first_beat_within_s: time allowed until the first :func:`beat`.
    max_restarts: restarts (counted across re-executions in ``$NF_WATCHDOG_RESTARTS``) before
      the process exits with status 3 instead.
    poll_s: how often the deadline is checked.
  """
  global _started
  if _started:
    return
  _started = True
  group = _process_group()
  if group[1] > 1:
    logging.info(
      "watchdog: process %d of %d; a stall exits the group (no re-execution)", group[0], group[1]
    )
  beat(first_beat_within_s, "start-up")

  def monitor() -> None:
    while True:
      time.sleep(poll_s)
      with _lock:
        late = _deadline is not None and time.monotonic() > _deadline
        late = late and not _extend_if_busy()
      if late:
        _restart(max_restarts, group)

  threading.Thread(target=monitor, name="nf_watchdog", daemon=True).start()
