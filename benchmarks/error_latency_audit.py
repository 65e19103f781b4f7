"""Time to error of bad inputs (issue 17): no error may come after more than 5 s of work when it
could have been detected at start.

Runs a catalogue of bad command lines (flags, configs, data_dir, workdirs, checkpoints, hw
values) through every CLI, each in a fresh process, and measures the time until the process
exits with its error. The work before the error is that time less the CLI's start-up (Python,
JAX and module imports), measured by ``--helpshort`` of the same CLI (it exits right after the
imports). Both the wall time and the CPU time of the process are shown; the flag (``SLOW``) is on
the CPU time over start-up, which a busy machine does not inflate. A case that exits 0, or whose
message lacks the expected words, is marked ``WRONG``.

Command (about 12 minutes on 2 cores loaded by other jobs; run under ``nice``)::

  nice -n 19 python benchmarks/error_latency_audit.py

Results: benchmarks/README.md.
"""

from __future__ import annotations

import csv
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

from absl import app, flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLAGS = flags.FLAGS


def define_flags() -> None:
  """The script's flags, defined when it starts (never at import)."""
  flags.DEFINE_float("limit_s", 5.0, "Largest allowed CPU seconds of work before an error.")
  flags.DEFINE_integer("timeout_s", 180, "Longest wait for one case.")
  flags.DEFINE_string("only", None, "Run only the cases whose name contains this.")


PY = sys.executable
CLIS = {
  "pareto": [PY, "-m", "nf_jax.pareto"],
  "hw": [PY, "-m", "nf_jax.hw"],
  "topo_search": [PY, "-m", "nf_jax.topo_search"],
  "topology_report": [PY, "-m", "nf_jax.topology_report"],
  "experiments": [PY, os.path.join(ROOT, "experiments", "main.py")],
}
RUNLOCAL = "--config=" + os.path.join(ROOT, "experiments", "configs", "default.py") + ":runlocal"


def _fixtures(tmp: str) -> dict[str, str]:
  """Files and folders the bad cases point at."""
  from nf_jax import calibration as C
  from nf_jax import io_utils

  paths = {k: os.path.join(tmp, k) for k in ("file", "held", "corrupt", "recipe", "damaged")}
  with open(paths["file"], "w") as f:
    f.write("x")
  os.makedirs(paths["held"])
  with open(os.path.join(paths["held"], "pareto.csv"), "w") as f:
    f.write("an earlier run's front\n")
  os.makedirs(paths["corrupt"])
  with open(os.path.join(paths["corrupt"], "checkpoint.json"), "w") as f:
    f.write('{"sha256": "00", "checkpoint": {"generation": 2')  # truncated
  os.makedirs(paths["recipe"])
  with open(os.path.join(paths["recipe"], "recipe.json"), "w") as f:
    json.dump({"dataset": "fashion_mnist", "train.learning_rate": 0.5}, f)
  os.makedirs(paths["damaged"])
  with open(os.path.join(paths["damaged"], "results.csv"), "w") as f:
    f.write("name,n\ndense,32")  # no final newline: truncated
  with open(C.DEFAULT_CSV, newline="") as f:
    rows = list(csv.DictReader(f))
  for r in rows:
    r["test_accuracy"] = f"{100 * float(r['test_accuracy']):.2f}"
  paths["percent"] = os.path.join(tmp, "percent.csv")
  io_utils.atomic_write_csv(paths["percent"], rows)
  os.makedirs(os.path.join(tmp, "partial_data", "fashion-mnist"))
  paths["partial_data"] = os.path.join(tmp, "partial_data")
  return paths


