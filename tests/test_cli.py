"""The one command-line pattern (nf_jax/cli.py): configs, overrides, refusals, no import flags."""

from __future__ import annotations

import glob
import importlib.util
import json
import os
import subprocess
import sys

import pytest

from nf_jax import cli, topology_report
from nf_jax import topo_search as S
from nf_jax import topology as T
from nf_jax.hw import __main__ as hw_main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG_FILES = sorted(
  glob.glob(os.path.join(ROOT, "nf_jax", "configs", "[!_]*.py"))
  + glob.glob(os.path.join(ROOT, "benchmarks", "configs", "[!_]*.py"))
)
# The benchmark scripts that follow the pattern (pareto_bench.py follows nf_jax.pareto's).
BENCHMARKS = (
  "cascade_bench",
  "family_bench",
  "front_change",
  "hw_bench",
  "proxy_bench",
  "sweep_bench",
)


def _load(path: str):
  spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


@pytest.mark.parametrize("path", CONFIG_FILES, ids=os.path.basename)
def test_every_config_states_command_runtime_result_and_has_a_smoke_variant(path):
  module = _load(path)
  doc = module.__doc__
  for word in ("Command", "Runtime", "Result"):
    assert word in doc, f"{path}: the docstring must state the {word.lower()}"
  default, smoke = module.get_config(), module.get_config("smoke")
  assert set(default) == set(smoke), "a variant changes values, not the fields"
  assert default.to_dict() != smoke.to_dict()
  with pytest.raises(ValueError, match="unknown config variant 'nope'"):
    module.get_config("nope")


