"""The pymoo problem: the joint topology x accelerator genome, its decoder and its evaluation.

Genome: ``int[N_GENES]``, every gene an index into a choice list (:data:`GENES`). Decoding
(:func:`decode_topology`, :func:`decode_hw`) *repairs* instead of refusing, so every integer
vector in the bounds is a valid design:

* the model is the study's MLP (:mod:`nf_jax.train`): two hidden cascade layers of width ``n``
  (the first ``784 -> n``) and a dense ``n -> 10`` head;
* families that cannot narrow (butterfly, parallel_butterfly, clos, block_diagonal) need
  ``n >= 784``, so their width is raised to 1024;
* the radix gene is snapped to the nearest radix for which the family is valid at ``n`` (for a
  butterfly, ``n`` must be a power of the radix); for ``random`` it is the fan-in;
* depth is a level in ``{1/4, 1/2, 3/4, 1}`` of the full-mixing depth ``ceil(log_radix n)``
  (clos always has 3 stages, dense 1).

Evaluation of a population (:class:`Evaluator`): the accuracy model scores each *distinct*
hidden topology once (cached by spec), and the hardware simulator runs ONE jitted, vmapped
call over all (config, workload) pairs of the generation. The public ``nf_jax.hw.simulate``
takes one workload shared by all configs; candidates here differ in topology, so we vmap the
simulator's per-config kernel over both axes (``nf_jax.hw.evaluate_pairs``), padding every
workload to a common stage count with stages that belong to no cascade (segment ids out of
range, which ``jax.ops.segment_sum`` drops) and zero width (so they add no MACs, weights or
I/O). The test suite checks this equals ``nf_jax.hw.simulate`` per candidate. The population
axis is sharded over all devices with ``jax.sharding`` (see :func:`population_mesh`).

The vectorised pymoo ``Problem`` (:class:`CoDesignProblem`) evaluates one population per call:
``F`` the six objectives to minimise (:func:`to_minimisation`), ``G`` the constraints.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import jax
import numpy as np
from absl import logging
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from pymoo.core.problem import Problem

from nf_jax import hw
from nf_jax import topology as T
from nf_jax.hw import fabric
from nf_jax.hw.workload import MAX_LOG2_PES, Workload

if TYPE_CHECKING:
  from nf_jax.pareto.config import SearchConfig

D_IN = 784  # Fashion-MNIST pixels: the first hidden layer maps 784 -> n.
NUM_CLASSES = 10
POP_AXIS = "population"

# (gene name, choices). Hardware choices span SCALE-Sim sample configs (8x8 .. 128x128 arrays,
# 32 KiB .. 1 MiB buffers) and common DRAM interfaces (8 GB/s LPDDR4 x16 .. 256 GB/s HBM2 stack).
GENES: tuple[tuple[str, tuple[Any, ...]], ...] = (
  ("family", T.FAMILIES),
  ("depth_level", (0.25, 0.5, 0.75, 1.0)),
  ("radix", (2, 4, 8, 16, 32)),
  ("parallel_width", (1, 2, 4)),
  ("skip", (False, True)),
  ("hidden_width", (256, 512, 1024)),
  ("rows", (8, 16, 32, 64, 128)),
  ("cols", (8, 16, 32, 64, 128)),
  ("dataflow", hw.DATAFLOWS),
  ("precision", hw.PRECISIONS),
  ("sram_kb", (32, 64, 128, 256, 512, 1024)),
  ("clock_ghz", (0.5, 0.8, 1.0, 1.5, 2.0)),
  ("dram_bw_gbs", (8, 16, 32, 64, 128, 256)),
  ("hw_radix", (2, 4, 8)),
)
GENE_NAMES = tuple(g for g, _ in GENES)
N_GENES = len(GENES)
UPPER = np.asarray([len(c) - 1 for _, c in GENES], np.int64)  # inclusive bounds; lower is 0
# Families whose first layer may map 784 -> n < 784 (``Family.narrows``).
NARROWING = tuple(f for f in T.FAMILIES if T.family(f).narrows)
RADIX_CHOICES = dict(GENES)["radix"]


def genome_hash(x: Sequence[int]) -> str:
  """Stable 16-hex-digit key of one genome (the evaluation cache key)."""
  return hashlib.sha256(",".join(str(int(v)) for v in x).encode()).hexdigest()[:16]


def _snap_radix(family: str, n: int, radix: int) -> int:
  """The radix gene's choice nearest ``radix`` (log scale) that ``family`` accepts at width ``n``
  (``Family.valid_radices``; below ``n``, so the cascade is not one dense stage)."""
  valid = set(T.family(family).valid_radices(n))
  ok = [r for r in RADIX_CHOICES if r in valid and r < n]
  return min(ok, key=lambda r: (abs(math.log2(r) - math.log2(radix)), r))


def decode_topology(x: Sequence[int]) -> tuple[str, int, dict[str, Any]]:
  """Topology genes -> ``(family, n, T.make params)`` of the hidden ``n x n`` cascade (repaired).

  Read from the family's registry record (:func:`nf_jax.topology.family`): families that do not
  narrow get ``n >= 1024``; the radix gene is snapped into ``valid_radices`` and becomes the
  family's ``radix_param``; ``depth_level`` scales the full depth unless the depth is fixed; the
  parallel gene becomes ``width`` through ``Family.genome_width``. These rules fix the space of
  :func:`topology_space`, whose hash keys the committed benchmark table: keep them as they are.
  """
  g = {
    name: choices[int(np.clip(int(v), 0, len(choices) - 1))] for (name, choices), v in zip(GENES, x)
  }
  family, n = g["family"], int(g["hidden_width"])
  fam = T.family(family)
  if not fam.narrows:
    n = max(n, 1024)
  level = g["depth_level"]
  params: dict[str, Any] = {"skip": bool(g["skip"])}
  if fam.radix_param is None:  # no radix: the family's default depth
    params["depth"] = fam.default_depth(n, n, 0)
    return family, n, params
  r = _snap_radix(family, n, int(g["radix"]))
  params[fam.radix_param] = r
  if not fam.fixed_depth:
    # The full depth: the family's default where the first layer narrows from D_IN, else the
    # rounded log_radix(n) (it differs from block_diagonal's ceil default; the space keeps it).
    full = fam.default_depth(n, D_IN, r) if fam.narrows else max(1, round(math.log(n, r)))
    params["depth"] = max(1, round(level * full))
  if fam.genome_width is not None:
    params["width"] = fam.genome_width(r, int(g["parallel_width"]))
  return family, n, params


def topology_space() -> list[tuple[str, int, dict[str, Any]]]:
  """Every distinct hidden topology the genome decodes to (248 specs), in a fixed order."""
  seen: dict[str, tuple[str, int, dict[str, Any]]] = {}
  for combo in itertools.product(*(range(len(c)) for _, c in GENES[:6])):
    spec = decode_topology(list(combo) + [0] * (N_GENES - 6))
    seen.setdefault(topology_key(*spec), spec)
  return list(seen.values())


def topology_key(family: str, n: int, params: dict[str, Any]) -> str:
  """Canonical string of a hidden-topology spec (the score cache key): ``TopologySpec.key``."""
  return T.TopologySpec(family, n, None, params).key


def model_topologies(family: str, n: int, params: dict[str, Any]) -> tuple[T.Topology, T.Topology]:
  """The MLP's two hidden cascades: ``784 -> n`` then ``n -> n`` (as :mod:`nf_jax.train`)."""
  return T.make(family, n, n_in=D_IN, **params), T.make(family, n, **params)


