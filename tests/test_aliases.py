"""One local name per project module across the code base, and no name for two modules.

Every ``from nf_jax[.pkg] import module [as name]`` (and ``import nf_jax.x as name``) in the
package, the benchmarks, the experiments, the scripts and the tests binds a local name to a
project module. A module is always imported under the same name (``topology as T``,
``train as tr``, ``proxy``, ...), and one name never stands for two modules (``sweep`` is
``nf_jax.sweep``; ``nf_jax.hw.sweep`` is ``hw_sweep``). Bindings that still differ are listed in
:data:`KNOWN` with the reason.
"""

from __future__ import annotations

import ast
import collections
import os

from test_architecture import package_modules

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCANNED = ("nf_jax", "kernels", "benchmarks", "experiments", "scripts", "tests")
# (path, local name, module) -> why it still differs from the module's one name.
KNOWN: dict[tuple[str, str, str], str] = {}


def project_modules() -> set[str]:
  return set(package_modules())  # the module walk of the layering test, not a second copy


def bindings(source: str, modules: set[str]) -> list[tuple[str, str]]:
  """``(local name, module)`` for every project module that ``source`` binds to a name."""
  out = []
  for node in ast.walk(ast.parse(source)):
    if isinstance(node, ast.ImportFrom) and not node.level and node.module:
      for a in node.names:
        if f"{node.module}.{a.name}" in modules:
          out.append((a.asname or a.name, f"{node.module}.{a.name}"))
    elif isinstance(node, ast.Import):
      out += [(a.asname, a.name) for a in node.names if a.asname and a.name in modules]
  return out


def all_bindings() -> list[tuple[str, str, str]]:
  """``(path, local name, module)`` over every scanned file."""
  modules = project_modules()
  out = []
  for top in SCANNED:
    for folder, dirnames, files in os.walk(os.path.join(ROOT, top)):
      dirnames[:] = [d for d in dirnames if not d.startswith((".", "__pycache__"))]
      for name in sorted(files):
        if name.endswith(".py"):
          path = os.path.relpath(os.path.join(folder, name), ROOT)
          with open(os.path.join(ROOT, path), encoding="utf-8") as f:
            out += [(path, local, m) for local, m in bindings(f.read(), modules)]
  return out


def test_scanner_sees_module_bindings():
  modules = {"nf_jax.topology", "nf_jax.hw.sweep", "nf_jax.hw"}
  source = "from nf_jax import topology as T\nfrom nf_jax.hw import sweep, make_config\n"
  assert bindings(source, modules) == [("T", "nf_jax.topology"), ("sweep", "nf_jax.hw.sweep")]
  assert ("tests/test_topology.py", "T", "nf_jax.topology") in all_bindings()


def test_one_name_per_module_and_one_module_per_name():
  found = [b for b in all_bindings() if b not in KNOWN]
  names = collections.defaultdict(set)
  modules = collections.defaultdict(set)
  for _path, local, module in found:
    names[module].add(local)
    modules[local].add(module)
  several_names = {
    m: sorted((local, path) for path, local, mod in found if mod == m)
    for m, n in names.items()
    if len(n) > 1
  }
  assert not several_names, f"import each module under one name: {several_names}"
  several_modules = {n: sorted(m) for n, m in modules.items() if len(m) > 1}
  assert not several_modules, f"one name stands for several modules: {several_modules}"
  stale = [k for k in KNOWN if k not in all_bindings()]
  assert not stale, f"these KNOWN bindings are gone; remove them: {stale}"
