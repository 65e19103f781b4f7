"""One command-line pattern for every nf_jax program, in the shape of the flax examples.

A program is a module with a thin ``main(config, workdir)`` (all the work in importable
functions), a ``validate(config, overrides)`` that refuses bad or inapplicable settings before
any expensive work, and a config file whose ``get_config(arg=None)`` returns an
``ml_collections.ConfigDict`` and whose docstring states the command, the runtime and the result.
The package's own CLIs keep their config files in ``nf_jax/configs/`` (shipped in the wheel);
the benchmark scripts in ``benchmarks/configs/``. :func:`run` defines the flags when the
program starts, never at import::

  python -m nf_jax.topo_search --workdir=runs/ts --config.n=512 --config.budget=20000
  python -m nf_jax.topo_search --config=nf_jax/configs/topo_search.py:smoke   # get_config("smoke")
  python -m nf_jax.topo_search --config=my_variant.py   # a file that imports the default, edits it

``--config.<field>=<value>`` overrides one field (a tuple: ``--config.fan_ins=2,4``; a tuple of
names: ``--config.families=butterfly,clos``, read with :func:`names`); an unknown field is
refused. Run control that does not change results stays in flags, as in ``python -m
nf_jax.pareto``: ``--workdir`` and, for a program that compiles much, ``--compilation_cache``
(JAX's persistent compilation cache, :mod:`nf_jax.compile_cache`; ``--nocompilation_cache``
turns it off).
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Iterable, Sequence

import ml_collections
from absl import app, flags
from ml_collections import config_flags

from nf_jax.compile_cache import enable_compilation_cache

CONFIG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")


def config_file(name: str) -> str:
  """Path of the packaged config file ``nf_jax/configs/<name>.py`` (the default ``--config``)."""
  path = os.path.join(CONFIG_DIR, f"{name}.py")
  if not os.path.isfile(path):
    choices = sorted(f[:-3] for f in os.listdir(CONFIG_DIR) if f.endswith(".py") and f[0] != "_")
    raise ValueError(f"no config named {name!r} in {CONFIG_DIR}; choose from {choices}")
  return path


def load_config(name: str, arg: str | None = None) -> ml_collections.ConfigDict:
  """``get_config(arg)`` of the packaged config ``name``: what the CLI runs with no flags."""
  config_file(name)  # names the choices when ``name`` is wrong
  return importlib.import_module(f"nf_jax.configs.{name}").get_config(arg)


def names(value: str | Iterable[str]) -> tuple[str, ...]:
  """A tuple of names from a config field: ``--config.families=butterfly,clos`` reaches the
  config as ``("butterfly,clos",)`` (ml_collections parses a comma list of bare words as one
  string), ``--config.families="('butterfly', 'clos')"`` as the tuple; both give the same."""
  items = [value] if isinstance(value, str) else list(value)
  return tuple(part.strip() for item in items for part in str(item).split(",") if part.strip())


def check_choices(field: str, values: Sequence[str], choices: Sequence[str]) -> None:
  """Raises ``ValueError`` naming ``--config.<field>`` when a value is not one of ``choices``."""
  bad = [v for v in values if v not in choices]
  if bad:
    raise ValueError(f"--config.{field}: {bad} not among {list(choices)}")
  if not values:
    raise ValueError(f"--config.{field} is empty; choose from {list(choices)}")


def overridden(argv: Sequence[str], flag: str = "config") -> frozenset[str]:
  """The config fields set on the command line ``argv`` (``--config.a.b=1`` gives ``"a.b"``):
  what a ``validate`` may refuse when the chosen mode does not read it."""
  prefixes = (f"--{flag}.", f"-{flag}.")
  out = set()
  for arg in argv:
    if arg.startswith(prefixes):
      out.add(arg.split(".", 1)[1].split("=", 1)[0])
  return frozenset(out)


def _unknown_field(err: Exception, argv: Sequence[str]) -> SystemExit:
  """The exit for an override of a field the config lacks (ml_collections raises a bare
  ``AttributeError``/``KeyError`` for it, when the flag is defined or parsed)."""
  field = str(err).strip("\"'")
  sys.stderr.write(
    f"error: --config.{field}: the config has no field {field!r} (overrides given: "
    f"{sorted(overridden(argv))}); the fields are those that get_config() of the --config file "
    "sets\n"
  )
  return SystemExit(2)


def _parse(argv: list[str]) -> list[str]:
  """absl's parser, with an unknown ``--config.<field>`` reported as such."""
  try:
    return app.parse_flags_with_usage(argv)
  except (AttributeError, KeyError) as err:
    raise _unknown_field(err, argv) from err


def run(
  main: Callable[..., None],
  default_config: str,
  *,
  validate: Callable[..., None] | None = None,
  workdir: str | None = None,
  workdir_help: str = "Output folder.",
  compilation_cache: bool = False,
  define_flags: Callable[[], None] | None = None,
) -> None:
  """Defines ``--config`` (default: the file ``default_config``) and, when ``workdir`` is given,
  ``--workdir`` (with that default) and, when ``compilation_cache``, ``--compilation_cache``
  (default on); parses the command line and calls ``main(config, workdir)`` (``main(config)``
  without a workdir). ``define_flags`` defines a program's other run-control flags (such as
  ``--resume``), read by its ``main`` through ``absl.flags.FLAGS``.

  Before ``main``: refuses positional arguments, runs ``validate(config, overrides)`` (the
  fields set on the command line, :func:`overridden`; a ``ValueError`` exits with status 1 and
  its message, before any expensive work) and turns on the compilation cache if asked.
  """
  try:  # ml_collections reads the overrides of sys.argv here already
    config_flags.DEFINE_config_file(
      "config",
      default_config,
      f"Config file with get_config() (default {default_config}); append :<arg> for a variant "
      "(e.g. :smoke) and override fields with --config.<field>=<value>.",
      lock_config=True,
    )
  except (AttributeError, KeyError) as err:
    raise _unknown_field(err, sys.argv) from err
  if workdir is not None:
    flags.DEFINE_string("workdir", workdir, workdir_help)
  if compilation_cache:
    flags.DEFINE_bool(
      "compilation_cache",
      True,
      "Keep compiled XLA programs in $NF_JAX_CACHE/jax_cache (default ~/.cache/nf_jax/jax_cache).",
    )
  if define_flags is not None:
    define_flags()
  # Listed by --helpshort, which shows the flags of the program's own module (sys.argv[0]).
  for name in ("config", "workdir", "compilation_cache"):
    if name in flags.FLAGS:
      flags.FLAGS.register_key_flag_for_module(sys.argv[0], flags.FLAGS[name])

  def _main(argv: Sequence[str]) -> None:
    if len(argv) > 1:
      raise app.UsageError(f"unexpected arguments: {list(argv[1:])}")
    config = flags.FLAGS.config
    try:
      if validate is not None:
        validate(config, overrides=overridden(sys.argv))
      if compilation_cache and flags.FLAGS.compilation_cache:
        enable_compilation_cache()
    except ValueError as err:
      raise SystemExit(f"error: {err}") from err
    if workdir is None:
      main(config)
    else:
      main(config, flags.FLAGS.workdir)

  app.run(_main, flags_parser=_parse)
