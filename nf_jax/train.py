"""MLP classifiers with sparse-cascade hidden layers, trained as vmapped, sharded sweeps.

Model (:class:`ModelSpec`, built as the Flax module :class:`Classifier`): ``num_layers`` hidden
layers of width ``n`` with ReLU, then a dense ``n -> num_classes`` head. Every hidden layer is a
:class:`nf_jax.layers.SparseCascade` of the same family and parameters; the *first* one is
rectangular, ``T.make(name, n, n_in=d_in, ...)`` (``d_in = 784`` for Fashion-MNIST), so the
whole hidden stack is sparse and no dense input projection hides the topology.
``name="dense"`` is the baseline: ``nn.Dense`` layers at the same widths.

Sweeps (:func:`train_sweep`): M models whose parameter pytrees have equal shapes (seeds x
topologies x weight inits of one shape signature) train in *one* jitted, ``vmap``-ed step. The
leading model axis of every parameter, optimiser state and batch-index array is sharded over a
1-D ``jax.sharding.Mesh`` (axis ``"models"``) with ``NamedSharding``, so with D devices each
holds M / D models (M is padded to a multiple of D). Topologies whose tables differ (e.g. two
``random`` seeds, or ``butterfly`` vs ``block_diagonal`` at equal radix and depth) share one
static structure, and their tables go to the module as a pytree argument
(:class:`nf_jax.kernels.CascadeTables`, stacked ``int32`` arrays vmapped per model); identical
ones stay static constants.

Checkpoints: Orbax ``CheckpointManager`` under ``<workdir>/checkpoints``; a run resumes from
``latest_step()``. The data order depends only on ``(train_seed, epoch)``, so a resumed run
continues identically. A non-finite loss (or gradient) freezes that model, and with
``on_nonfinite="stop"`` raises :class:`NonFiniteLossError` before any checkpoint of the bad
state is written, so the last good checkpoint stays the latest.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
from absl import logging
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from tqdm.auto import tqdm

from nf_jax import kernels, watchdog
from nf_jax import topology as T
from nf_jax.data import Dataset
from nf_jax.layers import INITS, SparseCascade

Params = Any  # a pytree of arrays
MODEL_AXIS = "models"
NONFINITE_POLICIES = ("stop", "mark")
# nf_jax.watchdog deadlines (seconds, 2-core CPU): set-up (init, restore), a compile plus the
# steps before the first host sync, and one ``log_every`` block of steps.
WATCHDOG_SETUP_S = 180.0
WATCHDOG_COMPILE_S = 1200.0
WATCHDOG_STEP_S = 300.0
# Topology parameters that may appear in a spec (T.make keywords), in results-CSV order.
TOPOLOGY_KEYS = ("depth", "radix", "width", "fan_in", "skip", "seed")


class NonFiniteLossError(FloatingPointError):
  """A model's loss or gradient became NaN or inf; the message names the model and step."""