def model_params(family: str, n: int, params: dict[str, Any]) -> int:
  """Weights of the whole MLP (both cascades + the dense head; biases excluded)."""
  first, hidden = model_topologies(family, n, params)
  return first.num_params + hidden.num_params + n * NUM_CLASSES


def decode_hw(xs: np.ndarray, tech_nm: float = 45.0) -> hw.HwConfig:
  """Hardware genes of ``xs: int[P, N_GENES]`` -> a batched :class:`nf_jax.hw.HwConfig` ``[P]``."""
  xs = np.clip(np.asarray(xs, np.int64), 0, UPPER)
  col = {
    name: np.asarray(choices, dtype=object)[xs[:, i]] for i, (name, choices) in enumerate(GENES)
  }
  sram = col["sram_kb"].astype(np.float64)
  return hw.make_config(
    rows=col["rows"].astype(np.int64),
    cols=col["cols"].astype(np.int64),
    dataflow=xs[:, GENE_NAMES.index("dataflow")],
    precision=xs[:, GENE_NAMES.index("precision")],
    ifmap_sram_kb=sram,
    filter_sram_kb=sram,
    ofmap_sram_kb=sram / 2,
    dram_bw_gbs=col["dram_bw_gbs"].astype(np.float64),
    clock_ghz=col["clock_ghz"].astype(np.float64),
    radix=col["hw_radix"].astype(np.int64),
    tech_nm=np.full(len(xs), tech_nm),
  )


