"""A full disk (issue 17): ENOSPC in the middle of a write keeps the previous state and says so.

The disk is a 512 KiB tmpfs mounted in a private mount namespace (``unshare -m``, as root), so
the filesystem really runs out of blocks; the checks run in a child process inside it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Run inside the namespace, with the tmpfs at sys.argv[1]. Prints one line per check.
CHECKS = r"""
import errno, hashlib, json, os, sys
import numpy as np
from nf_jax import io_utils
from nf_jax.pareto import config as pareto_config
from nf_jax.pareto import problem as PP
from nf_jax.pareto import report
from nf_jax.pareto import search as PS

mnt = sys.argv[1]


def fill(folder):
  # Writes zeros until the filesystem refuses: afterwards not one more block fits.
  path = os.path.join(folder, "filler")
  with open(path, "wb", buffering=0) as f:
    try:
      while True:
        f.write(b"\0" * 4096)
    except OSError as err:
      assert err.errno == errno.ENOSPC, err
  return path


# 1. An atomic write on a full disk: a clear error, the old file intact, no temporary left.
path = os.path.join(mnt, "results.csv")
io_utils.atomic_write_text(path, "name,acc\ndense,0.5\n")
filler = fill(mnt)
try:
  io_utils.atomic_write_text(path, "name,acc\n" + "dense,0.5\n" * 20000)
  print("WROTE on a full disk")
except OSError as err:
  assert err.errno == errno.ENOSPC, err
  print("ERROR", err)
print("OLD KEPT", open(path).read() == "name,acc\ndense,0.5\n")
print("LEFT", sorted(os.listdir(mnt)))
os.unlink(filler)
os.unlink(path)

# 2. A co-design search whose disk fills after generation 1's checkpoint: generation 2's save
# fails with the same clear error, checkpoint 1 stays valid, and --resume once space is freed
# gives the uninterrupted result.
def fake_accuracy(specs):
  keys = [PP.topology_key(*s) for s in specs]
  return np.asarray(
    [0.5 + 0.45 * int(hashlib.sha256(k.encode()).hexdigest()[:8], 16) / 2**32 for k in keys]
  )

config = pareto_config.SearchConfig(population=12, generations=3, n_partitions=1,
                                    inner_partitions=1, features=("log_params",), accuracy="proxy")
run = lambda **kw: PS.run(config, progress=False, accuracy=(fake_accuracy, None), **kw)
report._plots = lambda result, workdir: None  # plots cost seconds; not what this checks
reference = run()
save, fillers = PS._save, []

def save_then_fill(state, path):
  save(state, path)
  if state.generation == 1:
    fillers.append(fill(os.path.dirname(path)))

PS._save = save_then_fill
workdir = os.path.join(mnt, "run")
try:
  run(workdir=workdir)
  print("SEARCH FINISHED on a full disk")
except OSError as err:
  print("SEARCH ERROR", err)
PS._save = save
body = json.loads(open(os.path.join(workdir, PS.CHECKPOINT)).read())["checkpoint"]
print("CHECKPOINT GENERATION", body["generation"])
print("TMP_LEFT", sorted(n for n in os.listdir(workdir) if n.startswith(".tmp-")))
os.unlink(fillers[0])
resumed = run(workdir=workdir, resume=True)
same = all(
  np.array_equal(getattr(resumed, k), getattr(reference, k))
  for k in ("genomes", "generation", "F", "front", "hv")
)
print("RESUMED SAME", same, resumed.calls_this_process)
"""


def test_full_disk_keeps_previous_state_with_a_clear_error(tmp_path):
  if shutil.which("unshare") is None or subprocess.run(["unshare", "-m", "true"]).returncode:
    pytest.skip("needs `unshare -m` (a private mount namespace, as root) for a small tmpfs")
  mnt = tmp_path / "disk"
  mnt.mkdir()
  script = f'mount -t tmpfs -o size=512k tmpfs {mnt} && exec {sys.executable} -c "$0" {mnt}'
  out = subprocess.run(
    ["unshare", "-m", "sh", "-c", script, CHECKS],
    cwd=ROOT,
    capture_output=True,
    text=True,
    timeout=300,
    env={**os.environ, "JAX_PLATFORMS": "cpu"},
  )
  log = out.stdout + out.stderr[-3000:]
  assert out.returncode == 0, log
  lines = dict(line.split(" ", 1) for line in out.stdout.splitlines() if " " in line)
  results = str(mnt / "results.csv")
  assert lines["ERROR"] == (
    f"[Errno 28] could not write {results}: No space left on device; its previous version "
    "(if any) is unchanged; free space there or write elsewhere, then rerun (or resume)"
  ), log
  assert lines["OLD"] == "KEPT True" and lines["LEFT"] == "['filler', 'results.csv']", log
  checkpoint = str(mnt / "run" / "checkpoint.json")
  assert lines["SEARCH"].startswith(f"ERROR [Errno 28] could not write {checkpoint}: No space"), log
  assert lines["CHECKPOINT"] == "GENERATION 1" and lines["TMP_LEFT"] == "[]", log
  # Generations 2 and 3 were evaluated again after the resume, and nothing else.
  assert lines["RESUMED"] == "SAME True 2", log