@dataclasses.dataclass(frozen=True)
class ModelSpec:
  """One MLP classifier (hashable; equal specs build equal models).

  Attributes:
    name: a topology family (``T.families()``) for cascade layers, or ``"dense"`` for nn.Dense.
    n: hidden width.
    num_layers: number of hidden layers (each a cascade ``[.., n_in_l] -> [.., n]``).
    topology: sorted ``(key, value)`` pairs passed to ``T.make`` (``depth``, ``radix``,
      ``width``, ``fan_in``, ``skip``, ``seed``); empty for dense.
    weight_init: SparseCascade init (``nf_jax.layers.INITS``).
    train_seed: seeds the init and the data order.
  """

  name: str
  n: int
  num_layers: int = 2
  topology: tuple[tuple[str, Any], ...] = ()
  weight_init: str = "depth_aware"
  train_seed: int = 0

  def __post_init__(self):
    if self.name not in T.families():
      raise ValueError(f"name={self.name!r} is not one of {T.families()}")
    if self.weight_init not in INITS:
      raise ValueError(f"weight_init={self.weight_init!r} is not one of {INITS}")
    if self.num_layers < 1:
      raise ValueError(f"num_layers={self.num_layers} must be >= 1")
    unknown = sorted(k for k, _ in self.topology if k not in TOPOLOGY_KEYS)
    if unknown:
      raise ValueError(f"topology keys {unknown} are not among {TOPOLOGY_KEYS}")
    object.__setattr__(self, "topology", tuple(sorted(dict(self.topology).items())))

  @classmethod
  def create(
    cls,
    name: str,
    n: int,
    num_layers: int = 2,
    weight_init: str = "depth_aware",
    train_seed: int = 0,
    **topology: Any,
  ) -> ModelSpec:
    """``ModelSpec.create("butterfly", 1024, radix=2, depth=10, skip=True)``."""
    return cls(name, n, num_layers, tuple(topology.items()), weight_init, train_seed)

  @property
  def is_dense(self) -> bool:
    """The baseline: nn.Dense hidden layers (``name="dense"`` with no topology params)."""
    return self.name == "dense" and not self.topology

  def hidden_topology(self) -> T.Topology:
    """The square ``n x n`` hidden cascade (what the results CSV describes)."""
    return T.make(self.name, self.n, **dict(self.topology))

  def topologies(self, d_in: int) -> tuple[T.Topology, ...]:
    """Per hidden layer, its topology (the first maps ``d_in -> n``)."""
    params = dict(self.topology)
    first = T.make(self.name, self.n, n_in=d_in, **params)
    return (first,) + (self.hidden_topology(),) * (self.num_layers - 1)

  def model(self, d_in: int, num_classes: int, impl: str = "auto") -> Classifier:
    """The Flax module of this spec on ``d_in`` inputs (init with :func:`init_params`)."""
    topologies = None if self.is_dense else self.topologies(d_in)
    return Classifier(
      num_classes, self.n, self.num_layers, topologies, weight_init=self.weight_init, impl=impl
    )

  def label(self) -> str:
    params = ",".join(f"{k}={v}" for k, v in self.topology)
    return f"{self.name}({params}) init={self.weight_init} seed={self.train_seed}"


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """Optimisation settings shared by every model of a sweep.

  Attributes:
    learning_rate: peak Adam learning rate (cosine-decayed to 0 over the run after a linear
      warmup of ``warmup_steps``).
    batch_size: examples per step per model.
    num_epochs: passes over the training set.
    steps_per_epoch: cap on steps per epoch (None: ``N_train // batch_size``); smoke runs.
    weight_decay: decoupled weight decay (AdamW); 0 gives Adam.
    warmup_steps: linear warmup steps.
    eval_batch_size: test examples per eval call.
    checkpoint_every: save every this many steps (None: at each epoch end); needs a workdir.
    max_to_keep: checkpoints kept.
    on_nonfinite: ``"stop"`` raises :class:`NonFiniteLossError`; ``"mark"`` freezes the
      diverged model, keeps training the others and reports it with NaN metrics.
    log_every: steps between host syncs (non-finite check, progress-bar metrics).
    impl: the cascade kernel (:func:`nf_jax.kernels.cascade_matmul`): ``"auto"`` or one of
      ``nf_jax.kernels.IMPLEMENTATIONS``. Per-model (traced) tables need a kernel that reads
      tables as data (``cpu_ffi`` or ``xla_gather``); ``auto`` picks one.
  """

  learning_rate: float = 1e-3
  batch_size: int = 128
  num_epochs: int = 10
  steps_per_epoch: int | None = None
  weight_decay: float = 0.0
  warmup_steps: int = 0
  eval_batch_size: int = 2000
  checkpoint_every: int | None = None
  max_to_keep: int = 1
  on_nonfinite: str = "stop"
  log_every: int = 50
  impl: str = "auto"

  def __post_init__(self):
    if self.on_nonfinite not in NONFINITE_POLICIES:
      raise ValueError(f"on_nonfinite={self.on_nonfinite!r} is not one of {NONFINITE_POLICIES}")
    for field in ("batch_size", "num_epochs", "eval_batch_size", "log_every", "max_to_keep"):
      if getattr(self, field) < 1:
        raise ValueError(f"{field}={getattr(self, field)} must be >= 1")
    if not self.learning_rate > 0:
      raise ValueError(f"learning_rate={self.learning_rate} must be > 0")
    kernels.validate_impl(self.impl)


