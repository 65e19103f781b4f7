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


def cache_root() -> Path:
  """``$NF_JAX_CACHE``, or ``~/.cache/nf_jax`` when it is unset or empty."""
  value = os.environ.get("NF_JAX_CACHE")
  return Path(value) if value else Path.home() / ".cache" / "nf_jax"


def enable_compilation_cache(path: str | os.PathLike | None = None) -> Path:
  """Turns on JAX's persistent compilation cache in ``path`` and returns the folder.

  Default folder: JAX's own setting if one is made (``JAX_COMPILATION_CACHE_DIR`` or
  ``jax.config``), else ``cache_root()/jax_cache``. JAX's other cache settings, such as its 1 s
  minimum compile time, keep their values (benchmarks/README.md, "Compilation cache", measures
  the choice). Call before the first compilation. Raises ``ValueError`` if the folder cannot be
  created (a file in the way, no permission), naming what to change.
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
  return folder
