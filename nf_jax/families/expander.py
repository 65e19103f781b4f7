"""``expander``: a cascade of random regular bipartite stages (seeded).

Each output of a stage gathers ``fan_in`` *distinct* inputs, and the inputs are used as evenly as
possible: on a square stage every input feeds exactly ``fan_in`` outputs (a random
``fan_in``-regular bipartite graph, an expander with high probability); on a stage with
``n_in < n`` inputs, every input feeds ``floor`` or ``ceil`` of ``n * fan_in / n_in`` outputs.
Unlike ``random``, no input is left unused and none is overloaded, so every input has the same
weight budget. The first layer cannot narrow (``n_in > n`` is refused: some inputs would feed
fewer than one output per stage on average).

Construction (configuration model): the ``n * fan_in`` input "stubs" ``v mod n_in`` are
shuffled into an ``[n, fan_in]`` table with ``numpy.random.default_rng(seed)``; rows that repeat
an input swap the repeat with a random other cell until no row repeats one (swaps keep every
input's count).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nf_jax import topology as T

NAME = "expander"
_MAX_SWEEPS = 10_000  # repair sweeps; a sweep fixes most repeats, so this is never reached


def _int(name: str, value: Any, minimum: int) -> int:
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
    raise ValueError(f"{name}={value!r} must be an integer >= {minimum}")
  return int(value)


def normalise(n: int, n_in: int, params: dict[str, Any]) -> dict[str, Any]:
  """Validates ``fan_in`` (1 <= fan_in <= n_in), ``depth`` (default log_fan_in n) and ``seed``."""
  if n_in > n:
    raise ValueError(
      f"n_in={n_in} > n={n}: an expander stage uses every input evenly and cannot narrow; "
      "use n_in <= n, or the 'random' or 'dense' family for a narrowing layer"
    )
  fan_in = _int("fan_in", params.get("fan_in", 2 if n_in >= 2 else 1), 1)
  if fan_in > n_in:
    raise ValueError(f"fan_in={fan_in} exceeds the stage input width n_in={n_in}; use <= {n_in}")
  depth = params.get("depth", T.log_depth(n, n_in, fan_in))
  return {
    "fan_in": fan_in,
    "depth": _int("depth", depth, 1),
    "seed": _int("seed", params.get("seed", 0), 0),
  }


def regular_table(rng: np.random.Generator, n: int, n_in: int, fan_in: int) -> np.ndarray:
  """``int[n, fan_in]``: rows of distinct inputs, each input used ``n*fan_in/n_in`` times (+-1)."""
  if fan_in == n_in:  # every row holds every input: the only such table
    return np.broadcast_to(np.arange(n_in), (n, n_in)).copy()
  table = rng.permutation(np.arange(n * fan_in) % n_in).reshape(n, fan_in)
  for _ in range(_MAX_SWEEPS):
    ordered = np.sort(table, axis=1)
    repeats = ordered[:, 1:] == ordered[:, :-1]
    bad_rows = np.nonzero(repeats.any(axis=1))[0]
    if bad_rows.size == 0:
      return np.sort(table, axis=1)
    for row in bad_rows:
      _, first = np.unique(table[row], return_index=True)
      repeated = np.setdiff1d(np.arange(fan_in), first)  # cells holding a repeated input
      if repeated.size == 0:  # an earlier swap of this sweep fixed the row
        continue
      dup = repeated[0]
      other = rng.integers(0, n * fan_in)
      r2, c2 = divmod(int(other), fan_in)
      table[row, dup], table[r2, c2] = table[r2, c2], table[row, dup]
  raise RuntimeError(
    f"no {fan_in}-regular table for n={n}, n_in={n_in} after {_MAX_SWEEPS} sweeps; "
    "use a smaller fan_in or another seed"
  )


def build(n: int, n_in: int, spec: dict[str, Any]) -> T.Tables:
  """Stage s gathers from a fresh regular table over its input width (``n_in`` then ``n``)."""
  rng = np.random.default_rng(spec["seed"])
  stage_n_in = [n_in] + [n] * (spec["depth"] - 1)
  stages = [regular_table(rng, n, w, spec["fan_in"]) for w in stage_n_in]
  skips = [(np.arange(n) % w)[:, None] if spec["skip"] else None for w in stage_n_in]
  return stages, skips, stage_n_in


FAMILY = T.register(
  T.Family(
    name=NAME,
    params=frozenset({"fan_in", "depth", "skip", "seed"}),
    normalise=normalise,
    num_params=lambda n, n_in, s: n * s["fan_in"] * s["depth"],
    build=build,
    narrows=False,
    seeded=True,
    radix_param="fan_in",
    valid_radices=lambda n: range(1, n + 1),
    default_depth=T.log_depth,
    rescale=T.rescale_radix,
    block_structured=False,
  )
)