def test_importing_the_clis_and_benchmarks_defines_no_flags():
  scripts = [os.path.join(ROOT, "benchmarks", f"{b}.py") for b in BENCHMARKS]
  code = (
    "import importlib.util, sys\n"
    "from absl import flags\n"
    "import nf_jax.topo_search, nf_jax.topology_report, nf_jax.hw.__main__, nf_jax.cli\n"
    "import nf_jax.distributed, nf_jax.pareto.__main__, nf_jax.space_table\n"
    f"for i, path in enumerate({scripts!r}):\n"
    "  spec = importlib.util.spec_from_file_location(f'bench{i}', path)\n"
    "  sys.modules[spec.name] = module = importlib.util.module_from_spec(spec)\n"
    "  spec.loader.exec_module(module)\n"
    "ours = {m: [f.name for f in fs] for m, fs in flags.FLAGS.flags_by_module_dict().items()\n"
    "        if m.startswith(('nf_jax', 'bench', '__main__', '<string>'))}\n"
    "print(ours)\n"
  )
  out = subprocess.run(
    [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT
  )
  assert out.returncode == 0, out.stderr[-3000:]
  assert out.stdout.strip().splitlines()[-1] == "{}"


def test_names_and_overridden():
  assert cli.names(("butterfly,clos",)) == ("butterfly", "clos")
  assert cli.names(("butterfly", "clos")) == ("butterfly", "clos")
  assert cli.names("os, ws") == ("os", "ws")
  argv = ["prog", "--workdir=x", "--config.n=4", "--config.train.lr=1", "-config.seed", "3"]
  assert cli.overridden(argv) == {"n", "train.lr", "seed"}
  with pytest.raises(ValueError, match=r"--config.families: \['mesh'\] not among"):
    cli.check_choices("families", ["butterfly", "mesh"], T.families())
  with pytest.raises(ValueError, match="no config named 'nope'"):
    cli.config_file("nope")


def test_validate_refuses_bad_and_inapplicable_settings():
  config = cli.load_config("topo_search")
  config.families = ("butterfly,mesh",)
  with pytest.raises(ValueError, match="mesh"):
    S.validate(config)
  config = cli.load_config("hw")
  hw_main.validate(config)
  with pytest.raises(ValueError, match="--config.n does not apply to --config.workload=gemm"):
    hw_main.validate(config, overrides=frozenset({"n"}))
  config.workload = "mlp"
  hw_main.validate(config, overrides=frozenset({"n"}))
  with pytest.raises(ValueError, match="--config.gemm does not apply"):
    hw_main.validate(config, overrides=frozenset({"gemm"}))
  config = cli.load_config("topology_report")
  config.families = ("random",)
  topology_report.validate(config, overrides=frozenset({"fan_in", "seed"}))
  with pytest.raises(ValueError, match="--config.radix is a parameter of none of the families"):
    topology_report.validate(config, overrides=frozenset({"radix"}))


def test_packaged_defaults_are_the_library_defaults():
  from nf_jax import proxy

  config, fit = cli.load_config("topo_search"), proxy.FitConfig()
  assert (config.fit_n, config.fit_steps, config.fit_targets) == (fit.fit_n, fit.steps, fit.targets)
  assert cli.names(config.families) == T.FAMILIES


def test_cli_variant_file_unknown_field_and_refusal(tmp_path):
  """A variant config file that imports the default; an unknown field; a validate refusal."""
  variant = tmp_path / "variant.py"
  variant.write_text(
    "from nf_jax.configs import topology_report\n"
    "def get_config(arg=None):\n"
    "  config = topology_report.get_config()\n"
    "  config.families, config.n = ('block_diagonal',), 16\n"
    "  return config\n"
  )
  base = [sys.executable, "-m", "nf_jax.topology_report", f"--workdir={tmp_path / 'out'}"]
  run = lambda *args: subprocess.run(
    [*base, *args], capture_output=True, text=True, timeout=300, cwd=ROOT
  )
  out = run(f"--config={variant}", "--config.radix=4")
  assert out.returncode == 0, out.stderr[-3000:]
  (row,) = json.loads((tmp_path / "out" / "metrics.json").read_text())
  assert row["name"] == "block_diagonal" and row["spec"]["radix"] == 4 and row["spec"]["n"] == 16
  out = run("--helpshort")
  assert "--config: Config file with get_config()" in out.stdout and "--workdir" in out.stdout
  out = run("--config.nope=1")
  assert out.returncode == 2 and "--config.nope: the config has no field 'nope'" in out.stderr
  out = run("--config.families=random", "--config.width=3")
  assert out.returncode == 1
  assert "--config.width is a parameter of none of the families ['random']" in out.stderr


def test_compilation_cache_flag_of_topo_search(tmp_path):
  """On by default in $NF_JAX_CACHE/jax_cache; --nocompilation_cache leaves it alone."""
  smoke = f"--config={cli.config_file('topo_search')}:smoke"
  for flag, cache in (("--nocompilation_cache", tmp_path / "off"), (None, tmp_path / "on")):
    cmd = [sys.executable, "-m", "nf_jax.topo_search", smoke, f"--workdir={tmp_path / 'w'}"]
    env = dict(os.environ, NF_JAX_CACHE=str(cache))
    out = subprocess.run(
      cmd + ([flag] if flag else []), capture_output=True, text=True, timeout=300, env=env
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert (cache / "jax_cache").is_dir() == (flag is None)


def test_run_with_extra_flags_no_workdir_and_a_refusing_validate(tmp_path):
  config = tmp_path / "config.py"
  config.write_text(
    "import ml_collections\n"
    "def get_config(arg=None):\n"
    "  return ml_collections.ConfigDict(dict(n=3, name='a'))\n"
  )
  code = (
    "from absl import flags\n"
    "from nf_jax import cli\n"
    "def validate(config, overrides):\n"
    "  if config.n < 0:\n"
    "    raise ValueError(f'--config.n={config.n} must be >= 0')\n"
    "def main(config):\n"
    "  print(config.n, config.name, flags.FLAGS.resume, 'workdir' in flags.FLAGS)\n"
    f"cli.run(main, {str(config)!r}, validate=validate,\n"
    "        define_flags=lambda: flags.DEFINE_bool('resume', False, 'resume'))\n"
  )
  run = lambda *args: subprocess.run(
    [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120
  )
  out = run("--config.n=5", "--resume")
  assert out.returncode == 0, out.stderr[-2000:]
  assert out.stdout.split() == ["5", "a", "True", "False"]
  out = run("--config.n=-1")
  assert out.returncode == 1 and "error: --config.n=-1 must be >= 0" in out.stderr
  out = run("extra")
  assert out.returncode != 0 and "unexpected arguments: ['extra']" in out.stderr
