"""Data-free topology scores: rank sparse cascades before any training data is seen.

Two kinds of score, all computed from the topology's tables alone:

* **Structural** (:func:`structural_scores`, at the topology's own width): ``connectivity``,
  path-count uniformity ``path_cv`` and ``path_entropy`` (from :func:`nf_jax.topology.path_stats`)
  and ``log_paths`` (log10 of the mean number of paths per input/output pair).
* **Fit-based** (:func:`fit_scores`): how well the *linear* cascade with that topology can
  approximate random dense target matrices ``A: [n_in, n_out]``. For each of ``targets`` Gaussian
  targets, the stage weights are fitted by Adam in a jitted ``lax.scan`` to minimise
  ``||W - S - A||_F^2 / ||A||_F^2``, where ``W = prod_s (W_s * mask_s + skip_s)`` is the
  cascade's matrix built from dense, masked stage matrices (:func:`stage_masks`, zero-padded to
  a shared lane count so that one compiled program serves every candidate of the same padded
  shape and depth) and ``S = prod_s skip_s`` is what the fixed skip paths alone contribute
  (``W`` at zero weights; 0 without skips). ``fit_residual`` is the mean normalised residual
  ``||A - (W - S)||_F / ||A||_F`` after the fit (0: the trainable paths realise any linear map;
  1: they add nothing; ``sqrt(1 - density)`` for a single masked stage),
  ``fit_score = 1 - fit_residual``. Why ``- S``: the skip paths are fixed, so ``S`` is part of
  every map the layer can realise, whatever the weights. A random table rarely contains a lane's
  home lane, so fitting ``A`` itself would charge such topologies for an identity they can never
  cancel (the measurements behind this choice, and the alternative rejected, are in
  experiments/README.md, "Data-free score validation").
  ``eff_rank`` is the entropy effective rank (Roy & Vetterli, EUSIPCO 2007) of ``W`` at the
  random initialisation, divided by ``min(n_in, n_out)``.

Why the fit transfers. NeuroFabric replaces one dense layer by a cascade and relies on the
cascade being able to *represent* the dense layer the data would have asked for (Isakov &
Kinsy, arXiv 2002.08339, Sec. III). A random Gaussian target has no structure a topology could
be tailored to, so the residual measures the fraction of generic linear maps the topology
cannot reach: it is data-agnostic by construction. The fit is run at a small proxy width
``fit_n`` (default 64) because its cost grows as ``fit_n**3 * depth``; :func:`proxy_topology`
rebuilds each family at that width keeping its shape (depth in units of the full-mixing depth
``log_radix n``, parallel width, skip, seed) and shrinking only the block size. Whether the
ranking survives that rescaling is an empirical claim: ``experiments/validate_proxy.py``
measures it against trained accuracy (64 rather than 32 ranks better on both validation tasks:
experiments/README.md).

Cost (2-core CPU, see ``benchmarks/proxy_bench.py``): per candidate
``~6 * steps * targets * branches * depth * L**3`` flops for the fit (``L``: padded lanes) plus one
:func:`nf_jax.topology.path_stats` call at full width; one XLA compilation per distinct set of
table shapes (candidates are padded to power-of-two batches, so batch size does not retrace).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging

from nf_jax import topology as T
from nf_jax.init_scale import stage_init_variances

STRUCTURAL_SCORES = ("connectivity", "path_cv", "path_entropy", "log_paths")
FIT_SCORES = ("fit_residual", "fit_score", "eff_rank")
SCORE_NAMES = STRUCTURAL_SCORES + FIT_SCORES
# Sign of each score: True where a larger value should mean a better topology.
HIGHER_IS_BETTER = {
  "connectivity": True,
  "path_cv": False,
  "path_entropy": True,
  "log_paths": True,
  "fit_residual": False,
  "fit_score": True,
  "eff_rank": True,
}
PRIMARY_SCORE = "fit_score"
# Largest per-batch array of the fit, in float32 elements (64 MiB): bounds peak memory.
MAX_BATCH_ELEMENTS = 1 << 24


@dataclasses.dataclass(frozen=True)
class FitConfig:
  """Settings of the fit-based scores.

  Attributes:
    fit_n: proxy width at which the fit runs (None: at each topology's own width).
    targets: random dense targets averaged over.
    steps: Adam steps per fit.
    learning_rate: peak Adam learning rate (cosine-decayed to 1% over ``steps``).
    seed: seeds the targets and the initial weights (shared by all candidates: a fair draw).
    max_batch: most candidates per compiled call (batches are padded to a power of two).
  """

  fit_n: int | None = 64
  # One target and 75 steps rank as well as 3 x 150 at a sixth of the cost on both validation
  # tasks; 50 steps rank worse (experiments/README.md, "Cheaper fits").
  targets: int = 1
  steps: int = 75
  learning_rate: float = 0.05
  seed: int = 0
  max_batch: int = 64

  def __post_init__(self) -> None:
    if self.fit_n is not None and self.fit_n < 2:
      raise ValueError(f"fit_n={self.fit_n} must be >= 2 (or None for full width)")
    for field in ("targets", "steps", "max_batch"):
      if getattr(self, field) < 1:
        raise ValueError(f"{field}={getattr(self, field)} must be >= 1")
    if not self.learning_rate > 0:
      raise ValueError(f"learning_rate={self.learning_rate} must be > 0")


# ---------------------------------------------------------------------------------------------
# Structural scores


def structural_scores(t: T.Topology) -> dict[str, float]:
  """Path-count scores of ``t`` at its own width (see module doc); floats."""
  stats = T.path_stats(t, heatmap_size=1)
  return {
    "connectivity": stats.connectivity,
    "path_cv": stats.cv if math.isfinite(stats.cv) else 1e9,
    "path_entropy": stats.entropy,
    "log_paths": math.log10(stats.mean) if stats.mean > 0 else -1e9,
  }


# ---------------------------------------------------------------------------------------------
# Proxy width


def proxy_topology(t: T.Topology, fit_n: int | None) -> T.Topology:
  """``t`` rebuilt at about ``fit_n`` lanes (``t`` itself when ``t.n_out <= fit_n``).

  The rule keeps the cascade's *shape*, i.e. its depth in units of the full-mixing depth
  ``m = log_radix n`` (the depth at which every input first reaches every output), which is
  what sets path counts and connectivity; only the block size shrinks:

  * butterfly, parallel_butterfly, block_diagonal (radix k), random (fan-in f): the radix
    becomes ``k' = fit_n ** (log k / log n)`` (rounded, >= 2; ``nf_jax.topology.shrink_radix``),
    the width a power of ``k'`` near ``fit_n`` (a multiple of ``k'`` for block_diagonal and
    random), and the depth is scaled by ``m' / m`` (rounded, >= 1): unchanged unless ``k'``
    was clipped to 2. Parallel width, skip and seed are kept; fan-in 1 stays 1.
  * clos: switch size c becomes the divisor of ``fit_n`` (>= 2) nearest
    ``fit_n ** (log c / log n)``, as for the radix above; middle switches keep their ratio
    to it.
  * dense: same depth.
  * ``n_in`` keeps its ratio to ``n``. Near-ties between two divisors go to the smaller one.

  Each family's rule is its ``Family.rescale`` in the registry (:mod:`nf_jax.topology`).
  """
  if fit_n is None or t.n_out <= fit_n:
    return t
  return T.family(t.name).rescale(t, fit_n)


# ---------------------------------------------------------------------------------------------
# Fit-based scores


def branches(t: T.Topology) -> int:
  """Independent parallel branches of ``t`` (``width`` for a parallel butterfly of depth >= 2).

  The hidden stages of a parallel butterfly are block-diagonal over its branches, so its
  matrix is a sum of ``width`` square cascades: fitting it that way costs ``width`` times a
  branch instead of ``width**3`` times (one ``[width*n]``-lane chain).
  """
  return T.family(t.name).branches(t)


def _dense_stage(table: np.ndarray, skip: np.ndarray | None, n_in: int) -> tuple[np.ndarray, ...]:
  """Binary edge mask and fixed skip matrix ``[n_in, n_out]`` of one stage (numpy)."""
  n_out = table.shape[0]
  mask = np.zeros((n_in, n_out), np.float32)
  mask[table, np.broadcast_to(np.arange(n_out)[:, None], table.shape)] = 1.0
  fixed = np.zeros((n_in, n_out), np.float32)
  if skip is not None:
    np.add.at(
      fixed, (skip, np.broadcast_to(np.arange(n_out)[:, None], skip.shape)), 1 / skip.shape[1]
    )
  return mask, fixed


def stage_masks(t: T.Topology, lanes: int) -> tuple[np.ndarray, np.ndarray]:
  """Trainable-edge masks and fixed skip matrices of ``t``, ``float32[P, D, lanes, lanes]``.

  ``P = branches(t)``; the cascade's matrix is ``sum_b prod_s (W[b, s] * mask[b, s] +
  fixed[b, s])``. Each block sits top-left, zero-padded: ``mask[b, s, i, j] = 1`` where output
  j of stage s gathers input i (repeated edges carry one free weight between them, so 1 either
  way) and ``fixed`` holds the skip coefficients ``1 / r_s``. This is the numpy mirror of
  :func:`nf_jax.kernels.reference.stage_dense_matrix`, built on the host because the JAX
  version's per-topology dispatch costs more than the fit.
  """
  p = branches(t)
  mask = np.zeros((p, t.depth, lanes, lanes), np.float32)
  fixed = np.zeros_like(mask)
  for s, (table, skip, n_in) in enumerate(zip(t.stages, t.skips, t.stage_n_in)):
    m, f = _dense_stage(table, skip, n_in)
    for b in range(p):
      rows = slice(None) if s == 0 or p == 1 else slice(b * t.n_out, (b + 1) * t.n_out)
      cols = slice(None) if s == t.depth - 1 or p == 1 else slice(b * t.n_out, (b + 1) * t.n_out)
      bm, bf = m[rows, cols], f[rows, cols]
      mask[b, s, : bm.shape[0], : bm.shape[1]] = bm
      fixed[b, s, : bf.shape[0], : bf.shape[1]] = bf
    if p > 1 and 0 < s:  # stage inputs are branch lanes: nothing may cross branches
      blocks = sum(float(mask[b, s].sum() + fixed[b, s].sum()) for b in range(p))
      if not math.isclose(blocks, float(m.sum() + f.sum()), rel_tol=1e-5):
        raise AssertionError(f"{t}: stage {s} is not block-diagonal over its {p} branches")
  return mask, fixed


def _lanes(t: T.Topology) -> int:
  """Padded lane count of ``t``'s blocks: the next power of two (fewer compilations)."""
  widest = max(t.n_in, t.n_out) if branches(t) > 1 else max(t.n_in, *t.stage_n_in, *t.stage_n_out)
  return 1 << (widest - 1).bit_length()


