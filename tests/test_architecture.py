"""Import direction: modules import only from their own layer or the layers below it.

Walks every module of ``nf_jax/`` and ``kernels/`` (imported as ``nf_jax.kernels``) with
``ast``, builds the import graph (imports inside functions count: they are dependencies too) and
fails on

* an edge from a lower layer to a higher one (:data:`LAYERS`, bottom first), and
* a private name (``_x``) taken from another module, by ``from m import _x`` or ``m._x``.

Every module must be placed in :data:`LAYERS`, so a new module states where it belongs. Edges
that still break a rule live in :data:`KNOWN_EXCEPTIONS` with the reason; any *new* one fails.
The data flow is described in ``docs/ARCHITECTURE.md``.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from collections.abc import Iterator

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCES = (("nf_jax", "nf_jax"), ("kernels", "nf_jax.kernels"))

# Bottom first. A module may import modules of its own layer or of any layer below.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
  (
    "base",
    (
      "nf_jax",
      "nf_jax.io_utils",
      "nf_jax.results",
      "nf_jax.watchdog",
      "nf_jax.distributed",
      "nf_jax.tables",
      "nf_jax.compile_cache",
      "nf_jax.score_eval",
      "nf_jax.cli",
    ),
  ),
  ("core", ("nf_jax.topology", "nf_jax.families", "nf_jax.data")),
  (
    "plans and formulas",
    (
      "nf_jax.init_scale",
      "nf_jax.kernels.structure",
      "nf_jax.kernels.tables",
      "nf_jax.kernels.block_sizes",
      "nf_jax.kernels.reference",
      "nf_jax.kernels.dispatch",
      "nf_jax.hw.config",
      "nf_jax.hw.energy",
      "nf_jax.hw.gemm",
      "nf_jax.hw.workload",
      "nf_jax.hw.mapper",
      "nf_jax.hw.calibration",
    ),
  ),
  (
    "kernel and simulator implementations",
    (
      "nf_jax.kernels.xla_blocked",
      "nf_jax.kernels.xla_gather",
      "nf_jax.kernels.pallas_cascade",
      "nf_jax.kernels.cpu_ffi",
      "nf_jax.kernels.custom_vjp",
      "nf_jax.hw.cycles",
      "nf_jax.hw.fabric",
    ),
  ),
  (
    "public kernels, hw and proxy",
    (
      "nf_jax.kernels",
      "nf_jax.kernels.api",
      "nf_jax.hw",
      "nf_jax.hw.sweep",
      "nf_jax.proxy",
      "nf_jax.zero_cost",
    ),
  ),
  ("layers", ("nf_jax.layers",)),
  ("training", ("nf_jax.train", "nf_jax.sweep")),
  (
    "studies and search",
    (
      "nf_jax.calibration",
      "nf_jax.pareto.config",
      "nf_jax.pareto.problem",
      "nf_jax.pareto.operators",
      "nf_jax.pareto.accuracy",
      "nf_jax.pareto.report",
      "nf_jax.pareto.search",
      "nf_jax.pareto",
      "nf_jax.space_table",
      "nf_jax.topology_report",
    ),
  ),
  (
    "CLIs",
    (
      "nf_jax.pareto.__main__",
      "nf_jax.topo_search",
      "nf_jax.hw.__main__",
      "nf_jax.configs",
      "nf_jax.configs.topo_search",
      "nf_jax.configs.hw",
      "nf_jax.configs.topology_report",
      "nf_jax.configs.space_table",
    ),
  ),
)

# Family plug-ins (nf_jax/families/*.py) sit in the core layer with nf_jax.topology, which
# imports them all; a new family module needs no entry here.
PLUGIN_PACKAGE, PLUGIN_LAYER = "nf_jax.families", "core"


def with_plugins(layers, modules) -> tuple[tuple[str, tuple[str, ...]], ...]:
  """``layers`` with every module of :data:`PLUGIN_PACKAGE` among ``modules`` in its layer."""
  plugins = tuple(sorted(m for m in modules if m.startswith(PLUGIN_PACKAGE + ".")))
  return tuple(
    (name, members + plugins if name == PLUGIN_LAYER else members) for name, members in layers
  )


# (importer, imported, kind) -> why it is still there. kind: "backward" or "private:<name>".
KNOWN_EXCEPTIONS: dict[tuple[str, str, str], str] = {}


def package_modules() -> dict[str, str]:
  """Dotted module name -> file path, for every module of the package."""
  out = {}
  for folder, package in SOURCES:
    base = os.path.join(ROOT, folder)
    for dirpath, dirnames, filenames in os.walk(base):
      dirnames[:] = [d for d in dirnames if not d.startswith((".", "__pycache__"))]
      for name in filenames:
        if name.endswith(".py"):
          parts = os.path.relpath(os.path.join(dirpath, name), base)[:-3].split(os.sep)
          if parts[-1] == "__init__":
            parts = parts[:-1]
          out[".".join([package, *parts])] = os.path.join(dirpath, name)
  return out


def _is_private(name: str) -> bool:
  return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _resolve(name: str, known: set[str]) -> str | None:
  """The deepest known module that ``name`` (a dotted import path) names or lies in."""
  parts = name.split(".")
  for i in range(len(parts), 0, -1):
    if ".".join(parts[:i]) in known:
      return ".".join(parts[:i])
  return None


def imports(
  module: str, source: str, known: set[str], is_package: bool = False
) -> Iterator[tuple[str, str]]:
  """Yields ``(imported module, kind)`` for every project import in ``source``.

  kind is ``"import"`` for the edge itself and ``"private:<name>"`` for a private name taken
  from that module (``from m import _x``, or ``alias._x`` where ``alias`` names module ``m``).
  """
  tree = ast.parse(source)
  aliases: dict[str, str] = {}  # local name -> project module it is bound to
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      for a in node.names:
        target = _resolve(a.name, known)
        if target is None:
          continue
        yield target, "import"
        bound = target if a.asname else a.name.split(".")[0]
        if bound in known:
          aliases[a.asname or bound] = bound
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ""
      if node.level:
        anchor = module.split(".")[: None if is_package else -1]
        anchor = anchor[: len(anchor) - (node.level - 1)]
        base = ".".join([*anchor, base] if base else anchor)
      for a in node.names:
        sub = f"{base}.{a.name}"
        origin = sub if sub in known else _resolve(base, known)
        if origin is None:
          continue
        yield origin, "import"
        if sub in known:
          aliases[a.asname or a.name] = sub
        if _is_private(a.name):
          yield _resolve(base, known) or origin, f"private:{a.name}"
  for node in ast.walk(tree):
    if (
      isinstance(node, ast.Attribute)
      and isinstance(node.value, ast.Name)
      and node.value.id in aliases
      and _is_private(node.attr)
    ):
      yield aliases[node.value.id], f"private:{node.attr}"


def violations(sources: dict[str, str], layers=LAYERS) -> list[tuple[str, str, str]]:
  """``(importer, imported, kind)`` for every backward edge and private import in ``sources``."""
  rank = {m: i for i, (_, members) in enumerate(layers) for m in members}
  known = set(sources)
  packages = {m for m in known if any(k.startswith(m + ".") for k in known)}
  out = set()
  for module, source in sources.items():
    for target, kind in imports(module, source, known, module in packages):
      if target == module:
        continue
      if module not in rank or target not in rank:
        continue  # reported by test_every_module_is_placed_in_one_layer
      if kind == "import" and rank[target] > rank[module]:
        out.add((module, target, "backward"))
      elif kind.startswith("private:"):
        out.add((module, target, kind))
  return sorted(out)


def _read_all() -> dict[str, str]:
  sources = {}
  for module, path in package_modules().items():
    with open(path, encoding="utf-8") as f:
      sources[module] = f.read()
  return sources


def test_every_module_is_placed_in_one_layer():
  found = set(package_modules())
  placed = [m for _, members in with_plugins(LAYERS, found) for m in members]
  assert len(placed) == len(set(placed)), "a module is listed in two layers"
  assert found - set(placed) == set(), "place these new modules in LAYERS"
  assert set(placed) - found == set(), "LAYERS lists modules that no longer exist"


def test_imports_flow_one_way_and_take_no_private_names():
  sources = _read_all()
  found = violations(sources, with_plugins(LAYERS, sources))
  new = [v for v in found if v not in KNOWN_EXCEPTIONS]
  assert not new, "backward or private imports (fix them; see docs/ARCHITECTURE.md):\n" + "\n".join(
    f"  {a} -> {b} ({kind})" for a, b, kind in new
  )
  stale = [k for k in KNOWN_EXCEPTIONS if k not in found]
  assert not stale, f"these KNOWN_EXCEPTIONS are fixed; remove them: {stale}"


def test_graph_sees_the_known_edges():
  # The walker must actually find edges, or the test above passes vacuously.
  sources = _read_all()
  known = set(sources)
  edges = {(m, t) for m, s in sources.items() for t, k in imports(m, s, known) if k == "import"}
  for edge in [
    ("nf_jax.layers", "nf_jax.kernels"),
    ("nf_jax.layers", "nf_jax.init_scale"),
    ("nf_jax.proxy", "nf_jax.init_scale"),
    ("nf_jax.kernels.api", "nf_jax.kernels.structure"),
    ("nf_jax.pareto.accuracy", "nf_jax.train"),
    ("nf_jax.pareto.search", "nf_jax.pareto.operators"),
  ]:
    assert edge in edges, edge


def test_checker_flags_backward_edges_and_private_names():
  layers = (("low", ("pkg.low",)), ("high", ("pkg.high", "pkg.other")))
  sources = {
    "pkg.low": "def f():\n  from pkg import high\n  return high.run()\n",
    "pkg.high": "from pkg.low import _helper, public\nimport pkg.other as o\nx = o._state\n",
    "pkg.other": "import pkg.low\n",
  }
  assert violations(sources, layers) == [
    ("pkg.high", "pkg.low", "private:_helper"),
    ("pkg.high", "pkg.other", "private:_state"),
    ("pkg.low", "pkg.high", "backward"),
  ]


def test_docs_point_inside_the_repository():
  # A reader of a clone or a wheel's sdist has only the repository: no ../ references.
  for name in ("README.md", "BUILD.md", os.path.join("docs", "ARCHITECTURE.md")):
    with open(os.path.join(ROOT, name), encoding="utf-8") as f:
      text = f.read()
    assert "../" not in text, f"{name} refers to a file outside the repository"


def _imported_by(module: str, candidates: set[str]) -> list[str]:
  """The ``candidates`` in a fresh interpreter's ``sys.modules`` after ``import module``."""
  wanted = sorted(candidates)
  code = f"import {module}, sys; print(sorted(m for m in sys.modules if m in {wanted!r}))"
  out = subprocess.run(
    [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
  )
  return ast.literal_eval(out.stdout.strip())


def test_the_results_contract_and_its_readers_need_no_training_stack():
  # The results schema is IO only: reading a study must not load JAX, let alone the trainer.
  heavy = {"jax", "numpy", "flax", "optax", "orbax", "nf_jax.train", "nf_jax.sweep"}
  assert _imported_by("nf_jax.results", heavy) == []
  # The calibration reads results and scores topologies with the proxy. optax comes with the
  # proxy (its fit_score is an Adam fit), not with the trainer, whose stack stays out.
  training = {"nf_jax.sweep", "nf_jax.train", "nf_jax.layers", "flax", "orbax", "orbax.checkpoint"}
  assert _imported_by("nf_jax.calibration", training | {"optax", "nf_jax.results"}) == [
    "nf_jax.results",
    "optax",
  ]