@dataclasses.dataclass
class ModelResult:
  """Final metrics of one model (accuracies in [0, 1]; NaN if it diverged).

  ``history`` holds one dict per epoch: ``epoch``, ``step``, ``train_loss``,
  ``train_accuracy``, ``val_accuracy`` (NaN without a validation split), ``test_accuracy``,
  ``epoch_seconds`` (wall time of the epoch's steps, shared by the sweep's models),
  ``examples_per_second`` and ``partial_epoch`` (the epoch resumed from a checkpoint).
  """

  spec: ModelSpec
  val_accuracy: float  # NaN when the dataset has no validation split
  test_accuracy: float
  train_accuracy: float  # running accuracy over the last epoch's training batches
  final_loss: float  # mean training loss over the last epoch
  epochs: int
  seconds: float  # wall time of the whole sweep (shared by its models)
  num_params: int  # trainable parameters of the whole MLP, biases and head included
  diverged: bool
  history: list[dict[str, float]]
  params: Params = dataclasses.field(repr=False, default=None)  # final host (numpy) params


# ---------------------------------------------------------------------------------------------
# Model: a Flax module of SparseCascade (or nn.Dense) layers and a dense head.


class Classifier(nn.Module):
  """The study MLP: hidden layers ``layer_0 .. layer_{L-1}``, each followed by ReLU, then
  ``head`` (``nn.Dense(num_classes)``); ``x: [batch, d_in] -> logits [batch, num_classes]``.

  Hidden layer ``l`` is ``SparseCascade(topologies[l])``, or for the baseline
  (``topologies=None``) ``nn.Dense(width, kernel_init=he_normal)``. Params:
  ``{"layer_l": {"stage_s": [n_out_s, f_s], "bias": [width]} | {"kernel": [n_in_l, width],
  "bias": [width]}, "head": {"kernel": [width, num_classes], "bias": [num_classes]}}``.

  Initialise with :func:`init_params`: each layer from its own key of
  ``split(key(train_seed), L + 1)``, the convention every checkpoint and results row was made
  with (``Classifier.init`` derives keys from module names and would draw other numbers).

  Attributes:
    num_classes: output classes.
    width: hidden width ``n``.
    num_layers: hidden layers ``L``.
    topologies: per hidden layer, its static structure (and tables); None for nn.Dense.
    weight_init: SparseCascade init (``nf_jax.layers.INITS``); only ``init`` reads it.
    impl: the cascade kernel (:func:`nf_jax.kernels.cascade_matmul`).
  """

  num_classes: int
  width: int
  num_layers: int
  topologies: tuple[T.Topology, ...] | None = None
  weight_init: str = "depth_aware"
  impl: str = "auto"

  @nn.compact
  def __call__(
    self, x: jax.Array, tables: Sequence[kernels.CascadeTables] | None = None
  ) -> jax.Array:
    """``tables``: per hidden layer, its tables as data (e.g. per-model, traced under
    ``vmap``; they must fit ``topologies[l]``'s structure); None reads the topologies' own."""
    if tables is not None and self.topologies is None:
      raise ValueError("tables were given for the nn.Dense baseline, which has no tables")
    h = x
    for layer in range(self.num_layers):
      module = hidden_layer(self, layer, name=f"layer_{layer}")
      if tables is None:
        h = module(h)
      else:
        h = module(h, tables[layer])
      h = nn.relu(h)
    return nn.Dense(self.num_classes, name="head")(h)