def describe(x: Sequence[int]) -> dict[str, Any]:
  """Decoded, human-readable genes of one genome (what ``pareto.csv`` lists)."""
  family, n, params = decode_topology(x)
  cfg = hw.describe(decode_hw(np.asarray([x])), 0)
  return dict(
    family=family,
    n=n,
    depth=params.get("depth", 3),
    radix=params.get("radix", ""),
    fan_in=params.get("fan_in", ""),
    width=params.get("width", ""),
    skip=params["skip"],
    rows=cfg["rows"],
    cols=cfg["cols"],
    dataflow=cfg["dataflow"],
    precision=cfg["precision"],
    sram_kb=cfg["ifmap_sram_kb"],
    clock_ghz=round(cfg["clock_ghz"], 3),
    dram_bw_gbs=cfg["dram_bw_gbs"],
    hw_radix=cfg["radix"],
  )


# ---------------------------------------------------------------------------------------------
# Hardware: one jitted vmap over (config, workload) pairs, sharded over the population axis.


def padded_workload(wl: Workload, num_stages: int) -> Workload:
  """``wl`` with cascade arrays padded to ``num_stages`` by inert stages (see module doc).

  Pad stages have zero width and belong to cascade ``num_cascades`` (out of range for the
  simulator's segment sums, which drop them); ``stage_index = 1`` keeps them out of the input
  I/O count.
  """
  s = int(np.shape(wl.stage_n_out)[0])
  if s > num_stages:
    raise ValueError(f"workload has {s} stages > num_stages={num_stages}")
  pad = num_stages - s
  z = np.zeros(pad, np.int32)
  return Workload(
    batch=np.int32(wl.batch),
    gemm_nk=np.asarray(wl.gemm_nk, np.int32),
    stage_n_in=np.concatenate([wl.stage_n_in, z]),
    stage_n_out=np.concatenate([wl.stage_n_out, z]),
    stage_fan_in=np.concatenate([wl.stage_fan_in, z]),
    stage_skip=np.concatenate([wl.stage_skip, z]),
    stage_index=np.concatenate([wl.stage_index, z + 1]),
    stage_cascade=np.concatenate([wl.stage_cascade, z + wl.num_cascades]),
    stage_cycles_pow2=np.concatenate(
      [wl.stage_cycles_pow2, np.ones((pad, MAX_LOG2_PES + 1), np.float32)]
    ).astype(np.float32),
  )


@functools.partial(jax.jit, static_argnums=(2, 3))
def _simulate_pairs(cfg: hw.HwConfig, wl: Workload, shape: tuple[int, int], mapping: str) -> dict:
  return fabric.evaluate_pairs(cfg, wl, shape, mapping)


def population_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
  """1-D mesh over ``devices`` (default: all, across hosts after ``jax.distributed.initialize``)."""
  devices = jax.devices() if devices is None else list(devices)
  return Mesh(np.asarray(devices), (POP_AXIS,))


