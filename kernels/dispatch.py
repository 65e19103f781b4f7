"""What ``impl="auto"`` runs on each lowering platform, and where each choice was measured.

``cascade_matmul`` resolves ``"auto"`` per *lowering* platform (``jax.lax.platform_dependent``),
not per the host's default backend, so ``jax.export(..., platforms=["tpu"])`` on a CPU host
lowers the TPU choice. Each platform tries the paths of its :data:`AUTO_ORDER` entry in order
and takes the first that accepts the topology; every entry lists only paths in
:data:`LOWERS` for that platform (``tests/test_kernels_export.py`` cross-lowers them all).
"""

from __future__ import annotations

import dataclasses

import jax

# The lowering platforms ``jax.lax.platform_dependent`` distinguishes ("gpu" is cuda or rocm).
PLATFORMS = ("cpu", "cuda", "rocm", "tpu")

# Paths that lower on each platform. pallas is written for the Triton lowering (GPU; CPU only
# interpreted); its kernels pass Triton CompilerParams, which the TPU (Mosaic) lowering rejects
# (an AssertionError when exporting for TPU). cpu_ffi is a CPU-only XLA FFI custom call.
LOWERS: dict[str, tuple[str, ...]] = {
  "cpu": ("cpu_ffi", "xla_blocked", "xla_gather"),
  "cuda": ("pallas", "xla_blocked", "xla_gather"),
  "rocm": ("xla_blocked", "xla_gather"),
  "tpu": ("xla_blocked", "xla_gather"),
}


@dataclasses.dataclass(frozen=True)
class AutoEntry:
  """One platform's ``auto`` preference.

  Attributes:
    order: paths tried in order; the first that accepts the topology runs.
    measured: where the order comes from (a results file and the numbers), or why unmeasured.
  """

  order: tuple[str, ...]
  measured: str


# Picked by forward+backward time (training is the main use).
AUTO_ORDER: dict[str, AutoEntry] = {
  # CPU rule (plus: batches of <= SMALL_BATCH rows take xla_gather, see api.choose_impl).
  "cpu": AutoEntry(
    ("cpu_ffi", "xla_blocked", "xla_gather"),
    "benchmarks/results/cpu_bench.txt (2-core EPYC, N=4096, B=1024, radix-2 depth 12, fp32): "
    "fwd+bwd cpu_ffi 24-35 ms, xla_blocked 90-123 ms, xla_gather 279-284 ms, dense 530-544 ms",
  ),
  # Only radix-2 depth 12 was measured; xla_blocked was last timed with a lax.map over small
  # batch tiles (68 ms forward fp32), not untiled as it now runs on GPU: benchmarks/gpu_check.sh
  # measures it, and this entry should follow what that shows.
  "cuda": AutoEntry(
    ("xla_gather",),
    "benchmarks/results/gpu_check_h100.txt (H100, N=4096, B=8192, radix-2 depth 12): fwd+bwd "
    "xla_gather 4.93 ms fp32 / 3.37 ms bf16 against pallas 16.05 / 16.59 ms",
  ),
  "rocm": AutoEntry(("xla_gather",), "unmeasured: no AMD GPU was lent; the gather lowers anywhere"),
  # TPUs multiply on a matrix unit and gather slowly, so block-structured topologies take the
  # batched block matmuls; neither path has been timed on a TPU.
  "tpu": AutoEntry(
    ("xla_blocked", "xla_gather"),
    "unmeasured: no TPU was lent; both lower (tests/test_kernels_export.py)",
  ),
}


def host_platform() -> str:
  """The default backend as a lowering platform name: ``cpu``, ``cuda``, ``rocm`` or ``tpu``."""
  backend = jax.default_backend()
  if backend != "gpu":
    return backend
  try:
    version = str(jax.devices()[0].client.platform_version).lower()
  except (AttributeError, IndexError, RuntimeError):
    version = ""
  return "rocm" if "rocm" in version else "cuda"
