"""One of ``m`` disjoint parts of the space benchmark, so that ``m`` processes (one per core, or
one per machine) train it side by side: ``--config=experiments/configs/space_benchmark_part.py:k/m``
keeps the entries ``i`` of :mod:`configs.space_benchmark`'s fixed shuffle with ``i % m == k``
(every part spans all families and widths). The recipe is the benchmark's own, so each part's
workdir resumes from, and merges back into, the benchmark's results.

Command (two parts, each from its own workdir, then merged and checked complete)::

  python experiments/main.py --workdir=runs/space_benchmark_0 \
      --config=experiments/configs/space_benchmark_part.py:0/2 &
  python experiments/main.py --workdir=runs/space_benchmark_1 \
      --config=experiments/configs/space_benchmark_part.py:1/2
  python experiments/merge_workdirs.py --into=runs/space_benchmark \
      --workdirs=runs/space_benchmark_0,runs/space_benchmark_1
  python experiments/main.py --workdir=runs/space_benchmark \
      --config=experiments/configs/space_benchmark.py   # trains nothing if the parts are done

``:runlocal`` (or ``:k/m,runlocal``) shrinks part 0 of 2 (or part k of m) to a smoke run.

Expected runtime on 2 CPU cores: the benchmark's (3-4 h), divided by the parts that run at
once, up to about two: one training process keeps about one core busy (measured in
experiments/README.md). Expected result: the benchmark's. The nn.Dense baseline trains in
part 0.
"""

from __future__ import annotations

from configs import default, space_benchmark


def parse_part(arg: str | None) -> tuple[int, int]:
  """``"k/m"`` -> ``(k, m)``, with ``0 <= k < m``."""
  try:
    k, m = (int(v) for v in str(arg).split("/"))
  except ValueError:
    raise ValueError(
      f"space_benchmark_part needs ':k/m' after the config path (part k of m), got {arg!r}; "
      "e.g. --config=experiments/configs/space_benchmark_part.py:0/2"
    ) from None
  if not 0 <= k < m:
    raise ValueError(f"part {k}/{m}: need 0 <= k < m")
  return k, m


def get_config(arg: str | None = None):
  smoke = arg == "runlocal" or str(arg).endswith(",runlocal")
  k, m = (0, 2) if arg == "runlocal" else parse_part(str(arg).removesuffix(",runlocal"))
  config = space_benchmark.get_config()
  config.models = [entry for i, entry in enumerate(config.models) if i % m == k]
  config.include_dense = bool(config.include_dense) and k == 0
  return default.runlocal(config, keep=3) if smoke else config
