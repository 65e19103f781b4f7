"""nf_jax.compile_cache: the cache folder, and JAX's persistent cache really filling it.

Runs in subprocesses: turning the cache on changes process-wide JAX configuration.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

PROBE = """
import json, os
import jax, jax.numpy as jnp
from nf_jax import compile_cache
folder = compile_cache.enable_compilation_cache()
# Cache even this tiny program, to see the folder fill (the CLIs keep JAX's 1 s minimum).
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
jax.jit(lambda x: jnp.sin(x) @ x.T)(jnp.ones((8, 8))).block_until_ready()
print(json.dumps({"folder": str(folder), "config": jax.config.jax_compilation_cache_dir,
                  "entries": len(os.listdir(folder)), "root": str(compile_cache.cache_root())}))
"""


def _probe(env: dict[str, str], cwd: str) -> subprocess.CompletedProcess:
  return subprocess.run(
    [sys.executable, "-c", PROBE],
    env={
      **{k: v for k, v in os.environ.items() if not k.startswith("JAX_")},
      "JAX_PLATFORMS": "cpu",
      **env,
    },
    cwd=cwd,
    capture_output=True,
    text=True,
    timeout=300,
  )


def test_cache_goes_under_nf_jax_cache_and_fills(tmp_path):
  result = _probe({"NF_JAX_CACHE": str(tmp_path / "c")}, str(tmp_path))
  assert result.returncode == 0, result.stderr
  out = json.loads(result.stdout.splitlines()[-1])
  assert out["root"] == str(tmp_path / "c")
  assert out["folder"] == out["config"] == str(tmp_path / "c" / "jax_cache")
  assert out["entries"] >= 1  # JAX wrote the compiled program


def test_default_is_under_home_and_unwritable_folder_is_refused(tmp_path):
  result = _probe({"NF_JAX_CACHE": "", "HOME": str(tmp_path)}, str(tmp_path))
  assert result.returncode == 0, result.stderr
  out = json.loads(result.stdout.splitlines()[-1])
  assert out["folder"] == str(tmp_path / ".cache" / "nf_jax" / "jax_cache")

  (tmp_path / "file").write_text("not a folder")
  result = _probe({"NF_JAX_CACHE": str(tmp_path / "file")}, str(tmp_path))
  assert result.returncode != 0
  assert "ValueError" in result.stderr and "NF_JAX_CACHE" in result.stderr


def test_jax_own_setting_wins(tmp_path):
  own = tmp_path / "own"
  result = _probe(
    {"NF_JAX_CACHE": str(tmp_path / "c"), "JAX_COMPILATION_CACHE_DIR": str(own)}, str(tmp_path)
  )
  assert result.returncode == 0, result.stderr
  out = json.loads(result.stdout.splitlines()[-1])
  assert out["folder"] == out["config"] == str(own) and out["entries"] >= 1