def hidden_layer(model: Classifier, layer: int, name: str | None = None) -> nn.Module:
  """Hidden layer ``layer`` of ``model`` (unbound when called outside a module)."""
  if model.topologies is None:
    return nn.Dense(model.width, kernel_init=nn.initializers.he_normal(), name=name)
  return SparseCascade(
    model.topologies[layer], weight_init=model.weight_init, impl=model.impl, name=name
  )


def init_params(spec: ModelSpec, d_in: int, num_classes: int) -> Params:
  """Params of ``spec.model(d_in, num_classes)`` (see :class:`Classifier`), seeded by
  ``spec.train_seed``: layer ``l`` is initialised alone from key ``l`` of
  ``split(key(train_seed), num_layers + 1)`` on a one-row input, the head from the last key."""
  model = spec.model(d_in, num_classes)
  keys = jax.random.split(jax.random.key(spec.train_seed), spec.num_layers + 1)
  params = {}
  width_in = d_in
  for layer in range(spec.num_layers):
    x = np.zeros((1, width_in), np.float32)  # host array: no eager device op
    # Jitted: eager init runs (and compiles) the initialisers op by op, which is slow.
    params[f"layer_{layer}"] = jax.jit(hidden_layer(model, layer).init)(keys[layer], x)["params"]
    width_in = spec.n
  head = jax.jit(nn.Dense(num_classes).init)(keys[-1], np.zeros((1, spec.n), np.float32))
  params["head"] = head["params"]
  return params


def num_params(params: Params) -> int:
  return int(sum(np.prod(leaf.shape) for leaf in jax.tree.leaves(params)))


# ---------------------------------------------------------------------------------------------
# Sweep grouping: which specs can share one vmapped program.


def shape_signature(spec: ModelSpec, d_in: int) -> tuple:
  """Hashable summary of everything that must agree for two models to be vmapped together."""
  if spec.is_dense:
    return ("dense", spec.n, spec.num_layers)
  sig = []
  for t in spec.topologies(d_in):
    sig.append(
      (
        tuple(s.shape for s in t.stages),
        tuple(None if k is None else k.shape for k in t.skips),
        t.stage_n_in,
      )
    )
  return ("cascade", spec.n, spec.num_layers, tuple(sig))


def group_compatible(
  specs: Sequence[ModelSpec], d_in: int, mix_tables: bool = True
) -> list[list[ModelSpec]]:
  """Splits ``specs`` into groups of equal :func:`shape_signature`, in first-seen order.

  With ``mix_tables=False``, models with different tables go to different groups, except
  those of families without block structure (``Family.block_structured``, e.g. ``random``,
  which always run on the gather kernel): a group whose tables differ must use
  the ``xla_gather`` kernel, several times slower on CPU than ``xla_blocked`` for the
  block-structured families, so mixing them costs more than the extra programs.
  """
  groups: dict[tuple, list[ModelSpec]] = {}
  for spec in specs:
    key = shape_signature(spec, d_in)
    if not mix_tables and not spec.is_dense and T.family(spec.name).block_structured:
      key = key + tuple(t.fingerprint for t in spec.topologies(d_in))
    groups.setdefault(key, []).append(spec)
  return list(groups.values())


def stack_tables(models: Sequence[Sequence[T.Topology]]) -> tuple[kernels.CascadeTables, ...]:
  """Per hidden layer, the tables of ``models[m][layer]`` stacked along a leading model axis
  (:meth:`nf_jax.kernels.CascadeTables.stack`): the ``tables`` argument of a vmapped
  :class:`Classifier`."""
  return tuple(kernels.CascadeTables.stack(layer) for layer in zip(*models))


# ---------------------------------------------------------------------------------------------
# The vmapped, sharded step.


