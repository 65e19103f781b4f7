"""Where nf_jax keeps its caches, and JAX's persistent compilation cache for the CLIs.

``$NF_JAX_CACHE`` (default ``~/.cache/nf_jax``) holds the compiled cpu_ffi kernel
(:mod:`nf_jax.kernels.cpu_ffi`) and, under ``jax_cache/``, JAX's persistent compilation cache:
XLA executables keyed by JAX on the program, the jax/jaxlib versions, the backend and the
compile options, so a second run of a CLI loads them instead of recompiling. Libraries do not
turn it on (that is the caller's choice); the CLIs do, and ``--nocompilation_cache`` turns it off.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax

# Compiles faster than this are not written to the cache. JAX's default (1 s) would skip most of
# the proxy's sub-second compiles; a 2-generation `python -m nf_jax.pareto` stores 25 programs
# (1.6 MB) at 0.1 s and 27 at 0 s (benchmarks/README.md, "Compilation cache").
MIN_COMPILE_TIME_S = 0.1


def cache_root() -> Path:
  """``$NF_JAX_CACHE``, or ``~/.cache/nf_jax`` when it is unset or empty."""
  value = os.environ.get("NF_JAX_CACHE")
  return Path(value) if value else Path.home() / ".cache" / "nf_jax"


def enable_compilation_cache(path: str | os.PathLike | None = None) -> Path:
  """Turns on JAX's persistent compilation cache in ``path`` and returns the folder.

  Default folder: JAX's own setting if one is made (``JAX_COMPILATION_CACHE_DIR`` or
  ``jax.config``), else ``cache_root()/jax_cache``. JAX's
  ``JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS``, if set, likewise wins over
  :data:`MIN_COMPILE_TIME_S`. Call before the first compilation. Raises ``ValueError`` if the
  folder cannot be created (a file in the way, no permission), naming what to change.
  """
  if path is None:
    path = jax.config.jax_compilation_cache_dir or cache_root() / "jax_cache"
  folder = Path(path)
  try:
    folder.mkdir(parents=True, exist_ok=True)
  except OSError as err:
    raise ValueError(
      f"cannot create the JAX compilation cache folder {folder} ({err}); set NF_JAX_CACHE to a "
      "writable folder or pass --nocompilation_cache"
    ) from err
  jax.config.update("jax_compilation_cache_dir", str(folder))
  if "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS" not in os.environ:
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_TIME_S)
  return folder
