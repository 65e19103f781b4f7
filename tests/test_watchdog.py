"""The stall watchdog re-executes a wedged process, which then resumes; beats keep it alive."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
  """
  import os, sys, time
  from nf_jax import watchdog

  restarts = int(os.environ.get(watchdog.RESTARTS_ENV, "0"))
  watchdog.start(first_beat_within_s=0.5, max_restarts=int(sys.argv[1]), poll_s=0.05)
  for _ in range(20):  # 1 s of healthy work: each beat moves the deadline
    watchdog.beat(0.5, "healthy")
    time.sleep(0.05)
  if restarts < int(sys.argv[2]):
    watchdog.beat(0.3, "wedged step")
    time.sleep(60)  # stands in for a deadlocked XLA call
  if len(sys.argv) > 3:  # a slow but busy step: 0.6 s of CPU against a 0.3 s promise
    watchdog.beat(0.3, "slow step")
    t = time.process_time()
    while time.process_time() - t < 0.6:
      pass
  print(f"finished after {restarts} restarts", flush=True)
  """
)


def run(max_restarts: int, wedged_runs: int, *extra: str) -> subprocess.CompletedProcess:
  env = {k: v for k, v in os.environ.items() if k != "NF_WATCHDOG_RESTARTS"}
  return subprocess.run(
    [sys.executable, "-c", SCRIPT, str(max_restarts), str(wedged_runs), *extra],
    capture_output=True,
    text=True,
    timeout=50,
    env=env,
  )


def test_wedged_process_is_re_executed_and_finishes():
  done = run(max_restarts=5, wedged_runs=2)
  assert done.returncode == 0, done.stderr[-2000:]
  assert "finished after 2 restarts" in done.stdout
  assert done.stderr.count("re-executing") == 2
  assert "wedged step" in done.stderr  # the log says what stalled
  assert "Current thread" in done.stderr or "Thread 0x" in done.stderr  # stacks were dumped


def test_gives_up_after_max_restarts():
  done = run(max_restarts=1, wedged_runs=99)
  assert done.returncode == 3
  assert "giving up" in done.stderr
  assert "finished" not in done.stdout


def test_beats_keep_a_healthy_process_alive():
  done = run(max_restarts=5, wedged_runs=0)
  assert done.returncode == 0, done.stderr[-2000:]
  assert "finished after 0 restarts" in done.stdout
  assert "re-executing" not in done.stderr


def test_a_slow_busy_step_is_extended_not_restarted():
  # Starved by other jobs or compiling longer than planned, the process still burns CPU; only
  # a parked process (0% CPU, the XLA:CPU wedge) is re-executed.
  done = run(5, 0, "slow")
  assert done.returncode == 0, done.stderr[-2000:]
  assert "finished after 0 restarts" in done.stdout
  assert "re-executing" not in done.stderr
  assert "slow, not wedged" in done.stderr and "slow step" in done.stderr