def _bucket(n: int, multiple: int) -> int:
  """Padded population size: a power of two >= 8, rounded up to a multiple of the devices."""
  b = max(8, 1 << (n - 1).bit_length())
  return -(-b // multiple) * multiple


def simulate_pairs(
  configs: hw.HwConfig,
  workloads: Sequence[Workload],
  mesh: Mesh | None = None,
  min_size: int = 8,
  mapping: str = "latency",
) -> dict[str, np.ndarray]:
  """Simulates config ``i`` on workload ``i`` for every ``i``, in ONE sharded ``jit(vmap)`` call.

  Args:
    configs: batched config, fields ``[P]``.
    workloads: ``P`` workloads; each must have the same number of dense GEMMs.
    mesh: 1-D mesh over which the population axis is sharded (default: all devices).
    min_size: pad the batch to at least this many pairs (a fixed size compiles once per run).
    mapping: the simulator's memory model (``nf_jax.hw.fabric.MAPPINGS``).

  Returns:
    The outputs of :func:`nf_jax.hw.simulate` (``latency_s``, ``throughput``, ``power_w``,
    ``area_mm2``, ...), each ``float32[P]``.
  """
  if mapping not in fabric.MAPPINGS:
    raise ValueError(f"mapping={mapping!r}; choose from {fabric.MAPPINGS}")
  p = len(workloads)
  if np.size(configs.rows) != p:
    raise ValueError(f"{np.size(configs.rows)} configs but {len(workloads)} workloads")
  if len({np.shape(w.gemm_nk)[0] for w in workloads}) != 1:
    raise ValueError("workloads must all have the same number of dense layers")
  mesh = population_mesh() if mesh is None else mesh
  # Static shapes rounded up (at least the genome's 2 x 10 stages) so a run compiles once.
  stages = 8 * -(-max(max(int(np.size(w.stage_n_out)) for w in workloads), 24) // 8)
  casc = 4 * -(-max(w.num_cascades for w in workloads) // 4)
  depth = 4 * -(-max(max(w.max_depth for w in workloads), 12) // 4)
  padded = [padded_workload(w, stages) for w in workloads]
  padded = [
    w._replace(stage_cascade=np.where(w.stage_n_out == 0, casc, w.stage_cascade)) for w in padded
  ]
  size = _bucket(max(p, min_size), mesh.devices.size)
  idx = np.concatenate([np.arange(p), np.full(size - p, p - 1)])
  cfg = hw.HwConfig(*(np.atleast_1d(np.asarray(f))[idx] for f in configs))
  wl = Workload(
    *(np.stack([np.asarray(padded[i][k]) for i in idx]) for k in range(len(Workload._fields)))
  )
  sharding = NamedSharding(mesh, PartitionSpec(POP_AXIS))
  cfg, wl = jax.device_put((cfg, wl), sharding)
  out = _simulate_pairs(cfg, wl, (casc, depth), mapping)
  if jax.process_count() > 1:  # multi-host: every process gets the whole population back
    from jax.experimental import multihost_utils

    out = multihost_utils.process_allgather(out, tiled=True)
  return {k: np.asarray(v)[:p] for k, v in out.items()}


# ---------------------------------------------------------------------------------------------
# Objectives


OBJECTIVES = ("accuracy", "params", "throughput", "latency", "power", "area")
MAXIMISED = ("accuracy", "throughput")


def to_minimisation(objs: dict[str, np.ndarray]) -> np.ndarray:
  """Natural objectives -> ``float[P, 6]`` to minimise: ``1 - accuracy`` and log10 of the rest
  (negated for throughput), so all six have comparable ranges for NSGA-III's normalisation."""
  return np.stack(
    [
      1.0 - objs["accuracy"],
      np.log10(objs["params"]),
      -np.log10(objs["throughput"]),
      np.log10(objs["latency"]),
      np.log10(objs["power"]),
      np.log10(objs["area"]),
    ],
    axis=1,
  )


_WORKLOADS: dict[tuple[str, int], Workload] = {}


def model_workload(spec: tuple[str, int, dict[str, Any]], batch: int) -> Workload:
  """The MLP's simulator workload (memoised per process: building the port-conflict schedules
  in ``nf_jax.hw.make_workload`` takes ~0.5 s per topology, the main per-design cost)."""
  key = (topology_key(*spec), batch)
  if key not in _WORKLOADS:
    layers = [*model_topologies(*spec), ("dense", spec[1], NUM_CLASSES)]
    _WORKLOADS[key] = hw.make_workload(layers, batch)
  return _WORKLOADS[key]


Spec = tuple[str, int, dict[str, Any]]  # (family, n, T.make params) of the hidden cascade
AccuracyFn = Callable[[list[Spec]], np.ndarray]


class Evaluator:
  """Evaluates populations with caches (a search checkpoint saves them as JSON data).

  Attributes:
    accuracy_fn: maps distinct hidden-topology specs to accuracies ``float[k]`` in [0, 1].
    batch: samples per inference batch for latency/throughput.
    tech_nm: technology node of every config.
    mapping: the simulator's memory model (``nf_jax.hw.fabric.MAPPINGS``).
    cache: genome hash -> objective dict (floats) of every design evaluated so far.
    calls: number of batched evaluations run (one per generation).
  """

  def __init__(
    self,
    accuracy_fn: AccuracyFn,
    batch: int = 64,
    tech_nm: float = 45.0,
    mapping: str = "latency",
  ):
    self.accuracy_fn = accuracy_fn
    self.batch = batch
    self.tech_nm = tech_nm
    self.mapping = mapping
    self.cache: dict[str, dict[str, float]] = {}
    self.accuracy_cache: dict[str, float] = {}
    self.calls = 0
    self.pad_to = 8  # simulator batch padding (the population size: one compile per run)
    self.mesh: Mesh | None = None

  def __getstate__(self) -> dict:
    state = dict(self.__dict__)
    state["accuracy_fn"] = None  # re-attached on resume (holds jitted functions / datasets)
    state["mesh"] = None
    return state

  def evaluate(self, xs: np.ndarray) -> dict[str, np.ndarray]:
    """Objectives of a population ``int[P, N_GENES]``: ``{name: float64[P]}`` for OBJECTIVES.

    New genomes only: one accuracy call over their distinct, unscored topologies and ONE
    simulator call over their (config, workload) pairs. Cached genomes cost nothing.
    """
    xs = np.clip(np.rint(np.asarray(xs)).astype(np.int64), 0, UPPER)
    keys = [genome_hash(x) for x in xs]
    todo = sorted({k: i for i, k in reversed(list(enumerate(keys)))}.items(), key=lambda kv: kv[1])
    todo = [(k, i) for k, i in todo if k not in self.cache]
    if todo:
      self.calls += 1
      rows = xs[[i for _, i in todo]]
      specs = [decode_topology(x) for x in rows]
      tkeys = [topology_key(*s) for s in specs]
      new = {}
      for k, s in zip(tkeys, specs):
        if k not in self.accuracy_cache and k not in new:
          new[k] = s
      if new:
        acc = np.asarray(self.accuracy_fn(list(new.values())), np.float64)
        self.accuracy_cache.update({k: float(a) for k, a in zip(new, acc)})
      workloads = [model_workload(s, self.batch) for s in specs]
      if self.mesh is None:
        self.mesh = population_mesh()
      sim = simulate_pairs(
        decode_hw(rows, self.tech_nm), workloads, self.mesh, self.pad_to, self.mapping
      )
      for j, ((key, _), s, tk) in enumerate(zip(todo, specs, tkeys)):
        self.cache[key] = dict(
          accuracy=self.accuracy_cache[tk],
          params=float(model_params(*s)),
          throughput=float(sim["throughput"][j]),
          # Batch-1 latency: at batch B, latency = B / throughput and the two objectives would
          # be one; a single sample's latency is what latency-bound deployments care about.
          latency=float(sim["latency_b1_s"][j]),
          power=float(sim["power_w"][j]),
          area=float(sim["area_mm2"][j]),
          energy=float(sim["energy_per_sample_j"][j]),
        )
      logging.info("evaluated %d new designs (%d distinct new topologies)", len(todo), len(new))
    return {o: np.asarray([self.cache[k][o] for k in keys], np.float64) for o in OBJECTIVES}


# ---------------------------------------------------------------------------------------------
# The pymoo problem


class CoDesignProblem(Problem):
  """The vectorised pymoo ``Problem``: one ``_evaluate`` call per population.

  ``F``: ``float[P, 6]`` minimised objectives (:func:`to_minimisation`);
  ``G``: ``float[P, len(config.constraints)]``, ``<= 0`` where feasible.
  """

  def __init__(self, config: SearchConfig, evaluator: Evaluator):
    super().__init__(
      n_var=N_GENES,
      n_obj=6,
      n_ieq_constr=len(config.constraints),
      xl=np.zeros(N_GENES),
      xu=UPPER.astype(float),
      vtype=int,
    )
    self.config = config
    self.evaluator = evaluator

  def _evaluate(self, x, out, *args, **kwargs):
    config = self.config
    objs = self.evaluator.evaluate(x)
    out["F"] = to_minimisation(objs)
    g = []
    if config.max_area is not None:
      g.append(objs["area"] - config.max_area)
    if config.max_power is not None:
      g.append(objs["power"] - config.max_power)
    if config.min_accuracy is not None:
      g.append(config.min_accuracy - objs["accuracy"])
    if g:
      out["G"] = np.stack(g, axis=1)