def make_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
  """A 1-D mesh over ``devices`` (default: all, across hosts) with axis ``"models"``."""
  devices = jax.devices() if devices is None else list(devices)
  return Mesh(np.array(devices), (MODEL_AXIS,))


def make_optimizer(config: TrainConfig, total_steps: int) -> optax.GradientTransformation:
  """AdamW (Adam if ``weight_decay == 0``) with warmup + cosine decay."""
  if config.warmup_steps:
    schedule = optax.warmup_cosine_decay_schedule(
      0.0, config.learning_rate, config.warmup_steps, max(total_steps, config.warmup_steps + 1)
    )
  else:
    schedule = optax.cosine_decay_schedule(config.learning_rate, max(total_steps, 1))
  return optax.adamw(schedule, weight_decay=config.weight_decay)


def _tree_where(ok: jax.Array, new: Any, old: Any) -> Any:
  return jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, old)


@functools.lru_cache(maxsize=64)
def _compiled_fns(
  model: Classifier, traced: bool, config: TrainConfig, total_steps: int
) -> tuple[Callable, Callable]:
  """Jitted ``(train_step, eval_step)`` over the model axis, cached per model and config;
  ``traced``: the steps take per-model tables (a tuple of stacked CascadeTables)."""
  optimizer = make_optimizer(config, total_steps)
  impl = config.impl
  # Per-model tables are data, not constants: only the gather and the C++ kernel read them so.
  if traced and impl not in ("auto",) + kernels.DATA_TABLE_IMPLS:
    raise ValueError(
      f"impl={impl!r} cannot read per-model (traced) tables; use 'auto', 'cpu_ffi' or "
      "'xla_gather' for sweeps whose models differ in wiring (e.g. random seeds)"
    )
  if traced and impl == "auto":
    native = kernels.cpu_ffi.refusal()
    impl = "cpu_ffi" if native is None else "xla_gather"
    if native is not None:
      logging.info("per-model tables train on xla_gather: cpu_ffi refused (%s)", native)

  model = model.clone(impl=impl)

  def one_step(params, opt_state, bad, tables, idx, x_all, y_all):
    x, y = x_all[idx], y_all[idx]

    def loss_fn(p):
      logits = model.apply({"params": p}, x, tables)
      return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), logits

    (loss, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, new_opt = optimizer.update(grads, opt_state, params)
    new_params = optax.apply_updates(params, updates)
    finite = jnp.isfinite(loss) & jnp.isfinite(optax.tree.norm(grads))
    ok = finite & ~bad
    params = _tree_where(ok, new_params, params)
    opt_state = _tree_where(ok, new_opt, opt_state)
    correct = jnp.sum(jnp.argmax(logits, -1) == y)
    return params, opt_state, bad | ~finite, loss, correct

  def one_eval(params, tables, x, y):
    logits = model.apply({"params": params}, x, tables)
    return jnp.sum(jnp.argmax(logits, -1) == y)

  tables_axis = 0 if traced else None
  train_step = jax.jit(
    jax.vmap(one_step, in_axes=(0, 0, 0, tables_axis, 0, None, None)), donate_argnums=(0, 1, 2)
  )
  eval_step = jax.jit(jax.vmap(one_eval, in_axes=(0, tables_axis, None, None)))
  return train_step, eval_step


def _put(tree: Any, sharding: NamedSharding) -> Any:
  """Host numpy pytree -> global arrays with ``sharding`` (works single- and multi-host)."""

  def one(leaf):
    leaf = np.asarray(leaf)
    return jax.make_array_from_callback(leaf.shape, sharding, lambda index: leaf[index])

  return jax.tree.map(one, tree)


def _fetch(tree: Any) -> Any:
  """Global arrays -> host numpy (gathers across hosts when there are several)."""
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils

    return multihost_utils.process_allgather(tree, tiled=True)
  return jax.tree.map(np.asarray, tree)


def epoch_order(train_seed: int, epoch: int, num_examples: int) -> np.ndarray:
  """The shuffled example order of one epoch: a function of ``(train_seed, epoch)`` only."""
  return np.random.default_rng([train_seed, epoch]).permutation(num_examples)


def _checkpoint_manager(workdir: str, config: TrainConfig) -> ocp.CheckpointManager:
  options = ocp.CheckpointManagerOptions(max_to_keep=config.max_to_keep, create=True)
  return ocp.CheckpointManager(
    os.path.abspath(os.path.join(workdir, "checkpoints")), options=options
  )


def train_sweep(
  specs: Sequence[ModelSpec],
  dataset: Dataset,
  config: TrainConfig,
  workdir: str | None = None,
  mesh: Mesh | None = None,
  progress: bool = True,
) -> list[ModelResult]:
  """Trains ``specs`` (equal shape signatures) together in one vmapped, sharded program.

  Args:
    specs: the models; all must share :func:`shape_signature` (use :func:`group_compatible`).
    dataset: train/test arrays (see :mod:`nf_jax.data`).
    config: optimisation settings.
    workdir: if given, Orbax checkpoints go to ``<workdir>/checkpoints`` and the run resumes
      from the latest one.
    mesh: 1-D mesh with axis ``"models"`` (default: all devices).
    progress: show a tqdm progress bar.

  Returns:
    One :class:`ModelResult` per spec, in order.

  Raises:
    ValueError: specs of different shape signatures, or an empty list.
    NonFiniteLossError: a loss became NaN/inf and ``config.on_nonfinite == "stop"``.
  """
  if not specs:
    raise ValueError("specs is empty: pass at least one ModelSpec")
  d_in = dataset.x_train.shape[1]
  signatures = {shape_signature(s, d_in) for s in specs}
  if len(signatures) > 1:
    raise ValueError(
      f"specs have {len(signatures)} different shape signatures and cannot share one vmapped "
      "program; split them with group_compatible()"
    )
  mesh = make_mesh() if mesh is None else mesh
  num_devices = mesh.devices.size
  num_models = len(specs)
  # Pad the model axis to a multiple of the device count with copies of the last model.
  padded = list(specs) + [specs[-1]] * (-num_models % num_devices)
  model_sharding = NamedSharding(mesh, PartitionSpec(MODEL_AXIS))
  replicated = NamedSharding(mesh, PartitionSpec())

  n_train = dataset.x_train.shape[0]
  steps_per_epoch = n_train // config.batch_size
  if config.steps_per_epoch is not None:
    steps_per_epoch = min(steps_per_epoch, config.steps_per_epoch)
  if steps_per_epoch < 1:
    raise ValueError(
      f"batch_size={config.batch_size} exceeds the {n_train} training examples; lower it"
    )
  total_steps = steps_per_epoch * config.num_epochs

  if padded[0].is_dense:
    traced, tables = False, None
  else:
    all_topos = [s.topologies(d_in) for s in padded]
    reference = all_topos[0]
    traced = any(
      t.fingerprint != r.fingerprint for topos in all_topos for t, r in zip(topos, reference)
    )
    tables = stack_tables(all_topos) if traced else None
  # The apply reads only the structure (the first model's topologies) and the kernel choice.
  model = dataclasses.replace(padded[0], weight_init="depth_aware").model(
    d_in, dataset.num_classes, config.impl
  )
  train_step, eval_step = _compiled_fns(model, traced, config, total_steps)
  optimizer = make_optimizer(config, total_steps)

  watchdog.beat(WATCHDOG_SETUP_S, "init")
  host_params = [init_params(s, d_in, dataset.num_classes) for s in padded]
  host_opt = [jax.jit(optimizer.init)(p) for p in host_params]
  stack = lambda trees: jax.tree.map(lambda *a: np.stack([np.asarray(x) for x in a]), *trees)
  state = {
    "params": stack(host_params),
    "opt_state": stack(host_opt),
    "bad": np.zeros(len(padded), bool),
    "step": np.zeros((), np.int64),
  }
  history: list[dict[str, Any]] = []
  manager = _checkpoint_manager(workdir, config) if workdir else None
  start_step = 0
  if manager is not None and manager.latest_step() is not None:
    start_step = manager.latest_step()
    restored = manager.restore(
      start_step,
      args=ocp.args.Composite(
        state=ocp.args.StandardRestore(jax.tree.map(np.asarray, state)),
        history=ocp.args.JsonRestore(),
      ),
    )
    state = jax.tree.map(np.asarray, dict(restored["state"]))
    history = list(restored["history"]["epochs"])
    logging.info("resumed %d models from step %d in %s", num_models, start_step, workdir)

  params = _put(state["params"], model_sharding)
  opt_state = _put(state["opt_state"], model_sharding)
  bad = _put(state["bad"], model_sharding)
  tables_dev = _put(tables, model_sharding) if traced else None
  x_train = _put(dataset.x_train, replicated)
  y_train = _put(dataset.y_train, replicated)
  seeds = [s.train_seed for s in padded]
  param_count = num_params(host_params[0])

  def save(step: int) -> None:
    if manager is None:
      return
    host = {
      "params": _fetch(params),
      "opt_state": _fetch(opt_state),
      "bad": _fetch(bad),
      "step": np.asarray(step, np.int64),
    }
    manager.save(
      step,
      args=ocp.args.Composite(
        state=ocp.args.StandardSave(host), history=ocp.args.JsonSave({"epochs": history})
      ),
    )
    manager.wait_until_finished()

  def check_finite(step: int) -> np.ndarray:
    flags = _fetch(bad)[:num_models]
    if flags.any() and config.on_nonfinite == "stop":
      names = "; ".join(specs[i].label() for i in np.nonzero(flags)[0])
      last = manager.latest_step() if manager is not None else None
      where = (
        f"the last good checkpoint (step {last}) is kept in {workdir}/checkpoints"
        if last is not None
        else "no checkpoint was written (pass a workdir to keep one)"
      )
      raise NonFiniteLossError(
        f"non-finite loss or gradient by step {step} in model(s): {names}. Training stopped; "
        f"{where}. Lower learning_rate (now {config.learning_rate}) or check the init."
      )
    return flags

  label = specs[0].label() if num_models == 1 else f"{num_models} x {specs[0].name}"
  bar = tqdm(total=total_steps, initial=start_step, desc=label, disable=not progress, leave=False)
  t0 = time.perf_counter()
  step = start_step
  watchdog.beat(WATCHDOG_COMPILE_S, f"{label}: compile and first steps")
  while step < total_steps:
    epoch, offset = divmod(step, steps_per_epoch)
    orders = np.stack([epoch_order(seed, epoch, n_train) for seed in seeds])
    loss_sum = jnp.zeros(len(padded))
    correct_sum = jnp.zeros(len(padded))
    seen = 0
    epoch_t0 = time.perf_counter()
    for i in range(offset, steps_per_epoch):
      idx = orders[:, i * config.batch_size : (i + 1) * config.batch_size].astype(np.int32)
      params, opt_state, bad, loss, correct = train_step(
        params, opt_state, bad, tables_dev, _put(idx, model_sharding), x_train, y_train
      )
      loss_sum, correct_sum, seen = loss_sum + loss, correct_sum + correct, seen + 1
      step += 1
      bar.update(1)
      if step % config.log_every == 0:
        check_finite(step)
        watchdog.beat(WATCHDOG_STEP_S, f"{label}: step {step}")
        bar.set_postfix(loss=f"{float(np.nanmean(_fetch(loss)[:num_models])):.3f}")
      if (
        config.checkpoint_every is not None
        and step % config.checkpoint_every == 0
        and step < total_steps
      ):
        check_finite(step)
        save(step)
    check_finite(step)
    epoch_seconds = time.perf_counter() - epoch_t0
    train_loss = _fetch(loss_sum)[:num_models] / seen
    train_acc = _fetch(correct_sum)[:num_models] / (seen * config.batch_size)
    watchdog.beat(WATCHDOG_COMPILE_S, f"{label}: evaluate epoch {epoch + 1}")
    test_acc = evaluate(
      eval_step, params, tables_dev, dataset.x_test, dataset.y_test, config, mesh
    )[:num_models]
    val_acc = np.full(num_models, np.nan)
    if dataset.x_val is not None:
      val_acc = evaluate(eval_step, params, tables_dev, dataset.x_val, dataset.y_val, config, mesh)[
        :num_models
      ]
    flags = _fetch(bad)[:num_models]
    history.append(
      {
        "epoch": epoch + 1,
        "step": step,
        "train_loss": [float(v) for v in np.where(flags, np.nan, train_loss)],
        "train_accuracy": [float(v) for v in np.where(flags, np.nan, train_acc)],
        "val_accuracy": [float(v) for v in np.where(flags, np.nan, val_acc)],
        "test_accuracy": [float(v) for v in np.where(flags, np.nan, test_acc)],
        "epoch_seconds": epoch_seconds,
        "examples_per_second": len(padded) * seen * config.batch_size / epoch_seconds,
        "partial_epoch": offset > 0,
      }
    )
    logging.info(
      "%s epoch %d: loss %s val acc %s (%.0f examples/s)",
      label,
      epoch + 1,
      np.round(train_loss, 4),
      np.round(val_acc, 4),
      history[-1]["examples_per_second"],
    )
    if config.checkpoint_every is None or step == total_steps:
      save(step)
  bar.close()
  seconds = time.perf_counter() - t0
  flags = _fetch(bad)[:num_models]
  final_params = _fetch(params)
  last = history[-1] if history else None
  results = []
  for i, spec in enumerate(specs):
    results.append(
      ModelResult(
        spec=spec,
        val_accuracy=float(last["val_accuracy"][i]) if last else math.nan,
        test_accuracy=float(last["test_accuracy"][i]) if last else math.nan,
        train_accuracy=float(last["train_accuracy"][i]) if last else math.nan,
        final_loss=float(last["train_loss"][i]) if last else math.nan,
        epochs=config.num_epochs,
        seconds=seconds,
        num_params=param_count,
        diverged=bool(flags[i]),
        history=[{k: (v[i] if isinstance(v, list) else v) for k, v in h.items()} for h in history],
        params=jax.tree.map(lambda a, i=i: a[i], final_params),
      )
    )
  if manager is not None:
    manager.close()
  return results


def evaluate(
  eval_step: Callable,
  params: Params,
  tables: Any,
  x_eval: np.ndarray,
  y_eval: np.ndarray,
  config: TrainConfig,
  mesh: Mesh,
) -> np.ndarray:
  """Accuracy ``float[M]`` of the stacked models on ``x_eval: [N, D]``, ``y_eval: int[N]``,
  in chunks of ``eval_batch_size``."""
  replicated = NamedSharding(mesh, PartitionSpec())
  correct = None
  n = x_eval.shape[0]
  for start in range(0, n, config.eval_batch_size):
    x = _put(x_eval[start : start + config.eval_batch_size], replicated)
    y = _put(y_eval[start : start + config.eval_batch_size], replicated)
    c = eval_step(params, tables, x, y)
    correct = c if correct is None else correct + c
  return _fetch(correct) / n


def train(
  spec: ModelSpec,
  dataset: Dataset,
  config: TrainConfig,
  workdir: str | None = None,
  progress: bool = True,
) -> ModelResult:
  """Trains one model (a sweep of one); see :func:`train_sweep`."""
  return train_sweep(
    [spec], dataset, config, workdir, mesh=make_mesh(jax.devices()[:1]), progress=progress
  )[0]
