"""Kill -9 campaign (issue 17): SIGKILL runs at seeded random points, resume, compare.

Two targets, both real command lines in fresh processes:

* ``sweep``: ``experiments/main.py`` on a small sweep (dense and a radix-2 butterfly, 2 seeds,
  one model per group: 4 groups of 3 epochs x 3 steps, an Orbax checkpoint per epoch; 256
  training images pooled to 4x4). A rerun of the same command resumes.
* ``pareto``: ``python -m nf_jax.pareto`` (population 12, 3 generations, calibrated proxy on
  ``log_params``); rerun with ``--resume`` once ``checkpoint.json`` exists.

For each target the script runs the command twice uninterrupted (the reference, then a warm
run that times the command and checks that two clean runs agree), then draws kill times by
stratified sampling over the warm run's wall time (``--points`` strata per target, one uniform
draw in each, ``numpy.random.default_rng(--seed)``; a run that ends before its kill, as the
machine's load changes, is discarded and the point redrawn in its stratum of that run's own
duration): every kill point lands in a fresh workdir,
the process is SIGKILLed there, the command is rerun (resumed) until it exits 0, and the
outputs are compared with the reference: every result row present once, values identical
(wall-clock columns excluded). A table row per point gives where the kill landed (the state
of the workdir at the kill) and the outcome.

Command (42 minutes on 2 cores loaded by other jobs, warm runs 76 s and 142 s; under ``nice``)::

  nice -n 19 python benchmarks/fault_campaign.py --points=10 --seed=0

``--points=1 --targets=sweep`` is a smoke run. Results: benchmarks/README.md.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from absl import app, flags

from nf_jax import results as R

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXPERIMENTS = os.path.join(ROOT, "experiments")

FLAGS = flags.FLAGS


def define_flags() -> None:
  """The script's flags, defined when it starts (never at import)."""
  flags.DEFINE_integer("points", 10, "Kill points per target.")
  flags.DEFINE_integer("seed", 0, "Seed of the kill-time draws.")
  flags.DEFINE_list("targets", ["sweep", "pareto"], "Targets: sweep, pareto.")
  flags.DEFINE_string("workdir", None, "Scratch folder (default: a new temporary folder).")
  flags.DEFINE_bool("keep", False, "Keep the scratch folder.")
  flags.DEFINE_integer("timeout_s", 600, "Longest wait for one process.")


SWEEP_CONFIG = f"""
import sys
sys.path.insert(0, {EXPERIMENTS!r})
from configs import default


def get_config(arg=None):
  config = default.base_config()
  config.update(dict(max_train_examples=256, max_test_examples=128, pool=7, validation_size=64,
                     n=32, seeds=(0, 1), max_models_per_group=1))
  config.models = [dict(name="butterfly", radix=2, depth=5, skip=True)]
  config.train.update(dict(num_epochs=3, steps_per_epoch=3, batch_size=32, eval_batch_size=128,
                           log_every=1))
  return config
"""
SWEEP_GROUPS = 4
PARETO_ARGS = [
  "--config.population=12",
  "--config.generations=3",
  "--config.n_partitions=1",
  "--config.inner_partitions=1",
  "--config.features=log_params",
  "--config.accuracy=proxy",
]
PARETO_OUTPUTS = ("pareto.csv", "evaluations.csv", "hypervolume.csv", "summary.json")
# Wall-clock fields: they differ between any two runs.
TIMINGS = ("seconds", "epoch_seconds", "examples_per_second")
SUMMARY_KEYS = ("evaluations", "unique_designs", "front_size", "final_hypervolume", "picks")


@dataclass
class Target:
  name: str
  command: Callable[[str], list[str]]  # workdir -> argv of a (re)run
  landed: Callable[[str], str]  # workdir -> where a kill landed
  outputs: Callable[[str], dict]  # workdir -> comparable results


def _sweep_command(scratch: str) -> Callable[[str], list[str]]:
  config = os.path.join(scratch, "tiny_sweep.py")
  with open(config, "w") as f:
    f.write(SWEEP_CONFIG)
  main = os.path.join(EXPERIMENTS, "main.py")
  return lambda wd: [sys.executable, main, f"--workdir={wd}", f"--config={config}", "--noprogress"]


def _rows(path: str) -> int:
  try:
    with open(path) as f:
      return max(sum(1 for _ in f) - 1, 0)
  except OSError:
    return 0


