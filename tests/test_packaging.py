"""The wheel: built from a clean copy of the sources, installed into a fresh venv, imported.

Catches what an editable install hides: a module or sub-package missing from
``[tool.setuptools] packages``, package data (the cpu_ffi C++ source, the committed tables,
``py.typed``) left out of the wheel, and imports that only work from the repository folder.
Offline: no build isolation (setuptools and wheel come from the running environment) and the
venv takes its dependencies from the system site-packages.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Source folder -> import package, as mapped in pyproject.toml.
SOURCES = {"nf_jax": "nf_jax", "kernels": os.path.join("nf_jax", "kernels")}
DATA_PATTERNS = ("kernels/*.cc", "nf_jax/tables/*.csv", "nf_jax/py.typed")

PROBE = """
import importlib.resources, json, os
import nf_jax, nf_jax.kernels, nf_jax.hw, nf_jax.tables
from nf_jax import calibration, layers, pareto, proxy, topology, train
root = os.path.dirname(nf_jax.__file__)
files = sorted(
  os.path.relpath(os.path.join(d, f), root)
  for d, _, fs in os.walk(root) for f in fs if "__pycache__" not in d
)
cc = importlib.resources.files("nf_jax.kernels").joinpath("cpu_cascade.cc").read_text()
print(json.dumps({"root": root, "kernels": nf_jax.kernels.__file__, "files": files,
                  "cc_chars": len(cc)}))
"""


def _run(cmd: list[str], cwd: str) -> str:
  result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{result.stdout}\n{result.stderr}"
  return result.stdout


def _expected_files() -> set[str]:
  """Paths (relative to the installed ``nf_jax/``) that the wheel must install."""
  out = set()
  for folder, package in SOURCES.items():
    for path in glob.glob(os.path.join(ROOT, folder, "**", "*.py"), recursive=True):
      rel = os.path.relpath(path, os.path.join(ROOT, folder))
      out.add(os.path.relpath(os.path.join(package, rel), "nf_jax"))
  for pattern in DATA_PATTERNS:
    for path in glob.glob(os.path.join(ROOT, pattern)):
      folder, rel = os.path.relpath(path, ROOT).split(os.sep, 1)
      out.add(os.path.relpath(os.path.join(SOURCES[folder], rel), "nf_jax"))
  return out


def test_wheel_installs_and_imports_outside_the_repository(tmp_path):
  # Build from a clean copy, so a stale build/ folder in the checkout cannot leak into the wheel.
  src = tmp_path / "src"
  ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "*.so")
  for name in ("nf_jax", "kernels"):
    shutil.copytree(os.path.join(ROOT, name), src / name, ignore=ignore)
  for name in ("pyproject.toml", "setup.cfg", "README.md"):
    shutil.copy(os.path.join(ROOT, name), src / name)
  dist = tmp_path / "dist"
  _run(
    [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
    + ["-w", str(dist), str(src)],
    cwd=str(tmp_path),
  )
  (wheel,) = glob.glob(str(dist / "nf_jax-*.whl"))

  venv = tmp_path / "venv"
  _run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], ".")
  python = str(venv / "bin" / "python")
  # The venv has no pip of its own; the system one (visible through system site-packages)
  # installs into the venv because it runs under the venv's interpreter.
  _run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel], str(tmp_path))

  out = json.loads(_run([python, "-c", PROBE], cwd=str(tmp_path)).splitlines()[-1])
  assert out["root"].startswith(str(venv)), f"imported {out['root']}, not the wheel's install"
  assert out["kernels"].startswith(str(venv))
  assert out["cc_chars"] > 1000
  installed = set(out["files"])
  missing = _expected_files() - installed
  assert not missing, f"the wheel lacks {sorted(missing)}: list them in pyproject.toml"
  assert "py.typed" in installed

  # The console scripts of [project.scripts], with their packaged default configs.
  for script in ("nf-jax-topo-search", "nf-jax-hw", "nf-jax-topology-report", "nf-jax-space-table"):
    assert (venv / "bin" / script).exists(), f"{script} not installed: [project.scripts]"
  report = tmp_path / "report"
  _run(
    [str(venv / "bin" / "nf-jax-topology-report"), f"--workdir={report}"]
    + ["--config.families=butterfly", "--config.n=16"],
    cwd=str(tmp_path),
  )
  assert json.loads((report / "metrics.json").read_text())[0]["connectivity"] == 1.0
