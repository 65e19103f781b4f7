"""Settings that do not apply are refused at start, never dropped (issue 17).

A setting the chosen mode never reads (``--config.n_partitions`` with ``algorithm=nsga2``,
``--config.fan_ins`` without the random family) would otherwise be ignored without a word, and
the user would believe it took effect. The refusals live in each CLI's ``validate`` step
(:mod:`nf_jax.cli`) and, for the co-design search's accuracy fields, in
:class:`nf_jax.pareto.config.SearchConfig`. hw and topology_report: ``tests/test_cli.py``.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import pytest

from nf_jax import cli
from nf_jax import topo_search as S
from nf_jax import topology as T
from nf_jax.pareto import __main__ as pareto_main
from nf_jax.pareto import config as pareto_config
from nf_jax.pareto import search as PS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = dict(population=12, n_partitions=1, inner_partitions=1)
IGNORED = "it would be ignored; drop it, or choose the mode that reads it"


@pytest.mark.parametrize(
  "fields, message",
  [
    (dict(accuracy="proxy", table="t.csv"), "--config.table='t.csv' is read only with"),
    (
      dict(accuracy="train", calibration="c.csv", features=("log_params",)),
      r"--config.calibration='c.csv' is read only with --config.accuracy=proxy; "
      r"--config.features=\('log_params',\) is read only with --config.accuracy=proxy or table",
    ),
    (dict(accuracy="table", calibration="c.csv"), "calibration='c.csv' is read only with"),
    (
      dict(accuracy="proxy", features=("log_params", "path_entropy"), fit_steps=5),
      r"--config.fit_steps=5 is read only with --config.accuracy=proxy or table and a "
      r"fit-based feature \('fit_residual', 'fit_score', 'eff_rank'\)",
    ),
    (dict(accuracy="train", fit_steps=5), "--config.fit_steps=5 is read only"),
    (dict(accuracy="table", train_steps=5), "--config.train_steps=5 is read only with"),
  ],
)
def test_search_config_refuses_accuracy_fields_its_mode_never_reads(fields, message):
  with pytest.raises(ValueError, match=message) as err:
    pareto_config.SearchConfig(**fields)
  assert IGNORED in str(err.value)


def test_search_config_accepts_defaults_and_fields_where_they_apply():
  pareto_config.SearchConfig()
  for accuracy in pareto_config.ACCURACY_MODES:  # every mode with every default
    pareto_config.SearchConfig(accuracy=accuracy)
  pareto_config.SearchConfig(
    accuracy="proxy", calibration="c.csv", features=("fit_score",), fit_steps=5
  )
  pareto_config.SearchConfig(accuracy="table", table="t.csv", features=("eff_rank",), fit_steps=5)
  pareto_config.SearchConfig(accuracy="train", train_steps=5)
  # The library runs one config under each algorithm (benchmarks/pareto_bench.py): the
  # algorithm's fields are refused by the CLI only.
  for algorithm in pareto_config.ALGORITHMS:
    pareto_config.SearchConfig(**TINY, algorithm=algorithm)


def test_pareto_cli_refuses_the_algorithm_fields_without_nsga3():
  pareto_main.validate(pareto_config.search_config(pareto_config.get_config()))  # the default
  nsga2 = pareto_config.SearchConfig(**TINY, algorithm="nsga2")
  with pytest.raises(ValueError, match=r"--config.n_partitions=1 is read only with --config.alg"):
    pareto_main.validate(nsga2)  # away from the default (a --config file set it)
  default_values = dataclasses.replace(
    nsga2, n_partitions=pareto_config.SearchConfig.n_partitions, inner_partitions=1
  )
  pareto_main.validate(default_values)
  with pytest.raises(ValueError, match=r"--config.n_partitions=2 is read only") as err:
    pareto_main.validate(default_values, overrides=frozenset({"n_partitions", "seed"}))
  assert "algorithm='nsga2'" in str(err.value) and IGNORED in str(err.value)
  pareto_main.validate(  # nsga3 reads them
    pareto_config.SearchConfig(**TINY), overrides=frozenset({"n_partitions", "inner_partitions"})
  )
  with pytest.raises(ValueError, match="--config.train_steps=100 is read only"):
    pareto_main.validate(pareto_config.SearchConfig(), overrides=frozenset({"train_steps"}))


def _pareto(*args: str) -> subprocess.CompletedProcess:
  return subprocess.run(
    [sys.executable, "-m", "nf_jax.pareto", *args],
    cwd=ROOT,
    capture_output=True,
    text=True,
    timeout=300,
    env={**os.environ, "JAX_PLATFORMS": "cpu"},
  )


def test_pareto_command_line_refuses_before_any_work(tmp_path):
  workdir = str(tmp_path / "run")
  out = _pareto(
    f"--workdir={workdir}",
    "--config.algorithm=nsga2",
    "--config.n_partitions=3",
    "--nocompilation_cache",
  )
  assert out.returncode == 1, out.stderr[-2000:]
  assert "error: --config.n_partitions=3 is read only with --config.algorithm=nsga3" in out.stderr
  assert not os.path.exists(workdir)  # refused before the workdir was made
  out = _pareto("--overwrite", "--nocompilation_cache")
  assert out.returncode == 1
  assert "error: --overwrite needs --workdir" in out.stderr
  with pytest.raises(ValueError, match="--overwrite needs --workdir"):
    PS.run(pareto_config.SearchConfig(), None, overwrite=True, progress=False)


@pytest.mark.parametrize(
  "fields, message",
  [
    (dict(fan_ins=(0,)), r"--config.fan_ins: 0 is not an integer >= 1"),
    (dict(fan_ins=(2.5,)), r"--config.fan_ins: 2.5 is not an integer >= 1"),
    (dict(parallel_widths=("two",)), r"--config.parallel_widths: 'two' is not an integer >= 1"),
    (dict(random_seeds=0), r"--config.random_seeds=0 must be >= 1"),
    (
      dict(families=("butterfly,clos",), fan_ins=(4,), random_seeds=2),
      r"--config.fan_ins=\(4,\) is read only with \['random'\] in --config.families \(given "
      r"\['butterfly', 'clos'\]\): it would be ignored",
    ),
    (
      dict(families=("butterfly",), random_seeds=2),
      r"--config.random_seeds=2 is read only with \['random'\]",
    ),
    (
      dict(families=("butterfly",), parallel_widths=(2,)),
      r"--config.parallel_widths=\(2,\) is read only with \['parallel_butterfly'\]",
    ),
    (
      dict(n=64, fan_ins=(4, 128)),
      r"--config.fan_ins: 128 gives no valid random topology for n=64, n_in=64, depth in "
      r"\[1, 12\]; drop it",
    ),
  ],
)
def test_topo_search_refuses_grid_values_that_would_be_dropped(fields, message):
  config = cli.load_config("topo_search")
  config.update(fields)
  with pytest.raises(ValueError, match=message):
    S.validate(config, overrides=frozenset(fields))


def test_topo_search_accepts_grid_values_its_families_read():
  config = cli.load_config("topo_search")
  S.validate(config, overrides=frozenset({"fan_ins", "parallel_widths", "random_seeds"}))
  config.update(dict(n=64, fan_ins=(2, 64), families=("random,butterfly",)))
  S.validate(config, overrides=frozenset({"fan_ins", "families"}))
  config = cli.load_config("topo_search")
  config.families = ("butterfly",)
  S.validate(config, overrides=frozenset({"families"}))  # the grid's defaults: not refused
  with pytest.raises(ValueError, match="is read only with"):
    S.validate(config, overrides=frozenset({"families", "fan_ins"}))  # given: refused


def test_topo_search_command_line_refuses_fan_in_zero(tmp_path):
  out = subprocess.run(
    [
      sys.executable,
      "-m",
      "nf_jax.topo_search",
      f"--workdir={tmp_path / 'run'}",
      "--config.fan_ins=0",
      "--nocompilation_cache",
    ],
    cwd=ROOT,
    capture_output=True,
    text=True,
    timeout=300,
    env={**os.environ, "JAX_PLATFORMS": "cpu"},
  )
  assert out.returncode == 1
  assert "error: --config.fan_ins: 0 is not an integer >= 1" in out.stderr
  assert not os.path.exists(tmp_path / "run")


@pytest.mark.parametrize("name", [f for f in T.families() if T.family(f).search_grid])
def test_family_search_options_are_the_grid_fields_its_search_grid_reads(name):
  """``Family.search_options`` against the family's own grid: changing a field it lists changes
  its candidates, changing any other field does not."""
  fam = T.family(name)
  base = T.SearchGrid()
  other = dict(parallel_widths=(3, 5), fan_ins=(3, 5), random_seeds=base.random_seeds + 2)

  def specs(grid: T.SearchGrid) -> list:
    return [
      p
      for depth in (1, 2, 3)
      for skip in (False, True)
      for p in fam.search_grid(64, 64, depth, skip, grid)
    ]

  for field in other:
    changed = specs(dataclasses.replace(base, **{field: other[field]})) != specs(base)
    assert changed == (field in fam.search_options), field
