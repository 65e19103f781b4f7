"""The search loop: run (or resume) a co-design search and checkpoint it after every generation.

The search space is the joint genome of :mod:`nf_jax.pareto.problem` (topology family, depth,
radix or fan-in, parallel width, skip, hidden width; PE array rows/cols, dataflow, precision,
SRAM, clock, DRAM bandwidth, interconnect radix). Six objectives, named as in the outputs:
``accuracy`` (maximised), ``params``, ``throughput`` (maximised), ``latency``, ``power``,
``area``. Accuracy comes from :mod:`nf_jax.pareto.accuracy`.

One generation is one batched evaluation: the distinct new topologies are scored together and
the simulator runs once, ``jit(vmap)`` over the (config, workload) pairs, sharded over devices.
The loop is pymoo ask/tell over the algorithm of :func:`nf_jax.pareto.operators.make_algorithm`
(or the one passed as ``algorithm=``); after each generation the evaluation caches and the log
are checkpointed atomically (the algorithm is rebuilt by a cached replay, see
:class:`SearchState`), so ``resume=True`` continues a killed run without re-evaluating finished
generations and ends with the same front. Outputs: :mod:`nf_jax.pareto.report`.

Multi-host: call ``jax.distributed.initialize()`` before :func:`run` on every host (the CLI's
flags of :mod:`nf_jax.distributed`); ``jax.devices()`` then spans all hosts and the population
axis is sharded over all of them (results are gathered back with
``multihost_utils.process_allgather``). Every host runs the same deterministic ask/tell loop
(same seed), so they agree on each population; only process 0 writes files, so every host must
see the same workdir (a shared filesystem). Tested with 2 local processes
(``tests/test_multihost.py``).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.resources
import itertools
import json
import os
import time
from typing import Any

import jax
import numpy as np
from absl import logging
from pymoo.core.algorithm import Algorithm
from tqdm.auto import tqdm

from nf_jax import calibration as C
from nf_jax import hw, io_utils
from nf_jax.pareto import accuracy as A
from nf_jax.pareto import operators, report
from nf_jax.pareto import problem as PP
from nf_jax.pareto.config import PYMOO_ALGORITHMS, SearchConfig

CHECKPOINT = "checkpoint.json"


@dataclasses.dataclass
class SearchState:
  """What a checkpoint holds: the evaluator's caches and the evaluation log.

  The pymoo algorithm is not saved (it holds local closures, and restoring an object graph from
  a file would run code from the file). A resumed run rebuilds it from the config and *replays*
  the finished generations: every design of those generations is answered from the evaluation
  cache (no accuracy or simulator call), and because the search is deterministic given the seed
  and the objective values, the replay reaches exactly the state the interrupted run had; the
  replayed log is checked against the checkpoint's. So the checkpoint is plain data: the config,
  the generation counter, the log and the caches (:func:`_save`).
  """

  config: SearchConfig
  evaluator: PP.Evaluator
  generation: int = 0
  log: list[tuple[int, list[int], list[float], list[float]]] = dataclasses.field(
    default_factory=list
  )  # (generation, genome, minimised F, G)


class CheckpointError(ValueError):
  """A checkpoint that cannot be used (corrupt, another format, or another run's settings)."""


CHECKPOINT_FORMAT = "nf_jax.pareto checkpoint"
CHECKPOINT_VERSION = 1
# Written by versions before the JSON checkpoint; never read (unpickling can run code).
LEGACY_CHECKPOINT = "checkpoint.pkl"
_CACHE_FIELDS = PP.OBJECTIVES + ("energy",)


def _file_sha256(path: str) -> str | None:
  if not os.path.isfile(path):
    return None
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      h.update(block)
  return h.hexdigest()


def _config_record(config: SearchConfig) -> dict[str, Any]:
  """``config`` as JSON data; the calibration CSV and benchmark table by content (name + sha256),
  not by path.

  A path would tie the checkpoint to one checkout; the hash lets a moved workdir or repository
  resume while still refusing a different calibration.
  """
  record = dataclasses.asdict(config)
  record["features"] = list(config.features)
  record["calibration"] = dict(
    name=os.path.basename(config.calibration), sha256=_file_sha256(config.calibration)
  )
  if config.accuracy == "table":  # read only then; by content too (the committed one changes)
    record["table"] = _table_record(config.table)
  return record


def _table_record(path: str) -> dict[str, str | None]:
  """The benchmark table's name and sha256 (``""``: the committed package table)."""
  if path:
    return dict(name=os.path.basename(path), sha256=_file_sha256(path))
  from nf_jax import space_table

  data = importlib.resources.files("nf_jax.tables").joinpath(space_table.PACKAGE_TABLE)
  return dict(name=space_table.PACKAGE_TABLE, sha256=hashlib.sha256(data.read_bytes()).hexdigest())


def _canonical(payload: Any) -> str:
  return json.dumps(payload, sort_keys=True, separators=(",", ":"))


def _save(state: SearchState, path: str) -> None:
  """Writes ``state`` as JSON (atomically), with a sha256 of its content.

  Floats go through ``repr`` and read back bit-exact, so the replay check is exact.
  """
  ev = state.evaluator
  payload = dict(
    format=CHECKPOINT_FORMAT,
    version=CHECKPOINT_VERSION,
    config=_config_record(state.config),
    generation=state.generation,
    log=[list(r) for r in state.log],
    evaluator=dict(
      batch=ev.batch,
      tech_nm=ev.tech_nm,
      calls=ev.calls,
      cache=ev.cache,
      accuracy_cache=ev.accuracy_cache,
    ),
  )
  text = _canonical(payload)
  digest = hashlib.sha256(text.encode()).hexdigest()
  io_utils.atomic_write_text(path, f'{{"sha256":"{digest}","checkpoint":{text}}}\n')


def _is_int(v: Any) -> bool:
  return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
  return isinstance(v, (int, float)) and not isinstance(v, bool)


def _load(path: str, config: SearchConfig, acc_fn: PP.AccuracyFn | None = None) -> SearchState:
  """Reads and validates a checkpoint written by :func:`_save` for ``config``.

  Only JSON is parsed: nothing in the file is executed. The content hash, the format, the
  config (every field; the calibration CSV by content hash) and the shape of every record are
  checked before use.

  Raises:
    CheckpointError: unreadable, corrupt or truncated file, another format, or other settings;
      the message names the file, the differing fields and the fix.
  """
  fix = (
    "start again in a new --workdir, or with --overwrite (which discards this run's checkpoint "
    "and outputs)"
  )
  try:
    with open(path, encoding="utf-8") as f:
      outer = json.load(f)
  except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
    raise CheckpointError(
      f"checkpoint {path} is unreadable, truncated or corrupt ({type(err).__name__}: {err}); " + fix
    ) from None
  if not (isinstance(outer, dict) and set(outer) == {"sha256", "checkpoint"}):
    raise CheckpointError(f"checkpoint {path} is not a {CHECKPOINT_FORMAT} file; {fix}")
  payload = outer["checkpoint"]
  if not isinstance(payload, dict) or (
    hashlib.sha256(_canonical(payload).encode()).hexdigest() != outer["sha256"]
  ):
    raise CheckpointError(
      f"checkpoint {path} is corrupt (its content does not match its sha256); {fix}"
    )
  if payload.get("format") != CHECKPOINT_FORMAT or payload.get("version") != CHECKPOINT_VERSION:
    raise CheckpointError(
      f"checkpoint {path} has format {payload.get('format')!r} version "
      f"{payload.get('version')!r}; this code reads {CHECKPOINT_FORMAT!r} version "
      f"{CHECKPOINT_VERSION}; {fix}"
    )
  saved, want = payload.get("config"), _config_record(config)
  if not isinstance(saved, dict):
    raise CheckpointError(f"checkpoint {path} has no config; {fix}")
  diff = {k: (saved.get(k), v) for k, v in want.items() if saved.get(k) != v}
  diff.update({k: (v, None) for k, v in saved.items() if k not in want})
  if diff:
    listed = "; ".join(f"{k}: checkpoint {a!r}, now {b!r}" for k, (a, b) in sorted(diff.items()))
    raise CheckpointError(
      f"--resume: checkpoint {path} was made with other settings ({listed}). Resume with the "
      f"checkpoint's settings, or {fix}"
    )

  def bad(what: str) -> CheckpointError:
    return CheckpointError(f"checkpoint {path} is malformed ({what}); {fix}")

  generation, log, ev = payload.get("generation"), payload.get("log"), payload.get("evaluator")
  if not _is_int(generation) or not 0 <= generation <= config.generations:
    raise bad(f"generation={generation!r} is not in [0, {config.generations}]")
  if not isinstance(log, list) or not isinstance(ev, dict):
    raise bad("no log or evaluator record")
  n_g = len(config.constraints)
  rows: list[tuple[int, list[int], list[float], list[float]]] = []
  last = 0
  for i, r in enumerate(log):
    ok = (
      isinstance(r, list)
      and len(r) == 4
      and _is_int(r[0])
      and last <= r[0] < generation
      and all(isinstance(v, list) for v in r[1:])
      and len(r[1]) == PP.N_GENES
      and all(_is_int(v) and 0 <= v <= u for v, u in zip(r[1], PP.UPPER))
      and len(r[2]) == 6
      and len(r[3]) == n_g
      and all(_is_num(v) for v in r[2] + r[3])
    )
    if not ok:
      raise bad(f"log row {i}: {str(r)[:200]}")
    last = r[0]
    rows.append((r[0], r[1], [float(v) for v in r[2]], [float(v) for v in r[3]]))
  cache, acc_cache = ev.get("cache"), ev.get("accuracy_cache")
  if (
    not isinstance(cache, dict)
    or not isinstance(acc_cache, dict)
    or not _is_int(ev.get("calls"))
    or ev.get("batch") != config.batch
    or not _is_num(ev.get("tech_nm"))
  ):
    raise bad("evaluator record")
  for key, obj in cache.items():
    if not (
      isinstance(obj, dict)
      and set(obj) == set(_CACHE_FIELDS)
      and all(_is_num(v) for v in obj.values())
    ):
      raise bad(f"cache entry {key!r}")
  if not all(_is_num(v) for v in acc_cache.values()):
    raise bad("accuracy cache")
  missing = [r[1] for r in rows if PP.genome_hash(r[1]) not in cache]
  if missing:
    raise bad(f"{len(missing)} logged designs are not in its cache, e.g. {missing[0]}")
  evaluator = PP.Evaluator(
    acc_fn, batch=config.batch, tech_nm=float(ev["tech_nm"]), mapping=config.hw_mapping
  )
  evaluator.pad_to = config.population
  evaluator.calls = ev["calls"]
  evaluator.cache = {k: {f: float(v) for f, v in o.items()} for k, o in cache.items()}
  evaluator.accuracy_cache = {k: float(v) for k, v in acc_cache.items()}
  return SearchState(config, evaluator, generation, rows)


def _check_start(config: SearchConfig, workdir: str | None, resume: bool, overwrite: bool) -> None:
  """Cheap checks before any expensive work: seed, workdir, another run's state, constraints.

  Raises:
    ValueError: the message names the value and the fix.
  """
  if config.seed < 0:
    raise ValueError(f"seed={config.seed} must be >= 0 (pymoo and numpy seeds are unsigned)")
  if resume and overwrite:
    raise ValueError("--resume continues the run in --workdir, --overwrite discards it: pick one")
  if config.max_area is not None:
    smallest = _smallest_area()
    if config.max_area < smallest:
      raise ValueError(
        f"max_area={config.max_area:g} mm^2 is below the smallest accelerator of the search "
        f"space ({smallest:.4g} mm^2: every design would be infeasible); raise "
        f"--config.max_area to at least {smallest:.4g} or drop it"
      )
  if workdir is None:
    if resume:
      raise ValueError(f"--resume needs --workdir (the folder holding {CHECKPOINT})")
    if overwrite:
      raise ValueError("--overwrite needs --workdir (the run it would replace); drop it")
    return
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise ValueError(f"--workdir={workdir} is a file, not a folder; pass a folder path")
  ckpt, legacy = os.path.join(workdir, CHECKPOINT), os.path.join(workdir, LEGACY_CHECKPOINT)
  if resume:
    if not os.path.exists(ckpt):
      old = (
        f"; {legacy} is an old pickle checkpoint, which is not read (loading a pickle can run "
        "code): start again with --overwrite or a new --workdir"
        if os.path.exists(legacy)
        else ""
      )
      raise ValueError(f"--resume needs {ckpt}; it does not exist{old}")
  elif os.path.isdir(workdir):
    held = [
      n
      for n in (CHECKPOINT, LEGACY_CHECKPOINT) + report.OUTPUTS
      if os.path.exists(os.path.join(workdir, n))
    ]
    if held and not overwrite:
      raise ValueError(
        f"--workdir={workdir} holds another run ({', '.join(held)}); continue it with --resume, "
        "pass a new --workdir, or replace it with --overwrite"
      )
  if jax.process_index() == 0:  # only process 0 writes (multi-host: one shared workdir)
    io_utils.check_workdir(workdir)


@functools.cache
def _smallest_area() -> float:
  """Smallest area (mm^2) of any accelerator in the genome: area depends on hardware genes only.

  The hardware genes that change area (rows, cols, precision, SRAM, interconnect radix) are
  enumerated exhaustively (a few thousand configs, one vectorised call).
  """
  names = ("rows", "cols", "precision", "sram_kb", "hw_radix")
  axes = [range(len(dict(PP.GENES)[n])) for n in names]
  combos = np.asarray(list(itertools.product(*axes)), np.int64)
  xs = np.zeros((len(combos), PP.N_GENES), np.int64)
  xs[:, [PP.GENE_NAMES.index(n) for n in names]] = combos
  return float(np.min(hw.area_mm2(PP.decode_hw(xs))))


def _clear_outputs(workdir: str) -> None:
  """Removes another run's checkpoint and outputs (``--overwrite``) so none outlives it."""
  for name in (CHECKPOINT, LEGACY_CHECKPOINT) + report.OUTPUTS:
    path = os.path.join(workdir, name)
    if os.path.isfile(path):
      os.unlink(path)


class InfeasibleError(ValueError):
  """No evaluated design met the constraints; the message gives the best value seen of each."""


def _infeasibility(result: report.SearchResult) -> str:
  """Why no design was feasible: per constraint, the best value any evaluated design reached."""
  config = result.config
  objs = {
    o: np.asarray([result.evaluator.cache[PP.genome_hash(x)][o] for x in result.genomes])
    for o in ("area", "power", "accuracy")
  }
  parts = []
  for name, obj, best, unit in (
    ("max_area", "area", np.min, " mm^2"),
    ("max_power", "power", np.min, " W"),
    ("min_accuracy", "accuracy", np.max, ""),
  ):
    limit = getattr(config, name)
    if limit is not None and len(objs[obj]):
      parts.append(
        f"--config.{name}={limit:g}: the best {obj} of {len(objs[obj])} evaluations is "
        f"{best(objs[obj]):.4g}{unit}"
      )
  return (
    f"no evaluated design meets the constraints ({'; '.join(parts)}). Relax the constraint(s) "
    "named, or search longer (--config.generations); evaluations.csv lists every design"
  )


def run(
  config: SearchConfig,
  workdir: str | None = None,
  resume: bool = False,
  progress: bool = True,
  dataset: Any = None,
  generation_delay_s: float = 0.0,
  accuracy: tuple[PP.AccuracyFn, C.Calibration | None] | None = None,
  overwrite: bool = False,
  algorithm: Algorithm | None = None,
) -> report.SearchResult:
  """Runs (or resumes) a search; writes outputs to ``workdir`` if given.

  Args:
    config: the search settings.
    workdir: output folder (``checkpoint.json`` is written there after each generation).
    resume: continue from ``workdir/checkpoint.json`` (which must hold the same config).
    progress: tqdm progress bar.
    dataset: training data for ``accuracy="train"`` (default Fashion-MNIST).
    generation_delay_s: sleep after each checkpoint (demos and interruption tests only).
    accuracy: ``(accuracy_fn, calibration)`` to use instead of building one from ``config``
      (benchmarks share one memoised model across runs).
    overwrite: replace another run's checkpoint and outputs in ``workdir`` (without it, a
      workdir holding them is refused unless ``resume``).
    algorithm: the pymoo algorithm, not yet set up, to run instead of
      ``operators.make_algorithm(config)`` (benchmarks compare variants this way); ``run``
      sets it up with the problem, ``config.generations`` and ``config.seed``. Not with
      ``config.algorithm="random"``. A resumed run must get an equal one (the replay check
      refuses another).

  Raises:
    ValueError: before any expensive work: a negative seed, a ``max_area`` below every
      accelerator, a workdir that is a file, not writable or holds another run (without
      ``resume``/``overwrite``), ``resume`` without a checkpoint, an ``algorithm`` with
      ``config.algorithm="random"``.
    CheckpointError: a corrupt checkpoint or one of another config (fields named).
    InfeasibleError: at the end, when no evaluated design met the constraints (outputs are
      written first; the message gives the best value seen per constraint).
  """
  _check_start(config, workdir, resume, overwrite)
  if algorithm is not None and config.algorithm not in PYMOO_ALGORITHMS:
    raise ValueError(
      f"algorithm= was given, but config.algorithm={config.algorithm!r} samples designs "
      "uniformly without a pymoo algorithm; drop algorithm= or set config.algorithm"
    )
  ckpt = os.path.join(workdir, CHECKPOINT) if workdir else None
  # Read and validate the checkpoint before building the accuracy model (the costly part).
  done = _load(ckpt, config) if resume and ckpt else None
  acc_fn, cal, details = (
    A.accuracy_model(config, dataset) if accuracy is None else (*accuracy, None)[:3]
  )
  if done is not None:
    evaluator = done.evaluator
    evaluator.accuracy_fn = acc_fn
    logging.info("resuming %s after generation %d", ckpt, done.generation)
  else:
    if overwrite and workdir and jax.process_index() == 0:
      _clear_outputs(workdir)
    evaluator = PP.Evaluator(acc_fn, batch=config.batch, mapping=config.hw_mapping)
    evaluator.pad_to = config.population
  state = SearchState(config, evaluator)
  problem = PP.CoDesignProblem(config, evaluator)
  rng = np.random.default_rng(config.seed)
  if config.algorithm in PYMOO_ALGORITHMS:
    algorithm = operators.make_algorithm(config) if algorithm is None else algorithm
    algorithm.setup(problem, termination=("n_gen", config.generations), seed=config.seed)
  calls_before = evaluator.calls
  bar = tqdm(total=config.generations, desc="pareto", disable=not progress)
  while state.generation < config.generations:
    replay = done is not None and state.generation < done.generation
    if algorithm is None:
      xs = rng.integers(0, PP.UPPER + 1, size=(config.population, PP.N_GENES))
      out = problem.evaluate(xs, return_as_dictionary=True)
      f, g = out["F"], out.get("G", np.zeros((len(xs), 0)))
    else:
      pop = algorithm.ask()
      algorithm.evaluator.eval(problem, pop)
      algorithm.tell(infills=pop)
      xs, f = pop.get("X"), pop.get("F")
      g = pop.get("G") if config.constraints else np.zeros((len(xs), 0))
    for x, fi, gi in zip(xs, f, g):
      state.log.append(
        (
          state.generation,
          [int(v) for v in np.rint(x)],
          [float(v) for v in fi],
          [float(v) for v in gi],
        )
      )
    state.generation += 1
    if replay:
      # Compared as JSON text: a NaN objective equals itself there (not in a list compare).
      if state.generation == done.generation and _canonical(state.log) != _canonical(done.log):
        raise CheckpointError(
          f"--resume: replaying the {done.generation} generations of {ckpt} gave other designs "
          "than its log (a checkpoint of another code version, or edited); start again in a new "
          "--workdir, or with --overwrite"
        )
    elif ckpt is not None and jax.process_index() == 0:
      _save(state, ckpt)
    bar.update(1)
    bar.set_postfix(evals=len(state.log), cache=len(evaluator.cache))
    if generation_delay_s and not replay:
      time.sleep(generation_delay_s)
  bar.close()
  result = _result(state, evaluator.calls - calls_before, cal)
  result.accuracy_details = details
  if workdir and jax.process_index() == 0:
    report.write_outputs(result, workdir)
  if config.constraints and not result.feasible.any():
    raise InfeasibleError(_infeasibility(result))
  return result


def _result(state: SearchState, calls: int, cal: C.Calibration | None) -> report.SearchResult:
  genomes = np.asarray([r[1] for r in state.log], np.int64).reshape(-1, PP.N_GENES)
  gens = np.asarray([r[0] for r in state.log], np.int64)
  f = np.asarray([r[2] for r in state.log], np.float64).reshape(-1, 6)
  g = [r[3] for r in state.log]
  feasible = np.asarray([all(v <= 0 for v in gi) for gi in g], bool)
  idx = np.flatnonzero(feasible)
  # Unique designs only (an elitist algorithm re-reports survivors; the log keeps offspring).
  _, first = np.unique(genomes[idx], axis=0, return_index=True) if len(idx) else ([], [])
  idx = idx[np.sort(np.asarray(first, np.int64))]
  front = idx[report.nondominated(f[idx])] if len(idx) else idx
  lo, hi = (f.min(0), f.max(0)) if len(f) else (np.zeros(6), np.ones(6))
  hv = []
  for gen in range(state.generation):
    sel = idx[gens[idx] <= gen]
    hv.append(report.hypervolume(f[sel][report.nondominated(f[sel])], lo, hi) if len(sel) else 0.0)
  return report.SearchResult(
    state.config, genomes, gens, f, feasible, front, hv, state.evaluator, calls, cal
  )