def _effective_rank(w: jax.Array, size: jax.Array) -> jax.Array:
  """Entropy effective rank ``exp(H(sigma / sum sigma)) / size`` (Roy & Vetterli 2007).

  Zero padding adds zero singular values, which carry no entropy, so padded ``w`` is fine.
  """
  sigma = jnp.linalg.svd(w, compute_uv=False)
  p = sigma / jnp.maximum(sigma.sum(), 1e-30)
  safe = jnp.where(p > 0, p, 1.0)
  return jnp.exp(-jnp.sum(p * jnp.log(safe))) / size


# XLA:CPU's LLVM optimisation level 1 instead of the default compiles the fit faster at no cost
# to its run time, which is spent in matmul library calls the level does not touch
# (benchmarks/README.md, "proxy_bench.py", has the numbers).
@functools.partial(
  jax.jit,
  static_argnames=("steps", "learning_rate"),
  compiler_options={"xla_backend_optimization_level": 1},
)
def _fit_batch(
  masks: jax.Array,
  fixed: jax.Array,
  stds: jax.Array,
  targets: jax.Array,
  rank_size: jax.Array,
  key: jax.Array,
  *,
  steps: int,
  learning_rate: float,
) -> tuple[jax.Array, jax.Array]:
  """Fits a batch of same-shape cascades to their targets.

  Args:
    masks, fixed: ``float32[B, P, D, L, L]`` from :func:`stage_masks` (zero-padded).
    stds: ``float32[B, D]`` initial weight standard deviations.
    targets: ``float32[B, K, L, L]``, zero outside each candidate's ``[n_in, n_out]`` block.
    rank_size: ``float32[B]``, ``min(n_in, n_out)`` of each candidate.
    key: PRNG key of the initial weights (the same draw for every candidate).

  Returns:
    ``(residual[B], eff_rank[B])``: mean over targets of ``||A - (W - S)||_F / ||A||_F`` after
    ``steps`` Adam steps, and the effective rank of ``W`` at initialisation.
  """
  schedule = optax.cosine_decay_schedule(learning_rate, steps, alpha=0.01)
  optimiser = optax.adam(schedule)
  shape = masks.shape[1:]  # [P, D, L, L]

  def chain(stages):
    out, _ = jax.lax.scan(lambda h, m: (jnp.matmul(h, m), None), stages[0], stages[1:])
    return out

  def one_candidate(mask, fix, std, cand_targets, size):
    def product(free):
      return jax.vmap(chain)(free * mask + fix).sum(0)  # branches add up

    skip_only = jax.vmap(chain)(fix).sum(0)  # the fixed skip paths' own product

    def loss(free, target):
      diff = product(free) - skip_only - target
      return jnp.sum(diff * diff) / jnp.sum(target * target)

    def fit(k, target):
      free0 = std[None, :, None, None] * jax.random.normal(k, shape)

      def step(carry, _):
        free, state = carry
        grads = jax.grad(loss)(free, target)
        updates, state = optimiser.update(grads, state, free)
        return (optax.apply_updates(free, updates), state), None

      init = (free0, optimiser.init(free0))
      (free, _), _ = jax.lax.scan(step, init, None, length=steps)
      return jnp.sqrt(loss(free, target)), _effective_rank(product(free0), size)

    keys = jax.random.split(key, cand_targets.shape[0])
    res, rank = jax.vmap(fit)(keys, cand_targets)
    return res.mean(), rank.mean()

  return jax.vmap(one_candidate)(masks, fixed, stds, targets, rank_size)


