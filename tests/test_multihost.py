"""Multi-host for real, on one machine: 2 processes joined by ``jax.distributed`` over loopback.

Each process owns one CPU device (Gloo collectives, JAX's CPU default); together they run a
sharded training sweep (``nf_jax.sweep.run``) and a pareto search (``nf_jax.pareto.run``)
into one shared workdir. The reference is one process with 2 forced CPU devices: the same
2-device mesh and so the same per-device programs, which makes bit-for-bit equality the right
check. Process 1 records, with an audit hook, every Python call that would write under the
workdir; there must be none. All waits are bounded.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SCRIPT = textwrap.dedent(
  """
  import json, os, sys, time
  process_id, num_processes, port, workdir = sys.argv[1:5]
  process_id, num_processes = int(process_id), int(num_processes)
  writes = []

  def audit(event, args):  # Python-level writes under the shared workdir
    if event == "open" and isinstance(args[0], str) and args[0].startswith(workdir):
      mode, flags = args[1] or "r", args[2] or 0
      if any(c in mode for c in "wax+") or flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
        writes.append((event, args[0]))
    elif event in ("os.mkdir", "os.rename", "os.replace", "os.remove", "shutil.rmtree"):
      path = str(args[0])
      if path.startswith(workdir) and not (event == "os.mkdir" and os.path.isdir(path)):
        writes.append((event, path))

  sys.addaudithook(audit)
  from nf_jax import distributed
  if num_processes > 1:
    distributed.initialize(f"127.0.0.1:{port}", num_processes, process_id, timeout_s=60)
  import jax
  assert jax.device_count() == 2 and jax.process_count() == num_processes, jax.devices()

  sys.path.insert(0, os.path.join(os.getcwd(), "experiments"))
  from configs import default
  from nf_jax import sweep
  from nf_jax import pareto as PA
  from nf_jax.pareto import problem as PP
  import hashlib
  import numpy as np

  config = default.base_config()
  config.update(dict(max_train_examples=256, max_test_examples=128, pool=4,
                     validation_size=64, n=64, seeds=(0, 1), include_dense=False))
  config.models = [dict(name="butterfly", radix=2, depth=6, skip=True)]
  config.train.update(dict(num_epochs=2, steps_per_epoch=2, batch_size=32,
                           eval_batch_size=128, log_every=1))
  t0 = time.time()
  sweep.run(config, os.path.join(workdir, "sweep"), progress=False)
  t1 = time.time()
  search = PA.SearchConfig(population=12, generations=1, n_partitions=1, inner_partitions=1,
                           features=("log_params",))
  # The simulator is what runs sharded; a hash of the topology stands in for accuracy (as in
  # tests/test_faults.py), which spares each process the accuracy model's set-up.
  def fake_accuracy(specs):
    keys = [PP.topology_key(*s) for s in specs]
    return np.asarray([int(hashlib.sha256(k.encode()).hexdigest()[:8], 16) / 2**33 + 0.5
                       for k in keys])
  PA.run(search, os.path.join(workdir, "pareto"), progress=False,
         accuracy=(fake_accuracy, None))
  print(f"TIMES sweep {t1 - t0:.1f} s, pareto {time.time() - t1:.1f} s", flush=True)
  print("WRITES " + json.dumps(writes), flush=True)
  """
)


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _launch(num_processes: int, workdir: str, cache: str) -> list[str]:
  env = {
    **os.environ,
    "JAX_COMPILATION_CACHE_DIR": cache,  # the reference reuses what the group compiled
    "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
    "JAX_PLATFORMS": "cpu",
    "XLA_FLAGS": f"--xla_force_host_platform_device_count={2 // num_processes}",
  }
  port = _free_port()
  procs = [
    subprocess.Popen(
      [sys.executable, "-c", SCRIPT, str(i), str(num_processes), str(port), workdir],
      cwd=ROOT,
      env=env,
      stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT,
      text=True,
      start_new_session=True,
    )
    for i in range(num_processes)
  ]
  deadline = time.time() + 240
  outputs = []
  try:
    for p in procs:
      out, _ = p.communicate(timeout=max(1.0, deadline - time.time()))
      outputs.append(out)
      assert p.returncode == 0, out[-3000:]
  finally:
    for p in procs:  # a process whose peer failed would wait for the group until its timeout
      if p.poll() is None:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
  return outputs


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  tmp = tmp_path_factory.mktemp("multihost")
  group = _launch(2, str(tmp / "group"), str(tmp / "jax-cache"))
  single = _launch(1, str(tmp / "single"), str(tmp / "jax-cache"))
  return tmp, group, single


def _writes(output: str) -> list:
  line = [s for s in output.splitlines() if s.startswith("WRITES ")]
  assert line, output[-3000:]
  return json.loads(line[-1][len("WRITES ") :])


TIMINGS = ("seconds", "epoch_seconds", "examples_per_second")  # wall clock: differ run to run


def _rows(path) -> list[dict]:
  if path.suffix == ".jsonl":
    rows = [json.loads(line) for line in path.read_text().splitlines()]
  else:
    rows = list(csv.DictReader(path.open()))
  return [{k: v for k, v in r.items() if k not in TIMINGS} for r in rows]


def test_two_processes_equal_one_bit_for_bit(runs):
  tmp, group, single = runs
  print(*(line for out in group + single for line in out.splitlines() if "TIMES" in line))
  for name in ("sweep/results.csv", "sweep/curves.jsonl", "sweep/summary.csv"):
    assert _rows(tmp / "group" / name) == _rows(tmp / "single" / name), name
  rows = _rows(tmp / "group" / "sweep/results.csv")
  assert [r["name"] for r in rows] == ["butterfly"] * 2  # 2 seeds: one model per device
  assert len({r["test_accuracy"] for r in rows}) > 1  # trained: seeds differ
  for name in ("pareto/pareto.csv", "pareto/evaluations.csv", "pareto/hypervolume.csv"):
    assert (tmp / "group" / name).read_text() == (tmp / "single" / name).read_text(), name
  got = json.loads((tmp / "group" / "pareto/summary.json").read_text())
  assert got["devices"] == 2


def test_only_process_0_writes(runs):
  _, group, single = runs
  assert _writes(group[1]) == []
  assert any("results.csv" in w[1] for w in _writes(group[0]))  # the hook does see writes
  assert any("pareto.csv" in w[1] for w in _writes(single[0]))


WEDGED = textwrap.dedent(
  """
  import os, sys, time
  import numpy as np
  from jax.experimental import multihost_utils
  from nf_jax import distributed, watchdog
  process_id, port = int(sys.argv[1]), sys.argv[2]
  distributed.initialize(f"127.0.0.1:{port}", 2, process_id, timeout_s=30, heartbeat_timeout_s=3)
  watchdog.start(first_beat_within_s=5.0, poll_s=0.05)
  multihost_utils.sync_global_devices("started")
  if process_id == 1:
    watchdog.beat(0.3, "wedged step")
    time.sleep(60)  # stands in for a deadlocked XLA call
  multihost_utils.sync_global_devices("never reached by process 1")
  print("finished", flush=True)
  """
)


def test_watchdog_in_a_group_exits_the_stalled_process_and_the_group_ends():
  """Re-executing one member would hang the group: the stalled process exits (status 3)
  instead, and the coordination service then ends its peer (no process waits for ever)."""
  env = {k: v for k, v in os.environ.items() if k != "NF_WATCHDOG_RESTARTS"}
  env["JAX_PLATFORMS"] = "cpu"
  port = _free_port()
  procs = [
    subprocess.Popen(
      [sys.executable, "-c", WEDGED, str(i), str(port)],
      cwd=ROOT,
      env=env,
      stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT,
      text=True,
      start_new_session=True,
    )
    for i in range(2)
  ]
  t0 = time.time()
  try:
    outs = [p.communicate(timeout=45)[0] for p in procs]
  finally:
    for p in procs:
      if p.poll() is None:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
  assert procs[1].returncode == 3, outs[1][-3000:]
  assert "group of 2" in outs[1] and "wedged step" in outs[1]
  assert "(restart 1 of" not in outs[0] + outs[1]  # never re-executed alone
  assert procs[0].returncode != 0 and "finished" not in outs[0], outs[0][-3000:]
  assert time.time() - t0 < 40  # the group ended well before the wedged sleep would have


def test_launch_flags_are_checked_before_any_jax_work():
  from nf_jax import distributed

  assert distributed.check_args(None, None, None) is False  # one process
  assert distributed.check_args(None, None, None, auto=True) is True  # cluster auto-detection
  assert distributed.check_args("10.0.0.1:1234", 2, 1) is True
  with pytest.raises(ValueError, match="missing --num_processes, --process_id"):
    distributed.check_args("host0:1234", None, None)
  with pytest.raises(ValueError, match="missing --coordinator_address"):
    distributed.check_args(None, 2, 0)
  with pytest.raises(ValueError, match=r"--process_id=2 must be in \[0, 2\)"):
    distributed.check_args("host0:1234", 2, 2)
  with pytest.raises(ValueError, match="--num_processes=0 must be >= 1"):
    distributed.check_args("host0:1234", 0, 0)
  with pytest.raises(ValueError, match="must be host:port"):
    distributed.check_args("host0", 2, 0)
  with pytest.raises(ValueError, match="--distributed_timeout_s=0"):
    distributed.check_args(None, None, None, timeout_s=0)


@pytest.mark.parametrize(
  "cli",
  [["-m", "nf_jax.pareto"], ["experiments/main.py", "--config=experiments/configs/default.py"]],
)
def test_both_clis_take_the_same_flags_and_refuse_a_partial_set(cli, tmp_path):
  proc = subprocess.run(
    [sys.executable, *cli, f"--workdir={tmp_path}", "--num_processes=2", "--process_id=1"],
    cwd=ROOT,
    env={**os.environ, "JAX_PLATFORMS": "cpu"},
    capture_output=True,
    text=True,
    timeout=120,
  )
  assert proc.returncode != 0
  assert "missing --coordinator_address" in proc.stderr, proc.stderr[-2000:]
  assert os.listdir(tmp_path) == []