def _sweep_landed(wd: str) -> str:
  if not os.path.isdir(wd) or not os.listdir(wd):
    return "start-up (workdir empty)"
  rows = _rows(os.path.join(wd, "results.csv"))
  steps, tmp = [], 0
  for group in (
    sorted(os.listdir(os.path.join(wd, "groups")))
    if os.path.isdir(os.path.join(wd, "groups"))
    else []
  ):
    ckpts = os.path.join(wd, "groups", group, "checkpoints")
    names = os.listdir(ckpts) if os.path.isdir(ckpts) else []
    steps += [int(n) for n in names if n.isdigit()]
    tmp += sum("tmp" in n for n in names)
  where = f"{rows}/{SWEEP_GROUPS} rows"
  if rows < SWEEP_GROUPS:
    where += f", group {rows + 1}: epochs saved {len(steps)}/3"
    if tmp:
      where += ", a save in flight"
  elif not os.path.exists(os.path.join(wd, "results.json")):
    where += ", writing outputs"
  else:
    where += ", outputs written"
  return where


def _sweep_outputs(wd: str) -> dict:
  rows = [
    {k: v for k, v in r.items() if k not in TIMINGS}
    for r in R.read_results(os.path.join(wd, "results.csv"))
  ]
  curves = [
    {k: v for k, v in c.items() if k not in TIMINGS}
    for c in R.read_curves(os.path.join(wd, "curves.jsonl"))
  ]
  return {
    "rows": sorted(rows, key=lambda r: json.dumps(r, sort_keys=True)),
    "curves": sorted(curves, key=lambda c: json.dumps(c, sort_keys=True)),
    "summary.csv": open(os.path.join(wd, "summary.csv")).read(),
  }


def _pareto_command(wd: str) -> list[str]:
  resume = ["--resume"] if os.path.exists(os.path.join(wd, "checkpoint.json")) else []
  return [sys.executable, "-m", "nf_jax.pareto", f"--workdir={wd}", *PARETO_ARGS, *resume]


def _pareto_landed(wd: str) -> str:
  try:
    with open(os.path.join(wd, "checkpoint.json")) as f:
      gen = json.load(f)["checkpoint"]["generation"]
  except (OSError, ValueError, KeyError):
    gen = None
  if gen is None:
    if not os.path.isdir(wd) or not os.listdir(wd):
      return "start-up (workdir empty)"
    return "generation 1 (no checkpoint yet)"
  written = [n for n in PARETO_OUTPUTS if os.path.exists(os.path.join(wd, n))]
  if gen < 3:
    return f"generation {gen + 1} (checkpoint {gen}/3)"
  return f"writing outputs ({len(written)}/{len(PARETO_OUTPUTS)} written)"


def _pareto_outputs(wd: str) -> dict:
  out = {n: open(os.path.join(wd, n)).read() for n in PARETO_OUTPUTS[:3]}
  with open(os.path.join(wd, "summary.json")) as f:
    summary = json.load(f)
  out["summary"] = {k: summary[k] for k in SUMMARY_KEYS}
  with open(os.path.join(wd, "pareto.csv"), newline="") as f:
    out["front_rows"] = len(list(csv.reader(f))) - 1
  return out


def _env(scratch: str) -> dict:
  return {
    **os.environ,
    "JAX_PLATFORMS": "cpu",
    # Reruns reuse the first run's compiled programs (as a user's would, through the CLIs' cache).
    "JAX_COMPILATION_CACHE_DIR": os.path.join(scratch, "jax-cache"),
    "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
    "PYTHONPATH": ROOT,
  }


def _start(argv: list[str], env: dict, log: str) -> subprocess.Popen:
  with open(log, "a") as f:  # a file: a full pipe would block the run
    return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=f, stderr=f)


def _finish(argv_of: Callable[[], list[str]], env: dict, log: str) -> tuple[int, float]:
  """Reruns until exit 0 (at most 3 times); returns (runs, seconds of the last)."""
  for runs in range(1, 4):
    t0 = time.time()
    proc = _start(argv_of(), env, log)
    try:
      code = proc.wait(timeout=FLAGS.timeout_s)
    except subprocess.TimeoutExpired:
      proc.kill()
      proc.wait()
      raise RuntimeError(f"no exit within {FLAGS.timeout_s} s; log: {log}") from None
    if code == 0:
      return runs, time.time() - t0
  raise RuntimeError(f"rerun failed 3 times (exit {code}); log: {log}")


def _tmp_files(wd: str) -> int:
  """Leftover temporary files of interrupted atomic writes (harmless, but counted)."""
  return sum(n.startswith(".tmp-") for _, _, names in os.walk(wd) for n in names)