@functools.lru_cache(maxsize=64)
def random_targets(n_in: int, n_out: int, count: int, seed: int) -> np.ndarray:
  """``float32[count, n_in, n_out]`` Gaussian targets with entry variance ``1 / n_in``.

  That is the scale of the cascade at its variance-preserving init, so Adam starts near it.
  The same targets serve every candidate of the same shape (a fair, low-noise comparison).
  """
  rng = np.random.default_rng([seed, n_in, n_out])
  out = (rng.standard_normal((count, n_in, n_out)) / math.sqrt(n_in)).astype(np.float32)
  out.setflags(write=False)
  return out


def _init_stds(t: T.Topology) -> np.ndarray:
  """Gaussian stds of the depth-aware init (the layer's variances, shared with training)."""
  return np.sqrt(np.asarray(stage_init_variances(t, "depth_aware"), np.float32))


def fit_scores(
  topologies: Sequence[T.Topology], config: FitConfig = FitConfig(), progress=None
) -> dict[str, np.ndarray]:
  """Fit-based scores of many topologies, batched by (padded lanes, depth).

  Args:
    topologies: candidates (any families and widths).
    config: fit settings.
    progress: optional callable ``progress(count)`` called after each batch.

  Returns:
    ``{"fit_residual", "fit_score", "eff_rank"}``: ``float64[len(topologies)]`` each.
  """
  proxies = [proxy_topology(t, config.fit_n) for t in topologies]
  residual = np.zeros(len(proxies))
  rank = np.zeros(len(proxies))
  groups: dict[tuple[int, int, int], list[int]] = {}
  for i, p in enumerate(proxies):
    groups.setdefault((_lanes(p), p.depth, branches(p)), []).append(i)
  key = jax.random.PRNGKey(config.seed)
  for (lanes, depth, num_branches), members in sorted(groups.items()):
    # Cap each batch's largest array (weights, Adam moments) at MAX_BATCH_ELEMENTS floats.
    per_candidate = config.targets * num_branches * depth * lanes * lanes
    cap = min(config.max_batch, max(1, MAX_BATCH_ELEMENTS // per_candidate))
    cap = 1 << (cap.bit_length() - 1)
    for start in range(0, len(members), cap):
      chunk = members[start : start + cap]
      padded = chunk + [chunk[0]] * ((1 << (len(chunk) - 1).bit_length()) - len(chunk))
      masks = np.zeros((len(padded), num_branches, depth, lanes, lanes), np.float32)
      fixed = np.zeros_like(masks)
      targets = np.zeros((len(padded), config.targets, lanes, lanes), np.float32)
      for b, i in enumerate(padded):
        p = proxies[i]
        masks[b], fixed[b] = stage_masks(p, lanes)
        targets[b, :, : p.n_in, : p.n_out] = random_targets(
          p.n_in, p.n_out, config.targets, config.seed
        )
      stds = np.stack([_init_stds(proxies[i]) for i in padded])
      size = np.asarray([min(proxies[i].n_in, proxies[i].n_out) for i in padded], np.float32)
      res, er = _fit_batch(
        masks,
        fixed,
        stds,
        targets,
        size,
        key,
        steps=config.steps,
        learning_rate=config.learning_rate,
      )
      residual[chunk] = np.asarray(res)[: len(chunk)]
      rank[chunk] = np.asarray(er)[: len(chunk)]
      if progress is not None:
        progress(len(chunk))
  logging.info("fit_scores: %d candidates in %d shape groups", len(proxies), len(groups))
  return {"fit_residual": residual, "fit_score": 1.0 - residual, "eff_rank": rank}


def score_topologies(
  topologies: Sequence[T.Topology],
  config: FitConfig = FitConfig(),
  *,
  structural: bool = True,
  fit: bool = True,
  progress=None,
) -> dict[str, np.ndarray]:
  """All data-free scores of a population of topologies, in one batched pass.

  Args:
    topologies: the candidates (any families, widths and depths).
    config: fit settings (proxy width, targets, steps).
    structural: compute the path-count scores (one numpy path propagation per candidate).
    fit: compute the fit-based scores (one jitted, vmapped Adam fit per shape group).
    progress: optional callable ``progress(count)`` called as candidates finish (fit batches;
      structural scores are reported together with the fit).

  Returns:
    ``{score name: float64[len(topologies)]}`` for the requested scores (see
    ``HIGHER_IS_BETTER`` for each score's sign).

  Cost: per candidate ``~6 * steps * targets * branches * depth * L**3`` flops for the fit
  (``L`` = proxy lanes padded to a power of two, 64 or 128 at the default ``fit_n=64``) plus
  one :func:`nf_jax.topology.path_stats` at full width; one XLA compilation per
  (lanes, depth, branches) group. Throughput: ``benchmarks/proxy_bench.py`` and its numbers in
  benchmarks/README.md.

  Example:
    >>> ts = [T.make("butterfly", 64, radix=2), T.make("random", 64, fan_in=2, depth=6)]
    >>> sorted(score_topologies(ts, FitConfig(steps=20)))[:2]
    ['connectivity', 'eff_rank']
  """
  topologies = list(topologies)
  for i, t in enumerate(topologies):
    if not isinstance(t, T.Topology):
      raise ValueError(f"topologies[{i}]={t!r} is not a nf_jax.topology.Topology")
  out: dict[str, np.ndarray] = {}
  if structural:
    rows = [structural_scores(t) for t in topologies]
    for name in STRUCTURAL_SCORES:
      out[name] = np.asarray([r[name] for r in rows], np.float64)
  if fit:
    out.update(fit_scores(topologies, config, progress=progress))
  return out
