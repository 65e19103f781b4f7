"""``cpu_ffi``: the whole cascade per batch tile in one C++ XLA FFI call (CPU only).

XLA:CPU makes one memory pass per stage and per gather; ``cpu_cascade.cc`` holds a 16-row
batch tile lane-major in cache and runs every stage on it, so any gather table vectorises as
row multiply-adds (see the file's header). The backward pass is a second FFI call that
recomputes the tile's forward pass and returns ``dx`` and ``dW`` (a ``custom_vjp``).

The source is compiled on first use with the system C++ compiler (``$CXX``, else ``g++``) at
``-O3 -march=native`` into ``$NF_JAX_CACHE`` (default ``~/.cache/nf_jax``), keyed by a hash of
the source, the flags, the jaxlib version and this CPU's model and flags. Arithmetic is
float32; other dtypes are cast at the boundary. ``NF_CPU_THREADS`` caps the worker threads
(default: all hardware threads).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import jaxlib
import numpy as np
from absl import logging

from nf_jax.topology import Topology

SOURCE = Path(__file__).with_name("cpu_cascade.cc")
FLAGS = ("-O3", "-march=native", "-std=c++17", "-shared", "-fPIC")
TARGETS = {"nf_cascade_forward": "NfCascadeForward", "nf_cascade_backward": "NfCascadeBackward"}


class BuildError(RuntimeError):
  """The C++ kernel could not be compiled or loaded; the message says why and what to do."""


def _cpu_identity() -> str:
  try:
    with open("/proc/cpuinfo") as f:
      lines = [ln for ln in f if ln.startswith(("model name", "flags"))][:2]
  except OSError:
    lines = []
  return platform.machine() + "".join(lines)


def _library_path() -> Path:
  key = hashlib.sha256(
    SOURCE.read_bytes() + repr((FLAGS, jaxlib.__version__, _cpu_identity())).encode()
  ).hexdigest()[:16]
  cache = Path(os.environ.get("NF_JAX_CACHE", Path.home() / ".cache" / "nf_jax"))
  return cache / f"cpu_cascade-{key}.so"


def _compile(target: Path) -> None:
  compiler = os.environ.get("CXX", "g++")
  if shutil.which(compiler) is None:
    raise BuildError(
      f"no C++ compiler {compiler!r} on PATH to build {SOURCE.name}: install one "
      "(apt-get install g++) or set CXX, or pick impl='xla_blocked' / 'xla_gather'"
    )
  target.parent.mkdir(parents=True, exist_ok=True)
  # Compile to a private name, then rename: concurrent processes never load a partial file.
  fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
  os.close(fd)
  cmd = [compiler, *FLAGS, "-isystem", jax.ffi.include_dir(), str(SOURCE), "-o", tmp]
  done = subprocess.run(cmd, capture_output=True, text=True)
  if done.returncode != 0:
    os.unlink(tmp)
    raise BuildError(f"compiling {SOURCE.name} failed ({' '.join(cmd)}):\n{done.stderr[-2000:]}")
  os.replace(tmp, target)
  logging.info("cpu_ffi: built %s", target)


@functools.cache
def _load() -> None:
  """Builds (once per machine and source version), loads and registers the FFI targets."""
  path = _library_path()
  if not path.exists():
    _compile(path)
  library = ctypes.cdll.LoadLibrary(str(path))
  for name, symbol in TARGETS.items():
    jax.ffi.register_ffi_target(name, jax.ffi.pycapsule(getattr(library, symbol)), platform="cpu")


def refusal() -> str | None:
  """Why ``cpu_ffi`` cannot run here (None when it can). Builds the kernel on first call."""
  if jax.default_backend() != "cpu":
    return f"the C++ kernel runs on the CPU backend only, not {jax.default_backend()}"
  try:
    _load()
  except (BuildError, OSError) as err:
    return str(err)
  return None


@functools.lru_cache(maxsize=256)
def _packed(topology: Topology) -> tuple[np.ndarray, np.ndarray]:
  """``(tables int32[T], layout int32[D, 6])`` in ``cpu_cascade.cc``'s operand format."""
  offsets = np.cumsum([0] + [t.size for t in topology.stages])
  skip_parts, skip_offsets, position = [], [], int(offsets[-1])
  for skip in topology.skips:
    skip_offsets.append(position)
    if skip is not None:
      skip_parts.append(skip.reshape(-1))
      position += skip.size
  tables = np.concatenate([t.reshape(-1) for t in topology.stages] + skip_parts)
  layout = np.array(
    [
      (n_in, table.shape[0], table.shape[1], offset, 0 if skip is None else skip.shape[1], skip_at)
      for n_in, table, offset, skip, skip_at in zip(
        topology.stage_n_in, topology.stages, offsets, topology.skips, skip_offsets
      )
    ],
    np.int32,
  )
  return tables.astype(np.int32), layout


@functools.lru_cache(maxsize=256)
def _fused(topology: Topology):
  """A ``custom_vjp`` function ``(x f32[B, n_in], flat_w f32[W]) -> f32[B, n_out]``."""
  tables, layout = _packed(topology)

  def forward(x, flat_w):
    out = jax.ShapeDtypeStruct((x.shape[0], topology.n_out), jnp.float32)
    call = jax.ffi.ffi_call("nf_cascade_forward", out, vmap_method="sequential")
    return call(x, flat_w, jnp.asarray(tables), jnp.asarray(layout))

  @jax.custom_vjp
  def fused(x, flat_w):
    return forward(x, flat_w)

  def fused_fwd(x, flat_w):
    return forward(x, flat_w), (x, flat_w)

  def fused_bwd(residuals, g):
    x, flat_w = residuals
    shapes = (
      jax.ShapeDtypeStruct(x.shape, jnp.float32),
      jax.ShapeDtypeStruct(flat_w.shape, jnp.float32),
    )
    call = jax.ffi.ffi_call("nf_cascade_backward", shapes, vmap_method="sequential")
    return tuple(call(x, flat_w, jnp.asarray(tables), jnp.asarray(layout), g))

  fused.defvjp(fused_fwd, fused_bwd)
  return fused


def cascade_matmul_cpu(x: jax.Array, weights: Sequence[jax.Array], topology: Topology) -> jax.Array:
  """All stages in one FFI call: ``x: [batch, n_in] -> float32[batch, n_out]``.

  Raises:
    BuildError: the kernel cannot be built here (the message says why).
  """
  _load()
  flat_w = jnp.concatenate([w.reshape(-1).astype(jnp.float32) for w in weights])
  return _fused(topology)(x.astype(jnp.float32), flat_w)