def _diff(got: dict, want: dict) -> str:
  bad = [k for k in want if got.get(k) != want[k]]
  return "identical" if not bad else "DIFFERS: " + ", ".join(bad)


def campaign(target: Target, scratch: str, rng: np.random.Generator) -> list[dict]:
  env = _env(scratch)
  base = os.path.join(scratch, target.name)
  os.makedirs(base)
  ref, warm = os.path.join(base, "reference"), os.path.join(base, "warm")
  _finish(lambda: target.command(ref), env, os.path.join(base, "reference.log"))
  _, seconds = _finish(lambda: target.command(warm), env, os.path.join(base, "warm.log"))
  want = target.outputs(ref)
  clean = _diff(target.outputs(warm), want)
  print(f"{target.name}: two uninterrupted runs: {clean}; warm run {seconds:.1f} s", flush=True)
  if clean != "identical":
    raise RuntimeError(f"{target.name}: uninterrupted runs disagree; nothing to compare with")
  n = FLAGS.points
  strata = rng.uniform(size=(n, 3))
  rows = []
  for i in range(n):
    wd, log = os.path.join(base, f"kill-{i}"), os.path.join(base, f"kill-{i}.log")
    # The stratum's share of the run's wall time. Under a changing machine load a run can end
    # before its kill: then the workdir is discarded and the point is drawn again in the same
    # stratum of that run's own duration (at most 3 tries), so every point lands in a run.
    duration = seconds
    for attempt in range(3):
      delay = duration * (i + strata[i, attempt]) / n
      shutil.rmtree(wd, ignore_errors=True)
      t0 = time.time()
      proc = _start(target.command(wd), env, log)
      try:
        proc.wait(timeout=delay)
        landed, killed, duration = "finished before the kill", False, time.time() - t0
      except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        landed, killed = target.landed(wd), True
        break
    tmp = _tmp_files(wd) if os.path.isdir(wd) else 0
    runs, _ = _finish(lambda wd=wd: target.command(wd), env, log)
    got = target.outputs(wd)
    row = dict(
      target=target.name,
      point=i,
      kill_s=round(float(delay), 2),
      tries=attempt + 1,
      killed=killed,
      landed=landed,
      tmp_left=tmp,
      reruns=runs,
      result=_diff(got, want),
    )
    rows.append(row)
    print(
      f"{target.name:7s} {i:3d} {delay:7.2f} s (try {attempt + 1}) {landed:40s} tmp={tmp} "
      f"reruns={runs} "
      f"{row['result']}",
      flush=True,
    )
  return rows


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if FLAGS.points < 1:
    raise app.UsageError(f"--points={FLAGS.points} must be >= 1")
  unknown = set(FLAGS.targets) - {"sweep", "pareto"}
  if unknown:
    raise app.UsageError(f"--targets: unknown {sorted(unknown)}; pick from sweep, pareto")
  scratch = FLAGS.workdir or tempfile.mkdtemp(prefix="fault-campaign-")
  if os.path.exists(scratch) and os.listdir(scratch):
    raise app.UsageError(f"--workdir={scratch} is not empty; pass a new folder")
  os.makedirs(scratch, exist_ok=True)
  targets = {
    "sweep": Target("sweep", _sweep_command(scratch), _sweep_landed, _sweep_outputs),
    "pareto": Target("pareto", _pareto_command, _pareto_landed, _pareto_outputs),
  }
  rng = np.random.default_rng(FLAGS.seed)
  t0 = time.time()
  rows = []
  print(f"kill times: np.random.default_rng({FLAGS.seed}), {FLAGS.points} strata per target")
  for name in FLAGS.targets:
    rows += campaign(targets[name], scratch, rng)
  print("\n| target | point | kill at (s) | try | landed | tmp files left | reruns | result |")
  print("|---|---|---|---|---|---|---|---|")
  for r in rows:
    print(
      f"| {r['target']} | {r['point']} | {r['kill_s']:.2f} | {r['tries']} | {r['landed']} "
      f"| {r['tmp_left']} | {r['reruns']} | {r['result']} |"
    )
  killed = sum(r["killed"] for r in rows)
  same = sum(r["result"] == "identical" for r in rows)
  print(
    f"\n{killed} of {len(rows)} points killed a running process; {same} of {len(rows)} resumed "
    f"runs identical to the uninterrupted one; {time.time() - t0:.0f} s"
  )
  if not FLAGS.keep and not FLAGS.workdir:
    shutil.rmtree(scratch, ignore_errors=True)
  if same != len(rows):
    sys.exit(1)


if __name__ == "__main__":
  define_flags()
  app.run(main)
