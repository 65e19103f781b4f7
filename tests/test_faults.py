"""Fault injection (issue 17): interrupted, corrupt, crafted, misplaced and infeasible inputs.

Each test feeds one fault and checks the outcome a user needs: an identical result after
resume, or a clear error that names the file or value and the fix, raised before the costly
part of the work (checked by failing if that part starts, not by timing).

Pareto searches here use a cheap fake accuracy model (a hash of the topology) so that only the
simulator compiles; the first search in the process pays that (~10 s), later ones take ~0.1 s.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import subprocess
import sys

import numpy as np
import pytest

from nf_jax import calibration as C
from nf_jax import pareto as PA
from nf_jax import results as R
from nf_jax.pareto import accuracy as A
from nf_jax.pareto import problem as PP
from nf_jax.pareto import report
from nf_jax.pareto import search as PS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The proxy mode: these tests exercise the calibration CSV's part of the checkpoint.
TINY = dict(
  population=12,
  generations=4,
  n_partitions=1,
  inner_partitions=1,
  features=("log_params",),
  accuracy="proxy",
)


def fake_accuracy(specs):
  """A deterministic stand-in for the accuracy model: in [0.5, 0.95), from the topology key."""
  keys = [PP.topology_key(*s) for s in specs]
  return np.asarray(
    [0.5 + 0.45 * int(hashlib.sha256(k.encode()).hexdigest()[:8], 16) / 2**32 for k in keys]
  )


def _run(config, workdir=None, **kwargs):
  return PS.run(config, workdir, progress=False, accuracy=(fake_accuracy, None), **kwargs)


class Interrupted(Exception):
  """Stands in for a kill: raised out of the run at a chosen point."""


def _interrupt(monkeypatch, config, workdir, after_generation=None, on_accuracy_call=None):
  """Runs ``config`` into ``workdir`` and stops it after a checkpoint or inside an evaluation."""
  save = PS._save

  def save_then_stop(state, path):
    save(state, path)
    if state.generation == after_generation:
      raise Interrupted

  calls = []

  def accuracy(specs):
    calls.append(1)
    if len(calls) == on_accuracy_call:
      raise Interrupted
    return fake_accuracy(specs)

  monkeypatch.setattr(PS, "_save", save_then_stop)
  with pytest.raises(Interrupted):
    PS.run(config, workdir, progress=False, accuracy=(accuracy, None))
  monkeypatch.setattr(PS, "_save", save)


def _same_result(a, b):
  np.testing.assert_array_equal(a.genomes, b.genomes)
  np.testing.assert_array_equal(a.generation, b.generation)
  np.testing.assert_array_equal(a.F, b.F)
  np.testing.assert_array_equal(a.front, b.front)
  np.testing.assert_array_equal(a.hv, b.hv)


@pytest.fixture(autouse=True)
def _no_plots(monkeypatch):
  """Plots cost seconds each and are tested in test_pareto.py; the other outputs are written."""
  monkeypatch.setattr(report, "_plots", lambda result, workdir: None)


@pytest.fixture(scope="module")
def reference():
  """The uninterrupted run every resumed run must reproduce."""
  return _run(PA.SearchConfig(**TINY))


# ---------------------------------------------------------------------------------------------
# Pareto checkpoint: plain data, validated, relocatable


@pytest.mark.parametrize("after_generation, on_accuracy_call", [(1, None), (3, None), (None, 3)])
def test_resume_after_interruption_equals_uninterrupted_even_after_a_move(
  reference, tmp_path, monkeypatch, after_generation, on_accuracy_call
):
  config = PA.SearchConfig(**TINY)
  first = tmp_path / "first"
  _interrupt(monkeypatch, config, str(first), after_generation, on_accuracy_call)
  text = (first / PS.CHECKPOINT).read_text()
  done = json.loads(text)["checkpoint"]  # plain JSON: nothing to execute
  assert 1 <= done["generation"] < config.generations
  if after_generation is not None:
    assert done["generation"] == after_generation
  # Only relative or content-hashed references: no absolute path of the run or the checkout.
  assert str(tmp_path) not in text and ROOT not in text
  assert done["config"]["calibration"]["sha256"] == PS._file_sha256(C.DEFAULT_CSV)
  moved = tmp_path / "elsewhere" / "moved"
  shutil.move(str(first), str(moved))
  monkeypatch.chdir(tmp_path / "elsewhere")
  resumed = _run(config, "moved", resume=True)
  _same_result(resumed, reference)
  # Finished generations came from the checkpoint: at most one evaluation per remaining one.
  assert resumed.calls_this_process <= config.generations - done["generation"]
  assert (moved / "pareto.csv").stat().st_size > 0


def test_crafted_pickle_checkpoint_is_never_loaded(tmp_path):
  marker = tmp_path / "code-ran"

  class Payload:
    def __reduce__(self):
      return (os.system, (f"touch {marker}",))

  workdir = tmp_path / "run"
  workdir.mkdir()
  (workdir / "checkpoint.pkl").write_bytes(pickle.dumps(Payload()))
  with pytest.raises(ValueError, match=r"pickle checkpoint, which is not read.*--overwrite"):
    _run(PA.SearchConfig(**TINY), str(workdir), resume=True)
  with pytest.raises(ValueError, match=r"holds another run \(checkpoint.pkl\).*--resume"):
    _run(PA.SearchConfig(**TINY), str(workdir))
  _run(PA.SearchConfig(**TINY), str(workdir), overwrite=True)
  assert not marker.exists()
  assert not (workdir / "checkpoint.pkl").exists() and (workdir / PS.CHECKPOINT).exists()


def _checkpointed(monkeypatch, tmp_path, **overrides):
  config = PA.SearchConfig(**{**TINY, **overrides})
  workdir = tmp_path / "run"
  _interrupt(monkeypatch, config, str(workdir), after_generation=2)
  return config, workdir, workdir / PS.CHECKPOINT


def test_corrupt_truncated_or_foreign_checkpoint_names_file_and_fix(tmp_path, monkeypatch):
  config, workdir, ckpt = _checkpointed(monkeypatch, tmp_path)
  good = ckpt.read_text()

  def expensive(*args, **kwargs):
    raise AssertionError("the accuracy model was built before the checkpoint was checked")

  monkeypatch.setattr(A, "accuracy_model", expensive)
  body = json.loads(good)["checkpoint"]
  cases = {
    "truncated": (good[: len(good) // 2], "unreadable, truncated or corrupt"),
    "empty": ("", "unreadable, truncated or corrupt"),
    "binary": ("\x00\xff garbage", "unreadable, truncated or corrupt"),
    # One logged objective changed, the JSON still parses: the content hash catches it.
    "edited": (good.replace('"generation":2', '"generation":1', 1), "does not match its sha256"),
    "foreign": (json.dumps({"a": 1}), "is not a nf_jax.pareto checkpoint"),
  }
  body["format"] = "something else"
  text = PS._canonical(body)
  cases["other format"] = (
    json.dumps({"sha256": hashlib.sha256(text.encode()).hexdigest(), "checkpoint": body}),
    "has format 'something else'",
  )
  for name, (text, message) in cases.items():
    ckpt.write_text(text, errors="surrogateescape")
    with pytest.raises(PS.CheckpointError, match=message) as err:
      PS.run(config, str(workdir), resume=True, progress=False)
    assert str(ckpt) in str(err.value) and "--overwrite" in str(err.value), name


def test_checkpoint_that_replays_differently_is_refused(tmp_path, monkeypatch):
  """A consistent checkpoint whose cached objectives do not reproduce its log (another code
  version, or an edit with the hash redone) is refused, not continued from a different state."""
  config, workdir, ckpt = _checkpointed(monkeypatch, tmp_path)
  body = json.loads(ckpt.read_text())["checkpoint"]
  first = PP.genome_hash(body["log"][0][1])
  body["evaluator"]["cache"][first]["power"] *= 1000.0
  text = PS._canonical(body)
  digest = hashlib.sha256(text.encode()).hexdigest()
  ckpt.write_text(json.dumps({"sha256": digest, "checkpoint": body}))
  with pytest.raises(PS.CheckpointError, match=r"replaying the 2 generations of .* other designs"):
    _run(config, str(workdir), resume=True)


def test_resume_with_other_settings_names_each_field(tmp_path, monkeypatch):
  # The calibration CSV is compared by content: a copy elsewhere resumes, an edited one does not.
  copies = [tmp_path / d / "results.csv" for d in ("a", "b", "c")]
  for path in copies:
    path.parent.mkdir()
    shutil.copy(C.DEFAULT_CSV, path)
  copies[2].write_text(copies[2].read_text().replace("0.8", "0.7", 1))
  config, workdir, _ = _checkpointed(monkeypatch, tmp_path, calibration=str(copies[0]))
  other = PA.SearchConfig(**{**TINY, "calibration": str(copies[2]), "batch": 32, "seed": 3})
  with pytest.raises(PS.CheckpointError) as err:
    _run(other, str(workdir), resume=True)
  message = str(err.value)
  for field in ("batch: checkpoint 64, now 32", "seed: checkpoint 0, now 3", "calibration:"):
    assert field in message
  assert "population" not in message and "features" not in message
  moved = PA.SearchConfig(**{**TINY, "calibration": str(copies[1])})
  _same_result(_run(moved, str(workdir), resume=True), _run(config))


# ---------------------------------------------------------------------------------------------
# Nothing overwritten; checks at start, before the costly part


def test_workdir_of_another_run_is_refused_unless_resume_or_overwrite(reference, tmp_path):
  workdir = tmp_path / "run"
  _run(PA.SearchConfig(**TINY), str(workdir))
  before = {p.name: p.read_bytes() for p in workdir.iterdir()}
  other = PA.SearchConfig(**{**TINY, "generations": 3})  # another run (its designs are cached)
  with pytest.raises(ValueError, match=r"holds another run.*--resume.*new --workdir.*--overwrite"):
    _run(other, str(workdir))
  assert {p.name: p.read_bytes() for p in workdir.iterdir()} == before  # untouched
  with pytest.raises(ValueError, match="pick one"):
    _run(other, str(workdir), resume=True, overwrite=True)
  result = _run(other, str(workdir), overwrite=True)
  assert len(result.genomes) < len(reference.genomes)
  summary = json.loads((workdir / "summary.json").read_text())
  assert summary["config"]["generations"] == 3 and summary["evaluations"] == len(result.genomes)


def _no_costly_work(monkeypatch):
  def expensive(*args, **kwargs):
    raise AssertionError("costly work started before the start-up checks")

  monkeypatch.setattr(A, "accuracy_model", expensive)
  monkeypatch.setattr(PP.Evaluator, "evaluate", expensive)


def test_bad_seed_workdir_or_area_fail_at_start(tmp_path, monkeypatch):
  _no_costly_work(monkeypatch)
  a_file = tmp_path / "file"
  a_file.write_text("x")
  cases = [
    (dict(seed=-1), str(tmp_path / "w1"), r"seed=-1 must be >= 0"),
    ({}, str(a_file), r"--workdir=.*file is a file, not a folder"),
    ({}, str(a_file / "sub"), r"--workdir=.*sub is not writable"),
    (dict(max_area=0.1), str(tmp_path / "w2"), r"max_area=0.1 mm\^2 is below .* at least 0.50"),
  ]
  for overrides, workdir, message in cases:
    with pytest.raises(ValueError, match=message):
      PS.run(PA.SearchConfig(**{**TINY, **overrides}), workdir, progress=False)
  assert not (tmp_path / "w1").exists() and not (tmp_path / "w2").exists()


def test_smallest_area_is_a_real_design_and_a_true_bound(reference):
  """The start-up area bound is reached by a design of the space and no design is below it."""
  rng = np.random.default_rng(0)
  xs = np.concatenate([rng.integers(0, PP.UPPER + 1, size=(11, PP.N_GENES)), np.zeros((1, 14))])
  # The smallest accelerator: 8x8, the first precision, 32 KiB buffers, radix 2 (genes 0).
  wl = PP.model_workload(PP.decode_topology(xs[-1]), 64)  # area does not depend on it
  area = PP.simulate_pairs(PP.decode_hw(xs), [wl] * len(xs), min_size=12)["area_mm2"]
  seen = [o["area"] for o in reference.evaluator.cache.values()]
  smallest = PS._smallest_area()
  assert min(np.min(area), min(seen)) >= smallest * (1 - 1e-6)
  np.testing.assert_allclose(area[-1], smallest, rtol=1e-6)


def test_readonly_workdir_fails_at_start(tmp_path):
  if shutil.which("unshare") is None or subprocess.run(["unshare", "-m", "true"]).returncode:
    pytest.skip("needs `unshare -m` (a private mount namespace) for a read-only tmpfs")
  mnt = tmp_path / "ro"
  mnt.mkdir()
  code = (
    "from nf_jax import pareto as PA\n"
    "try:\n"
    f"  PA.run(PA.SearchConfig(), {str(mnt / 'run')!r}, progress=False)\n"
    "except ValueError as err:\n"
    "  print('REFUSED', err)\n"
  )
  script = f'mount -t tmpfs -o ro,size=64k tmpfs {mnt} && exec {sys.executable} -c "$0"'
  out = subprocess.run(
    ["unshare", "-m", "sh", "-c", script, code],
    cwd=ROOT,
    capture_output=True,
    text=True,
    timeout=120,
    env={**os.environ, "JAX_PLATFORMS": "cpu"},
  )
  assert "REFUSED" in out.stdout and "is not writable (Read-only file system)" in out.stdout, (
    out.stdout + out.stderr[-2000:]
  )


def test_infeasible_constraint_fails_with_best_value_seen(tmp_path):
  workdir = tmp_path / "run"
  config = PA.SearchConfig(**{**TINY, "generations": 1, "max_power": 1e-9})
  with pytest.raises(
    PS.InfeasibleError, match=r"--config.max_power=1e-09: the best power of 12 eval"
  ):
    _run(config, str(workdir))
  header = (workdir / "pareto.csv").read_text().splitlines()
  assert len(header) == 1 and "accuracy" in header[0]  # a header, not a 0-byte file
  assert json.loads((workdir / "summary.json").read_text())["feasible_designs"] == 0
  assert len((workdir / "evaluations.csv").read_text().splitlines()) == 1 + 12


def test_cli_refuses_at_start_with_nonzero_exit(tmp_path):
  workdir = tmp_path / "run"
  workdir.mkdir()
  (workdir / "pareto.csv").write_text("an earlier run's front\n")
  out = subprocess.run(
    [sys.executable, "-m", "nf_jax.pareto", f"--workdir={workdir}"],
    cwd=ROOT,
    capture_output=True,
    text=True,
    timeout=120,
    env={**os.environ, "JAX_PLATFORMS": "cpu"},
  )
  assert out.returncode != 0, out.stderr[-2000:]
  assert "error: --workdir=" in out.stderr and "holds another run (pareto.csv)" in out.stderr
  assert (workdir / "pareto.csv").read_text() == "an earlier run's front\n"


# ---------------------------------------------------------------------------------------------
# A given data_dir is used or refused, never replaced by Debian's copy


def test_given_data_dir_missing_or_partial_is_an_error_not_debians_copy(tmp_path):
  from nf_jax import data

  with pytest.raises(data.DatasetNotFoundError, match=r"data_dir='.*nowhere' does not exist"):
    data.load("fashion_mnist", data_dir=str(tmp_path / "nowhere"))
  (tmp_path / "file").write_text("x")
  with pytest.raises(data.DatasetNotFoundError, match=r"data_dir='.*file' is a file"):
    data.load("fashion_mnist", data_dir=str(tmp_path / "file"))
  partial = tmp_path / "partial" / "fashion-mnist"  # the <data_dir>/<name> layout
  partial.mkdir(parents=True)
  for stem in data.IDX_FILES["train"][:2]:
    (partial / (stem + ".gz")).write_bytes(b"")
  with pytest.raises(data.DatasetNotFoundError) as err:
    data.load("fashion_mnist", data_dir=str(tmp_path / "partial"))
  message = str(err.value)
  assert str(partial) in message and "holds only part" in message
  assert "missing t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]" in message
  assert "train-images" not in message.split("missing")[1]
  # An empty folder: no IDX files and no TFDS data there; Debian's folder is not searched.
  (tmp_path / "empty").mkdir()
  with pytest.raises(data.DatasetNotFoundError) as err:
    data.load("fashion_mnist", data_dir=str(tmp_path / "empty"))
  searched = str(err.value).split("Searched IDX files in: ")[1].split(";")[0]
  assert searched == f"{tmp_path / 'empty'}, {tmp_path / 'empty' / 'fashion-mnist'}"
  assert data._idx_dirs("fashion_mnist", None) == [data.DEBIAN_FASHION_MNIST_DIR]


# ---------------------------------------------------------------------------------------------
# Layers, calibration


def test_sparse_cascade_refuses_non_float_dtypes():
  import jax
  import jax.numpy as jnp

  from nf_jax import topology as T
  from nf_jax.layers import SparseCascade

  t = T.make("butterfly", 16, radix=2)
  for kwargs, field in (
    (dict(param_dtype=jnp.int8), "param_dtype"),
    (dict(param_dtype=jnp.uint8), "param_dtype"),
    (dict(param_dtype="not a dtype"), "param_dtype"),
    (dict(dtype=jnp.int32), "dtype"),
  ):
    with pytest.raises(ValueError, match=rf"SparseCascade {field}=.* is not a floating dtype"):
      SparseCascade(t, **kwargs)
  layer = SparseCascade(t, param_dtype=jnp.bfloat16)  # floating dtypes still work
  params = layer.init(jax.random.PRNGKey(0), jnp.ones((2, 16)))
  assert all(
    w.dtype == jnp.bfloat16 and jnp.any(w != 0) for w in jax.tree.leaves(params["params"])[1:]
  )


def test_calibration_refuses_percent_accuracies_naming_file_and_line(tmp_path):
  import csv

  with open(C.DEFAULT_CSV, newline="") as f:
    rows = list(csv.DictReader(f))
  path = tmp_path / "percent.csv"

  def write(rows):
    with open(path, "w", newline="") as f:
      writer = csv.DictWriter(f, fieldnames=list(rows[0]))
      writer.writeheader()
      writer.writerows(rows)

  finite = [i for i, r in enumerate(rows) if np.isfinite(float(r["test_accuracy"]))]
  percent = [dict(r, test_accuracy=f"{100 * float(r['test_accuracy']):.2f}") for r in rows]
  write(percent)
  first = finite[0]
  with pytest.raises(ValueError) as err:
    C.load_results(str(path))
  value = float(percent[first]["test_accuracy"])
  want = f"calibration={str(path)!r} line {first + 2}: test_accuracy={value:g} is outside [0, 1]"
  assert str(err.value).startswith(want) and "(percent? write" in str(err.value)
  # One bad row among good ones is found too; fractions (the committed CSV) still load.
  mixed = [dict(r) for r in rows]
  mixed[finite[-1]]["test_accuracy"] = "-0.1"
  write(mixed)
  with pytest.raises(ValueError, match=rf"line {finite[-1] + 2}: test_accuracy=-0.1 is outside"):
    C.load_results(str(path))
  specs, acc = C.load_results(C.DEFAULT_CSV)
  assert np.all((acc >= 0) & (acc <= 1))


# ---------------------------------------------------------------------------------------------
# Kernel cache integrity

_KERNEL_CHECK = """
import numpy as np, jax, jax.numpy as jnp
from nf_jax import kernels, topology as T
t = T.make("butterfly", 64, radix=2)
rng = np.random.default_rng(0)
w = [jnp.asarray(rng.normal(size=s.shape), jnp.float32) for s in t.stages]
x = jnp.asarray(rng.normal(size=(8, 64)), jnp.float32)
got = kernels.cascade_matmul(x, w, t, impl="cpu_ffi")
ref = x @ kernels.cascade_dense_matrix(w, t)
np.testing.assert_allclose(np.asarray(got), np.asarray(ref), rtol=1e-4, atol=1e-4)
print("KERNEL OK")
"""


@pytest.fixture(scope="module")
def built_kernel():
  """A verified build of the C++ kernel (in the default cache) and its integrity record."""
  from nf_jax.kernels import cpu_ffi

  why = cpu_ffi.refusal()
  if why is not None:
    pytest.skip(f"cpu_ffi cannot build here: {why}")
  path = cpu_ffi._library_path()
  return path, cpu_ffi._record_path(path)


def test_kernel_cache_problems_are_named(built_kernel, tmp_path):
  from nf_jax.kernels import cpu_ffi

  real, record = built_kernel
  assert cpu_ffi.cache_problem(real) is None
  assert json.loads(record.read_text())["size"] == real.stat().st_size
  lib = tmp_path / real.name
  assert cpu_ffi.cache_problem(lib) is None  # absent: simply built
  data = real.read_bytes()
  lib.write_bytes(data)
  assert "no integrity record" in cpu_ffi.cache_problem(lib)
  cpu_ffi._record_path(lib).write_text("{not json")
  assert "record" in cpu_ffi.cache_problem(lib) and "unreadable" in cpu_ffi.cache_problem(lib)
  shutil.copy(record, cpu_ffi._record_path(lib))
  assert cpu_ffi.cache_problem(lib) is None
  lib.write_bytes(data[: len(data) // 3])
  assert f"{len(data) // 3} bytes but was built as {len(data)}" in cpu_ffi.cache_problem(lib)
  lib.write_bytes(data[:100] + bytes([data[100] ^ 1]) + data[101:])
  assert "sha256 differs" in cpu_ffi.cache_problem(lib)


@pytest.mark.parametrize("fault", ["truncated", "garbage"])
def test_bad_cached_kernel_is_rebuilt_with_a_warning(built_kernel, tmp_path, fault):
  """A truncated cached .so used to kill the process (SIGBUS); garbage disabled the kernel."""
  real, record = built_kernel
  cache = tmp_path / "cache"
  cache.mkdir()
  lib = cache / real.name
  data = real.read_bytes()
  if fault == "truncated":
    lib.write_bytes(data[: len(data) // 2])
  else:
    lib.write_bytes(np.random.default_rng(0).integers(0, 256, len(data), np.uint8).tobytes())
  shutil.copy(record, cache / record.name)
  # A stand-in compiler that copies the real build (a real compile takes ~30 s) and logs calls.
  compiler = tmp_path / "fake-cxx"
  compiler.write_text(
    "#!/bin/sh\n"
    f'echo built >> "{tmp_path}/builds"\n'
    'while [ $# -gt 0 ]; do [ "$1" = "-o" ] && out="$2"; shift; done\n'
    f'cp "{real}" "$out"\n'
  )
  compiler.chmod(0o755)
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "NF_JAX_CACHE": str(cache), "CXX": str(compiler)}
  out = subprocess.run(
    [sys.executable, "-c", _KERNEL_CHECK],
    cwd=ROOT,
    env=env,
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert out.returncode == 0 and "KERNEL OK" in out.stdout, (out.returncode, out.stderr[-3000:])
  reason = "truncated or partial" if fault == "truncated" else "sha256 differs"
  warnings = [ln for ln in out.stderr.splitlines() if "WARNING" in ln and "rebuilding" in ln]
  assert len(warnings) == 1 and reason in warnings[0], out.stderr[-3000:]
  assert (tmp_path / "builds").read_text() == "built\n"
  assert lib.read_bytes() == data and json.loads((cache / record.name).read_text()) == json.loads(
    record.read_text()
  )


# ---------------------------------------------------------------------------------------------
# kill -9 at random points of a real CLI run, then --resume


def test_kill9_at_random_points_then_resume_gives_identical_outputs(tmp_path):
  """SIGKILL the CLI at random points (before any checkpoint, inside generations, while the
  outputs are written), restart it (--resume once a checkpoint exists) until it finishes: the
  outputs equal those of an uninterrupted run. Bounded: each wait has a deadline. (This
  replaces test_pareto.py's single-kill test, so the suite runs only ~3 more processes.)"""
  import signal
  import time

  seed = int(time.time())  # new kill points each run; the seed is printed on failure
  rng = np.random.default_rng(seed)
  seed_note = f"kill delays drawn with np.random.default_rng({seed})"
  tiny = dict(TINY, generations=3)
  args = [f"--config.{k}={','.join(v) if isinstance(v, tuple) else v}" for k, v in tiny.items()]
  env = {
    **os.environ,
    "JAX_PLATFORMS": "cpu",
    # Later processes reuse the first one's compiled simulator (a restart costs seconds).
    "JAX_COMPILATION_CACHE_DIR": str(tmp_path / "jax-cache"),
    "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
  }

  def start(workdir, resume, devices=1):
    cmd = [sys.executable, "-m", "nf_jax.pareto", f"--workdir={workdir}", *args]
    return subprocess.Popen(
      cmd + ["--resume"] * resume,
      cwd=ROOT,
      env={**env, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"},
      stdout=subprocess.DEVNULL,
      stderr=subprocess.PIPE,
      text=True,
    )

  def generation(workdir):
    try:
      return json.loads((workdir / PS.CHECKPOINT).read_text())["checkpoint"]["generation"]
    except (OSError, ValueError):
      return -1

  reference = tmp_path / "reference"  # in-process: the CLI builds the same SearchConfig
  PS.run(PA.SearchConfig(**tiny), str(reference), progress=False)
  workdir = tmp_path / "killed"
  # Kill points: during start-up (no checkpoint yet), after generation 1 and 2 are saved (in
  # the next generation's evaluation or save), after the last one (while outputs are written).
  points = [(-1, rng.uniform(0.0, 3.0)), (1, rng.uniform(0.0, 1.0)), (2, rng.uniform(0.0, 1.0))]
  points.append((tiny["generations"], rng.uniform(0.0, 0.5)))
  kills, resumes = 0, 0
  for after, delay in points:
    resumes += generation(workdir) >= 0
    proc = start(workdir, resume=generation(workdir) >= 0)
    deadline = time.time() + 120
    while generation(workdir) < after and proc.poll() is None and time.time() < deadline:
      time.sleep(0.05)
    time.sleep(delay)
    if proc.poll() is None:
      os.kill(proc.pid, signal.SIGKILL)
      kills += 1
    proc.wait()
    if proc.returncode not in (0, -signal.SIGKILL):
      pytest.fail(f"{seed_note}; run failed: {proc.stderr.read()[-2000:]}")
  # The last part runs sharded over 4 forced CPU devices: population-axis sharding must not
  # change a value either.
  resumed_at = generation(workdir)
  proc = start(workdir, resume=resumed_at >= 0, devices=4)
  assert proc.wait(timeout=300) == 0, f"{seed_note}: {proc.stderr.read()[-2000:]}"
  assert kills >= 2 and resumes >= 2 and resumed_at == tiny["generations"], seed_note
  for name in ("pareto.csv", "evaluations.csv", "hypervolume.csv"):
    assert (workdir / name).read_text() == (reference / name).read_text(), (name, seed_note)
  got = json.loads((workdir / "summary.json").read_text())
  want = json.loads((reference / "summary.json").read_text())
  for key in ("evaluations", "unique_designs", "front_size", "final_hypervolume", "picks"):
    assert got[key] == want[key], (key, seed_note)
  assert got["devices"] == 4
  # Finished generations came from the checkpoint: at most one evaluation per remaining one.
  assert got["batched_evaluations_this_process"] <= tiny["generations"] - max(resumed_at, 0)


# ---------------------------------------------------------------------------------------------
# Training sweeps (experiments/main.py, nf_jax.sweep)

EXPERIMENTS = os.path.join(ROOT, "experiments")
# 4 groups of one model each (dense and a butterfly, 2 seeds), 3 epochs of 3 steps, an Orbax
# checkpoint per epoch: a kill can land before, inside or between groups.
TINY_SWEEP = f"""
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
  if arg:  # "lr=<dense learning rate>,policy=<on_nonfinite>"
    fields = dict(kv.split("=") for kv in arg.split(","))
    config.train.dense_learning_rate = float(fields["lr"])
    config.train.on_nonfinite = fields["policy"]
  return config
"""
TIMINGS = ("seconds", "epoch_seconds", "examples_per_second")  # wall clock: differ run to run


def _tiny_sweep_config(tmp_path, arg=None):
  path = tmp_path / "tiny_sweep.py"
  path.write_text(TINY_SWEEP)
  sys.path.insert(0, str(tmp_path))
  try:
    import tiny_sweep

    return tiny_sweep.get_config(arg)
  finally:
    sys.path.remove(str(tmp_path))
    sys.modules.pop("tiny_sweep", None)


def _sweep_rows(workdir):
  strip = lambda rows: [{k: v for k, v in r.items() if k not in TIMINGS} for r in rows]  # noqa: E731
  return (
    strip(R.read_results(os.path.join(workdir, "results.csv"))),
    strip(R.read_curves(os.path.join(workdir, "curves.jsonl"))),
  )


def test_kill9_of_a_training_sweep_then_resume_gives_identical_rows(tmp_path):
  """SIGKILL ``experiments/main.py`` at random points (start-up, inside a group between its
  epoch checkpoints, between groups), rerun the same command until it finishes: results.csv
  (accuracies, losses) and curves.jsonl equal an uninterrupted run's."""
  import signal
  import time

  seed = int(time.time())
  rng = np.random.default_rng(seed)
  seed_note = f"kill delays drawn with np.random.default_rng({seed})"
  config_path = tmp_path / "tiny_sweep.py"
  config_path.write_text(TINY_SWEEP)
  env = {
    **os.environ,
    "JAX_PLATFORMS": "cpu",
    # Later processes reuse the first one's compiled programs (a restart costs seconds).
    "JAX_COMPILATION_CACHE_DIR": str(tmp_path / "jax-cache"),
    "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
  }

  logs = []

  def start(workdir):
    cmd = [sys.executable, os.path.join(EXPERIMENTS, "main.py"), f"--workdir={workdir}"]
    logs.append(tmp_path / f"log-{len(logs)}.txt")  # a file: a full pipe would block the run
    with logs[-1].open("w") as log:
      return subprocess.Popen(
        cmd + [f"--config={config_path}", "--noprogress"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log,
      )

  def wait(proc, timeout):
    try:
      return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
      proc.kill()
      proc.wait()
      pytest.fail(f"{seed_note}: no exit within {timeout} s: {logs[-1].read_text()[-3000:]}")

  def progress(workdir):
    """Rows written, plus a half for a group with a finished epoch checkpoint."""
    try:
      rows = (workdir / "results.csv").read_text().count("\n") - 1
    except OSError:
      rows = 0
    partial = any(p.name.isdigit() for p in workdir.glob("groups/*/checkpoints/*"))
    return max(rows, 0) + 0.5 * partial

  reference = tmp_path / "reference"
  assert wait(start(reference), 300) == 0, logs[-1].read_text()[-3000:]
  workdir = tmp_path / "killed"
  # Kill points: start-up, inside a group (as soon as its first epoch is checkpointed: 2 more
  # epochs and saves follow), between groups.
  points = [(0, rng.uniform(0.0, 3.0)), (0.5, 0.0), (2, rng.uniform(0.0, 1.0))]
  kills = 0
  for after, delay in points:
    proc = start(workdir)
    deadline = time.time() + 120
    while progress(workdir) < after and proc.poll() is None and time.time() < deadline:
      time.sleep(0.02)
    time.sleep(delay)
    if proc.poll() is None:
      os.kill(proc.pid, signal.SIGKILL)
      kills += 1
    if wait(proc, 300) not in (0, -signal.SIGKILL):
      pytest.fail(f"{seed_note}; run failed: {logs[-1].read_text()[-3000:]}")
  assert wait(start(workdir), 300) == 0, f"{seed_note}: {logs[-1].read_text()[-3000:]}"
  assert kills >= 2, seed_note
  # The kill inside a group left a checkpoint that the next run resumed from.
  assert any("resumed 1 models from step" in log.read_text() for log in logs), seed_note
  got, want = _sweep_rows(workdir), _sweep_rows(reference)
  key = lambda r: (r["name"], r["train_seed"])  # noqa: E731
  assert sorted(got[0], key=key) == sorted(want[0], key=key), seed_note
  assert len(got[0]) == 4 and len({r["test_accuracy"] for r in got[0]}) > 1
  curve_key = lambda c: (c["key"], c["epoch"])  # noqa: E731
  assert sorted(got[1], key=curve_key) == sorted(want[1], key=curve_key), seed_note


@pytest.mark.parametrize("name", ["results.csv", "curves.jsonl"])
@pytest.mark.parametrize("damage", ["truncated", "garbage line", "short row"])
def test_damaged_results_or_curves_name_the_file_before_training(
  tmp_path, monkeypatch, name, damage
):
  from nf_jax import sweep
  from nf_jax import train as tr

  config = _tiny_sweep_config(tmp_path)
  workdir = tmp_path / "run"
  workdir.mkdir()
  row = {c: "" for c in R.RESULT_COLUMNS}
  row.update(
    name="dense", n="32", epochs="2", test_accuracy="0.5", recipe=sweep.recipe_hash(config)
  )
  R.write_results(str(workdir / "results.csv"), [row])
  R.write_curves(str(workdir / "curves.jsonl"), [{"epoch": 1, "key": ["dense"]}] * 2)
  sweep.check_recipe(config, str(workdir), [])
  path = workdir / name
  text = path.read_text()
  if damage == "truncated":
    text = text[:-7]
  elif damage == "garbage line":
    text += "{not json,\n" if name.endswith("jsonl") else "dense,32\n"
  else:
    text = text.replace("}\n", "\n", 1) if name.endswith("jsonl") else text.replace(",0.5,", ",", 1)
  path.write_text(text)

  def no_training(*args, **kwargs):
    raise AssertionError("training started before the damaged file was found")

  monkeypatch.setattr(tr, "train_sweep", no_training)
  with pytest.raises(ValueError, match=f"{path}.*(truncated|line \\d).*damaged"):
    sweep.run(config, str(workdir), progress=False)


@pytest.mark.parametrize("policy", ["mark", "stop"])
def test_nan_mid_sweep_follows_on_nonfinite(tmp_path, monkeypatch, policy):
  """The dense models' own learning rate (1e30) makes their loss non-finite after a step:
  "mark" records them with NaN accuracy, counts them as diverged and trains the butterflies on;
  "stop" raises before any row is written, naming the model and the fix."""
  from nf_jax import sweep
  from nf_jax import train as tr

  monkeypatch.setattr(sweep, "plot", lambda *a, **k: None)
  config = _tiny_sweep_config(tmp_path, f"lr=1e30,policy={policy}")
  config.max_models_per_group = 12  # one program per shape: dense (2 seeds), butterfly (2)
  workdir = tmp_path / "faulty"
  if policy == "stop":
    with pytest.raises(tr.NonFiniteLossError, match=r"model\(s\): dense.*Lower learning_rate"):
      sweep.run(config, str(workdir), progress=False)
    assert _sweep_rows(workdir) == ([], [])  # no NaN row is ever recorded
    return
  report = sweep.run(config, str(workdir), progress=False)
  rows, curves = _sweep_rows(workdir)
  dense = [r for r in rows if r["name"] == "dense"]
  assert len(dense) == 2 and all(r["test_accuracy"] == "nan" for r in dense), dense
  butterflies = [r for r in rows if r["name"] == "butterfly"]
  assert len(butterflies) == 2
  assert all(np.isfinite(float(r[k])) for r in butterflies for k in ("test_accuracy", "final_loss"))
  diverged = {s["name"]: s["diverged"] for s in report["summary"]}
  assert diverged == {"dense": 2, "butterfly": 0}
  assert len(curves) == 4 * 3  # every model keeps its curve (3 epochs)