def cases(tmp: str, p: dict[str, str]) -> list[tuple[str, str, list[str], str]]:
  """``(name, cli, args, words the error must contain)``."""
  w = lambda name: f"--workdir={os.path.join(tmp, 'out', name)}"  # noqa: E731
  return [
    # pareto
    ("pareto negative seed", "pareto", [w("p1"), "--config.seed=-1"], "seed=-1"),
    ("pareto workdir is a file", "pareto", [f"--workdir={p['file']}"], "is a file"),
    ("pareto workdir not writable", "pareto", [f"--workdir={p['file']}/sub"], "not writable"),
    ("pareto workdir holds a run", "pareto", [f"--workdir={p['held']}"], "holds another run"),
    ("pareto resume without checkpoint", "pareto", [w("p2"), "--resume"], "does not exist"),
    ("pareto corrupt checkpoint", "pareto", [f"--workdir={p['corrupt']}", "--resume"], "corrupt"),
    ("pareto resume and overwrite", "pareto", [w("p3"), "--resume", "--overwrite"], "pick one"),
    ("pareto infeasible max_area", "pareto", [w("p4"), "--config.max_area=0.1"], "max_area=0.1"),
    ("pareto population 0", "pareto", [w("p5"), "--config.population=0"], "population"),
    ("pareto generations 0", "pareto", [w("p6"), "--config.generations=0"], "generations"),
    ("pareto too many directions", "pareto", [w("p7"), "--config.n_partitions=50"], "n_partitions"),
    ("pareto min_accuracy 1.5", "pareto", [w("p8"), "--config.min_accuracy=1.5"], "min_accuracy"),
    (
      "pareto missing calibration",
      "pareto",
      [w("p9"), "--config.accuracy=proxy", "--config.calibration=/nonexistent.csv"],
      "nonexistent.csv",
    ),
    (
      "pareto percent calibration",
      "pareto",
      [w("p10"), "--config.accuracy=proxy", f"--config.calibration={p['percent']}"],
      "percent",
    ),
    ("pareto unknown feature", "pareto", [w("p11"), "--config.features=bogus"], "bogus"),
    (
      "pareto missing table",
      "pareto",
      [w("p12"), "--config.table=/nonexistent.csv"],
      "nonexistent",
    ),
    (
      "pareto flag not read",
      "pareto",
      [w("p13"), "--config.accuracy=proxy", "--config.table=t"],
      "read only",
    ),
    (
      "pareto partial multi-host flags",
      "pareto",
      [w("p14"), "--num_processes=2", "--process_id=1"],
      "coordinator_address",
    ),
    ("pareto stray argument", "pareto", [w("p15"), "stray"], "stray"),
    (
      "pareto algorithm field not read",
      "pareto",
      [w("p16"), "--config.algorithm=nsga2", "--config.n_partitions=3"],
      "read only",
    ),
    ("pareto overwrite without workdir", "pareto", ["--overwrite"], "needs --workdir"),
    # hw
    ("hw rows 0", "hw", [w("h1"), "--config.rows=0"], "rows"),
    ("hw rows 3e9", "hw", [w("h2"), "--config.rows=3000000000"], "rows"),
    ("hw sram 1e300", "hw", [w("h3"), "--config.sram_kb=1e300"], "sram"),
    ("hw unknown dataflow", "hw", [w("h4"), "--config.dataflow=xx"], "xx"),
    ("hw unknown precision", "hw", [w("h5"), "--config.precision=int3"], "int3"),
    ("hw negative clock", "hw", [w("h6"), "--config.clock_ghz=-1"], "clock"),
    ("hw gemm of 2 sizes", "hw", [w("h7"), "--config.gemm=1,2"], "M,N,K"),
    (
      "hw unknown topology",
      "hw",
      [w("h8"), "--config.workload=mlp", "--config.topology=nope"],
      "nope",
    ),
    ("hw width not a power", "hw", [w("h9"), "--config.workload=mlp", "--config.n=1000"], "1000"),
    ("hw flag not read", "hw", [w("h10"), "--config.n=5"], "does not apply"),
    # topo_search
    ("topo_search fan_ins 0", "topo_search", [w("t1"), "--config.fan_ins=0"], "fan_ins"),
    ("topo_search n 1", "topo_search", [w("t2"), "--config.n=1"], "n=1"),
    (
      "topo_search depth range",
      "topo_search",
      [w("t3"), "--config.depth_min=5", "--config.depth_max=2"],
      "depth_min=5",
    ),
    ("topo_search budget 10", "topo_search", [w("t4"), "--config.budget=10"], "budget=10"),
    ("topo_search unknown family", "topo_search", [w("t5"), "--config.families=bogus"], "bogus"),
    ("topo_search unknown score", "topo_search", [w("t6"), "--config.score=bogus"], "bogus"),
    (
      "topo_search grid field not read",
      "topo_search",
      [w("t7"), "--config.families=butterfly", "--config.fan_ins=4"],
      "read only",
    ),
    (
      "topo_search fan_in above the width",
      "topo_search",
      [w("t8"), "--config.n=64", "--config.fan_ins=128"],
      "no valid",
    ),
    # topology_report
    (
      "topology_report unknown family",
      "topology_report",
      [w("r1"), "--config.families=bogus"],
      "bogus",
    ),
    (
      "topology_report bad width",
      "topology_report",
      [w("r2"), "--config.families=butterfly", "--config.n=1000"],
      "1000",
    ),
    (
      "topology_report flag not read",
      "topology_report",
      [w("r3"), "--config.families=clos", "--config.fan_in=8"],
      "parameter of none",
    ),
    # experiments/main.py
    (
      "experiments missing config",
      "experiments",
      [w("e1"), "--config=/nonexistent.py"],
      "nonexistent",
    ),
    ("experiments workdir is a file", "experiments", [f"--workdir={p['file']}", RUNLOCAL], "file"),
    (
      "experiments missing data_dir",
      "experiments",
      [w("e2"), RUNLOCAL, "--config.data_dir=/nonexistent"],
      "/nonexistent",
    ),
    (
      "experiments partial data_dir",
      "experiments",
      [w("e3"), RUNLOCAL, f"--config.data_dir={p['partial_data']}"],
      "partial_data",
    ),
    (
      "experiments unknown dataset",
      "experiments",
      [w("e4"), RUNLOCAL, "--config.dataset=bogus"],
      "bogus",
    ),
    (
      "experiments other recipe",
      "experiments",
      [f"--workdir={p['recipe']}", RUNLOCAL],
      "another recipe",
    ),
    (
      "experiments damaged results",
      "experiments",
      [f"--workdir={p['damaged']}", RUNLOCAL],
      "truncated",
    ),
    ("experiments width 0", "experiments", [w("e5"), RUNLOCAL, "--config.n=0"], "n=0"),
    (
      "experiments on_nonfinite bogus",
      "experiments",
      [w("e6"), RUNLOCAL, "--config.train.on_nonfinite=bogus"],
      "bogus",
    ),
    (
      "experiments partial multi-host flags",
      "experiments",
      [w("e7"), RUNLOCAL, "--num_processes=2", "--process_id=1"],
      "coordinator_address",
    ),
  ]


