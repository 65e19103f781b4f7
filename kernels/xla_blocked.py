"""``xla_blocked``: block-structured stages as batched block matmuls, batch-tiled.

Every stage is ``out[a, i, c] = sum_{b, r} W[(a, i, c), (b, r)] * u[b, a, r, c]`` on reshaped
views (see :mod:`nf_jax.kernels.structure`), so a butterfly's permutation is a reshape, not a
gather. Runs of square radix-k stages are merged into one block stage of edge up to
``BlockSizes.max_merge`` (three radix-2 stages become one 8x8 block per lane group), and the
batch is processed in tiles of ``BlockSizes.batch_tile`` rows with ``lax.map``, so all stages of
a tile run while the tile sits in cache. Gradients use XLA autodiff.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from nf_jax.kernels.block_sizes import BlockSizes
from nf_jax.kernels.structure import StagePlan, merge_groups, merged_plan


def gather_input(h: jax.Array, sp: StagePlan) -> jax.Array:
  """``u = h[:, src]`` as a reshape/transpose when possible: ``[t, n_in] -> [t, u_width]``."""
  if sp.src_kind == "identity":
    return h
  if sp.src_kind == "transpose":
    g1, g2 = sp.transpose
    return jnp.swapaxes(h.reshape(h.shape[0], g1, g2), 1, 2).reshape(h.shape[0], -1)
  return jnp.take(h, jnp.asarray(sp.src), axis=1)


def apply_stage(h: jax.Array, w: jax.Array, sp: StagePlan) -> jax.Array:
  """One block stage ``[t, n_in] -> [t, n_out]`` (weights ``[n_out, p * ki]``) plus its skip."""
  t = h.shape[0]
  u = gather_input(h, sp)
  u5 = u.reshape(t, sp.p, sp.A, sp.ki, sp.C)
  w5 = w.astype(h.dtype).reshape(sp.A, sp.ko, sp.C, sp.p, sp.ki)
  out = jnp.einsum("tbarc,aicbr->taic", u5, w5).reshape(t, sp.n_out)
  if sp.skip_mode == "u":
    out = out + u[:, : sp.skip_r * sp.n_out].reshape(t, sp.skip_r, sp.n_out).mean(axis=1)
  elif sp.skip_mode == "h":
    lanes = np.arange(sp.skip_r * sp.n_out) % sp.n_in
    wrapped = h if lanes.size == sp.n_in and sp.skip_r == 1 else jnp.take(h, lanes, axis=1)
    out = out + wrapped.reshape(t, sp.skip_r, sp.n_out).mean(axis=1)
  return out


def merged_stage(stages: Sequence[StagePlan], weights: Sequence[jax.Array], dtype):
  """Product of a run of square stages as one block stage: ``(StagePlan, w [n, K])``.

  The merged weights are the run applied to the block basis: input row r is 1 on every lane whose
  merged digit equals r, so output lane ``(a, i, c)`` of row r is the block entry ``M[(a,i,c), r]``.
  """
  plan = merged_plan(stages)
  k, a, lo, n = plan.ko, plan.A, plan.C, plan.n_out
  basis = np.zeros((k, a, k, lo), np.float32)
  basis[np.arange(k), :, np.arange(k), :] = 1.0
  h = jnp.asarray(basis.reshape(k, n), dtype)
  for sp, w in zip(stages, weights):
    h = apply_stage(h, w, sp)
  return plan, h.T


def _digit_chain(plans: Sequence[StagePlan]) -> list[int] | None:
  """Lane-digit boundaries ``1 = e_0 < e_1 < ... = n`` shared by ``plans``, if they nest."""
  n = plans[0].n_out
  chain = sorted({1, n} | {sp.C for sp in plans} | {sp.C * sp.ko for sp in plans})
  if any(b % a for a, b in zip(chain, chain[1:])):
    return None
  return chain


def _digit_schedule(plans: Sequence[StagePlan]):
  """Static transposes of :func:`digit_segment`: per stage ``(perm, g, k, w_view, w_perm)``."""
  chain = _digit_chain(plans)
  sizes = [b // a for a, b in zip(chain, chain[1:])]  # sizes[d]: digit d, lowest first
  m = len(sizes)
  natural = ["t"] + list(range(m - 1, -1, -1))  # the [t, n] row-major layout
  layout, steps = natural, []
  for sp in plans:
    lo, hi = chain.index(sp.C), chain.index(sp.C * sp.ko)
    stage = list(range(hi - 1, lo - 1, -1))  # high digit first: i = positional value
    others = [a for a in layout if a != "t" and a not in stage]
    target = others + ["t"] + stage
    perm = [layout.index(a) for a in target]
    layout = target
    g = int(np.prod([sizes[d] for d in others], dtype=np.int64))
    # W[(a, i, c), r] viewed per digit: [a digits (high->low), i, c digits (high->low), r].
    a_digits, c_digits = list(range(m - 1, hi - 1, -1)), list(range(lo - 1, -1, -1))
    w_view = [sizes[d] for d in a_digits] + [sp.ko] + [sizes[d] for d in c_digits] + [sp.ko]
    names = a_digits + ["i"] + c_digits + ["r"]
    w_perm = [names.index(a) for a in others + ["r", "i"]]
    steps.append((perm, g, sp.ko, w_view, w_perm))
  first_shape = [sizes[d] for d in range(m - 1, -1, -1)]
  return first_shape, steps, [layout.index(a) for a in natural]


def digit_weights(plans: Sequence[StagePlan], ws: Sequence[jax.Array]) -> list[jax.Array]:
  """Weights of a digit segment as ``[G, K(r), K(i)]``, prepared once outside the tile loop."""
  _, steps, _ = _digit_schedule(plans)
  return [
    jnp.transpose(w.reshape(w_view), w_perm).reshape(g, k, k)
    for w, (_, g, k, w_view, w_perm) in zip(ws, steps)
  ]


def digit_segment(h: jax.Array, plans: Sequence[StagePlan], wgs: Sequence[jax.Array]):
  """Square identity-source block stages with one transpose per stage: ``[t, n] -> [t, n]``.

  The lanes are split into digits (``_digit_chain``). Before each stage the activations are laid
  out as ``[other digits..., t, stage digits]`` so the stage is a plain batched matmul
  ``[G, t, K] @ [G, K, K]`` (batch dim leading, contraction last: no transposes inside the dot).
  ``wgs`` comes from :func:`digit_weights`.
  """
  first_shape, steps, final_perm = _digit_schedule(plans)
  t = h.shape[0]
  x = h.reshape([t] + first_shape)
  for wg, (perm, g, k, _, _) in zip(wgs, steps):
    x = jnp.transpose(x, perm)
    x = jnp.matmul(x.reshape(g, t, k), wg.astype(x.dtype)).reshape(x.shape)
  return jnp.transpose(x, final_perm).reshape(t, -1)


def build_program(
  stages: Sequence[StagePlan], weights: Sequence[jax.Array], max_merge: int, dtype
) -> tuple[list[StagePlan], list[jax.Array]]:
  """Merges runs of square stages (and folds identity skips into blocks): plans and weights."""
  plans, ws = [], []
  for group in merge_groups(stages, max_merge):
    first = stages[group[0]]
    if len(group) == 1 and not (first.square_identity and first.skip_mode):
      plans.append(first)
      ws.append(weights[group[0]].astype(dtype))
    else:
      plan, w = merged_stage([stages[i] for i in group], [weights[i] for i in group], jnp.float32)
      plans.append(plan)
      ws.append(w.astype(dtype))
  return plans, ws


def cascade_matmul_blocked(
  x: jax.Array,
  weights: Sequence[jax.Array],
  stages: Sequence[StagePlan],
  block_sizes: BlockSizes,
) -> jax.Array:
  """``x: [batch, n_in] -> [batch, n_out]`` through block-structured ``stages``."""
  plans, ws = build_program(stages, weights, block_sizes.max_merge, x.dtype)

  # Consecutive square identity-source stages without skips run as one digit segment.
  segments: list[list[int]] = []
  for i, sp in enumerate(plans):
    fast = sp.square_identity and sp.skip_mode is None
    if fast and segments and segments[-1][0] >= 0 and plans[segments[-1][1]].n_out == sp.n_out:
      segments[-1][1] = i
    else:
      segments.append([i, i] if fast else [-1, i])

  digit = [
    first >= 0 and block_sizes.digit_layout and _digit_chain(plans[first : last + 1]) is not None
    for first, last in segments
  ]
  # Weight layouts are prepared once, outside the loop over batch tiles.
  ws = list(ws)
  for (first, last), use in zip(segments, digit):
    if use:
      ws[first : last + 1] = digit_weights(plans[first : last + 1], ws[first : last + 1])

  def run_tile(tile: jax.Array, ws: list[jax.Array]) -> jax.Array:
    h = tile
    for (first, last), use in zip(segments, digit):
      if use:
        h = digit_segment(h, plans[first : last + 1], ws[first : last + 1])
      else:
        for i in range(last if first < 0 else first, last + 1):
          h = apply_stage(h, ws[i], plans[i])
    return h

  batch, n_in = x.shape
  bt = block_sizes.batch_tile
  if batch <= bt:
    return run_tile(x, ws)
  tiles = -(-batch // bt)
  padded = jnp.pad(x, ((0, tiles * bt - batch), (0, 0))) if tiles * bt != batch else x
  out = _tiled(run_tile, padded.reshape(tiles, bt, n_in), ws)
  return out.reshape(tiles * bt, -1)[:batch]


def _tiled(run_tile, xs: jax.Array, ws: list[jax.Array]) -> jax.Array:
  """``lax.map(run_tile)`` over batch tiles ``xs: [tiles, bt, n_in]``, with a tile-local backward.

  Plain autodiff of the map would store every stage's activations for the whole batch and read
  them back. The backward here instead recomputes each tile's forward while the tile is in
  cache and takes its VJP there (dx per tile, dW accumulated in the scan carry).
  """

  @jax.custom_vjp
  def tiled(xs, ws):
    return jax.lax.map(lambda tile: run_tile(tile, ws), xs)

  def fwd(xs, ws):
    return tiled(xs, ws), (xs, ws)

  def bwd(residuals, gs):
    xs, ws = residuals

    def step(acc, inputs):
      tile, g = inputs
      _, vjp = jax.vjp(run_tile, tile, ws)
      dtile, dws = vjp(g)
      return [a + d.astype(a.dtype) for a, d in zip(acc, dws)], dtile

    acc = [jnp.zeros(w.shape, jnp.float32) for w in ws]
    dws, dxs = jax.lax.scan(step, acc, (xs, gs))
    return dxs, [d.astype(w.dtype) for d, w in zip(dws, ws)]

  tiled.defvjp(fwd, bwd)
  return tiled(xs, list(ws))
