"""``cpu_ffi``: the whole cascade per batch tile in one C++ XLA FFI call (CPU only).

XLA:CPU makes one memory pass per stage and per gather; ``cpu_cascade.cc`` holds a batch tile
(8 rows forward, 16 backward) lane-major in cache and runs every stage on it, so any gather
table vectorises as row multiply-adds (see the file's header). The backward pass is a second
FFI call that recomputes the tile's forward pass and returns ``dx`` and ``dW`` (a
``custom_vjp``).

The source is compiled on first use with the system C++ compiler (``$CXX``, else ``g++``) at
``-O3 -march=native`` into ``$NF_JAX_CACHE`` (default ``~/.cache/nf_jax``), keyed by a hash of
the source, the flags, the jaxlib version and this CPU's model and flags. The build is atomic
(a temporary file in the cache folder, then ``os.replace``) and leaves a size + sha256 record
beside the library (``<name>.so.sha256``); a library that fails it (truncated, corrupt, or
without a record) or that the loader rejects is rebuilt with a WARNING. Arithmetic is
float32; other dtypes are cast at the boundary. ``NF_CPU_THREADS`` caps the worker threads
(default: all hardware threads).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import json
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
from nf_jax.kernels.tables import CascadeTables

from nf_jax import io_utils
from nf_jax.compile_cache import cache_root

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
  return cache_root() / f"cpu_cascade-{key}.so"


def _record_path(library: Path) -> Path:
  """The integrity record beside a cached library: JSON ``{"size": bytes, "sha256": hex}``."""
  return library.with_name(library.name + ".sha256")


def _digest(path: Path | str) -> dict[str, int | str]:
  data = Path(path).read_bytes()
  return {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def cache_problem(library: Path) -> str | None:
  """Why the cached ``library`` must not be loaded (None: absent, or it matches its record).

  Loading a truncated shared object maps pages past its end and kills the process with SIGBUS,
  so the size and sha256 are checked against the record written at build time first.
  """
  if not library.exists():
    return None
  record_path = _record_path(library)
  try:
    record = json.loads(record_path.read_text())
    want = {"size": int(record["size"]), "sha256": str(record["sha256"])}
  except FileNotFoundError:
    return f"it has no integrity record {record_path.name} (an older or interrupted build)"
  except (OSError, ValueError, TypeError, KeyError) as err:
    return f"its integrity record {record_path.name} is unreadable ({type(err).__name__})"
  got = _digest(library)
  if got["size"] != want["size"]:
    return f"it is {got['size']} bytes but was built as {want['size']} (truncated or partial)"
  if got["sha256"] != want["sha256"]:
    return "its sha256 differs from the one recorded at build time (corrupt)"
  return None


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
  try:
    cmd = [compiler, *FLAGS, "-isystem", jax.ffi.include_dir(), str(SOURCE), "-o", tmp]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
      raise BuildError(f"compiling {SOURCE.name} failed ({' '.join(cmd)}):\n{done.stderr[-2000:]}")
    record = json.dumps(_digest(tmp))
    os.chmod(tmp, 0o755)
    os.replace(tmp, target)
  finally:
    if os.path.exists(tmp):
      os.unlink(tmp)
  io_utils.atomic_write_text(str(_record_path(target)), record)
  logging.info("cpu_ffi: built %s", target)


@functools.cache
def _load() -> None:
  """Builds (once per machine and source version), verifies, loads and registers the targets.

  A cached library that fails its integrity record, or that the loader rejects, is rebuilt
  (with a WARNING saying why) instead of being loaded or disabling the kernel for good.
  """
  path = _library_path()
  problem = cache_problem(path)
  if problem is not None:
    logging.warning("cpu_ffi: rebuilding the cached kernel %s: %s", path, problem)
  if problem is not None or not path.exists():
    _compile(path)
  try:
    library = ctypes.cdll.LoadLibrary(str(path))
  except OSError as err:
    logging.warning("cpu_ffi: rebuilding %s: the loader rejected it (%s)", path, err)
    _compile(path)
    try:
      library = ctypes.cdll.LoadLibrary(str(path))
    except OSError as again:
      raise BuildError(
        f"the freshly built {path} does not load ({again}); check the compiler ($CXX) or pick "
        "impl='xla_blocked' / 'xla_gather'"
      ) from again
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


def _layout(tables: CascadeTables, stage_n_in: Sequence[int]) -> np.ndarray:
  """``int32[D, 6]``: per stage n_in, n_out, fan_in, table offset, skip_r, skip offset.

  Reads only the tables' shapes (static under ``jit`` and ``vmap``), never their entries.
  """
  sizes = [t.shape[0] * t.shape[1] for t in tables.stages]
  offsets = np.cumsum([0] + sizes)
  rows, position = [], int(offsets[-1])
  for n_in, table, offset, skip in zip(stage_n_in, tables.stages, offsets, tables.skips):
    skip_r = 0 if skip is None else skip.shape[1]
    rows.append((n_in, table.shape[0], table.shape[1], offset, skip_r, position))
    position += table.shape[0] * skip_r
  return np.array(rows, np.int32)


def _flat_tables(tables: CascadeTables) -> np.ndarray | jax.Array:
  """``int32[T]``: every stage table, then every skip table, flattened, in ``_layout`` order.

  A numpy array for static tables; a traced array for a sweep's per-model tables
  (``nf_jax.train``), which go through the same kernel as data.
  """
  parts = [t.reshape(-1) for t in tables.stages]
  parts += [k.reshape(-1) for k in tables.skips if k is not None]
  if all(isinstance(p, np.ndarray) for p in parts):
    return np.concatenate(parts).astype(np.int32)
  return jnp.concatenate([jnp.asarray(p, jnp.int32) for p in parts])


def _forward(x, flat_w, tables, layout, n_out):
  out = jax.ShapeDtypeStruct((x.shape[0], n_out), jnp.float32)
  call = jax.ffi.ffi_call("nf_cascade_forward", out, vmap_method="sequential")
  return call(x, flat_w, tables, layout)


@functools.partial(jax.custom_vjp, nondiff_argnums=(4,))
def _fused(x, flat_w, tables, layout, n_out):
  """``(x f32[B, n_in], flat_w f32[W], tables s32[T], layout s32[D, 6]) -> f32[B, n_out]``."""
  return _forward(x, flat_w, tables, layout, n_out)


def _fused_fwd(x, flat_w, tables, layout, n_out):
  return _forward(x, flat_w, tables, layout, n_out), (x, flat_w, tables, layout)


def _fused_bwd(n_out, residuals, g):
  x, flat_w, tables, layout = residuals
  shapes = (
    jax.ShapeDtypeStruct(x.shape, jnp.float32),
    jax.ShapeDtypeStruct(flat_w.shape, jnp.float32),
  )
  call = jax.ffi.ffi_call("nf_cascade_backward", shapes, vmap_method="sequential")
  dx, dw = call(x, flat_w, tables, layout, g)
  return dx, dw, None, None


_fused.defvjp(_fused_fwd, _fused_bwd)


def cascade_matmul_cpu(
  x: jax.Array, weights: Sequence[jax.Array], tables: CascadeTables, stage_n_in: Sequence[int]
) -> jax.Array:
  """All stages in one FFI call: ``x: [batch, n_in] -> float32[batch, n_out]``.

  ``tables`` may be traced (vmapped per-model tables); the kernel reads them as data and
  checks every entry against its stage's input width ``stage_n_in[s]``
  (``Topology.stage_n_in``).

  Raises:
    BuildError: the kernel cannot be built here (the message says why).
  """
  _load()
  flat_w = jnp.concatenate([w.reshape(-1).astype(jnp.float32) for w in weights])
  flat_tables, layout = _flat_tables(tables), jnp.asarray(_layout(tables, stage_n_in))
  n_out = int(tables.stages[-1].shape[0])
  return _fused(x.astype(jnp.float32), flat_w, flat_tables, layout, n_out)