def _run(argv: list[str], env: dict) -> tuple[int | None, float, float, str]:
  """(exit code or None on timeout, wall s, CPU s of the process tree, stderr and stdout)."""
  before = resource.getrusage(resource.RUSAGE_CHILDREN)
  t0 = time.perf_counter()
  try:
    out = subprocess.run(
      argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=FLAGS.timeout_s
    )
    code, text = out.returncode, out.stderr + out.stdout
  except subprocess.TimeoutExpired as err:
    code, text = None, str(err)
  wall = time.perf_counter() - t0
  after = resource.getrusage(resource.RUSAGE_CHILDREN)
  cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
  return code, wall, cpu, text


def _message(text: str) -> str:
  """The error line: the last line that names an error, else the last line."""
  lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
  for ln in reversed(lines):
    if "rror" in ln or ln.startswith(("FATAL", "E1")):
      return ln
  return lines[-1] if lines else ""


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  tmp = tempfile.mkdtemp(prefix="error-audit-")
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": ROOT}
  try:
    chosen = [c for c in cases(tmp, _fixtures(tmp)) if not FLAGS.only or FLAGS.only in c[0]]
    base = {}
    for cli in sorted({c[1] for c in chosen}):
      _, wall, cpu, _ = _run(CLIS[cli] + ["--helpshort"], env)
      base[cli] = (wall, cpu)
      print(f"start-up of {cli}: {wall:.1f} s wall, {cpu:.1f} s CPU", flush=True)
    rows = []
    for name, cli, args, words in chosen:
      code, wall, cpu, text = _run(CLIS[cli] + args, env)
      work = cpu - base[cli][1]
      msg = _message(text)
      if code is None:
        verdict = f"SLOW (no exit in {FLAGS.timeout_s} s)"
      elif code == 0 or words.lower() not in text.lower():
        verdict = "WRONG"
      else:
        verdict = "SLOW" if work > FLAGS.limit_s else "ok"
      rows.append((name, wall, cpu, work, verdict, msg))
      print(
        f"{name:38s} {wall:6.1f} s wall {cpu:6.1f} s CPU {work:+6.1f} s work  {verdict}  "
        f"{msg[:110]}",
        flush=True,
      )
    print(
      "\n| case | wall s | CPU s | CPU s over start-up | verdict | error (first 100 characters) |"
    )
    print("|---|---|---|---|---|---|")
    for name, wall, cpu, work, verdict, msg in rows:
      msg = msg[:100].replace("|", "\\|")
      print(f"| {name} | {wall:.1f} | {cpu:.1f} | {work:+.1f} | {verdict} | {msg} |")
    bad = [r for r in rows if r[4] != "ok"]
    print(f"\n{len(rows)} cases, {len(rows) - len(bad)} ok, {len(bad)} not: {[r[0] for r in bad]}")
  finally:
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
  define_flags()
  app.run(main)
