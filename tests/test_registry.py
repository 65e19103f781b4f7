"""The family registry and TopologySpec: one vocabulary for every family (issue 15).

Checks the registry against independent references (brute-force radix validity, the builders'
tables), the spec's row round trip through a real CSV, that the co-design space is unchanged
(its hash keys the committed benchmark table), and that family names are branched on only in the
registry module.
"""

import ast
import csv
import io
import os

import pytest

from nf_jax import space_table
from nf_jax import topology as T
from nf_jax.pareto import problem as PP

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Specs of every family, square and rectangular, with and without defaults.
FAMILY_SPECS = [
  T.TopologySpec.of("butterfly", 64, radix=2),
  T.TopologySpec.of("butterfly", 81, n_in=50, radix=3, depth=6, skip=True),
  T.TopologySpec.of("parallel_butterfly", 64, radix=4, width=3, seed=5, skip=True),
  T.TopologySpec.of("parallel_butterfly", 256, n_in=200, radix=16, depth=1),
  T.TopologySpec.of("clos", 96, radix=8, width=4),
  T.TopologySpec.of("clos", 100, n_in=70, skip=True),
  T.TopologySpec.of("random", 100, fan_in=3, seed=7),
  T.TopologySpec.of("random", 64, n_in=784, fan_in=8, depth=2, seed=1, skip=True),
  T.TopologySpec.of("block_diagonal", 60, radix=6, depth=3),
  T.TopologySpec.of("block_diagonal", 64, n_in=40, skip=True),
  T.TopologySpec.of("dense", 32, n_in=48, depth=2),
  T.TopologySpec.of("dense", 16),
]


def test_every_family_has_a_spec_above():
  assert {s.name for s in FAMILY_SPECS} == set(T.FAMILIES)
  assert T.families()[: len(T.FAMILIES)] == T.FAMILIES  # plug-ins come after the built-ins


def _through_csv(row: dict) -> dict[str, str]:
  """``row`` written by csv.DictWriter and read back (every cell a string, as in results.csv)."""
  buf = io.StringIO()
  writer = csv.DictWriter(buf, fieldnames=list(row))
  writer.writeheader()
  writer.writerow(row)
  return next(csv.DictReader(io.StringIO(buf.getvalue())))


def _round_trip(spec: T.TopologySpec) -> None:
  t = spec.make()
  row = _through_csv(T.TopologySpec.from_topology(t).to_row())
  assert tuple(row) == T.ROW_COLUMNS
  back = T.TopologySpec.from_row(row)
  u = back.make()
  assert u == t and u.fingerprint == t.fingerprint
  assert back.num_params == spec.num_params == t.num_params
  assert back.normalised() == spec.normalised() and hash(back.normalised()) == hash(
    spec.normalised()
  )


@pytest.mark.parametrize("spec", FAMILY_SPECS, ids=lambda s: s.key)
def test_round_trip_make_row_from_row_make_gives_identical_tables(spec):
  _round_trip(spec)


def test_round_trip_over_the_whole_codesign_space():
  space = PP.topology_space()
  assert len(space) == 248
  for family, n, params in space:
    spec = T.TopologySpec(family, n, None, params)
    assert spec.key == PP.topology_key(family, n, params)
    _round_trip(spec)
    # The first hidden layer (784 -> n) too: n_in travels in the row.
    _round_trip(T.TopologySpec(family, n, PP.D_IN, params))


def test_space_hash_of_the_committed_benchmark_is_unchanged():
  # The content hash of nf_jax/tables/space_benchmark.csv's space: a change of the genome's
  # decoding (or of topology_key) would orphan the trained table.
  assert space_table.space_hash() == "086adf5f5d85ce21"


def test_sweep_result_row_and_to_row_agree():
  from nf_jax import sweep
  from nf_jax import train as tr

  for spec in FAMILY_SPECS:
    if spec.n_in != spec.n:
      continue  # the results contract describes the square hidden cascade
    model = tr.ModelSpec.create(spec.name, spec.n, **spec.kwargs())
    row = sweep.result_row(model)
    assert {c: row[c] for c in T.ROW_COLUMNS} == spec.to_row()


def _is_power(n: int, k: int) -> bool:
  p = k
  while p < n:
    p *= k
  return p == n


@pytest.mark.parametrize("name", ["butterfly", "parallel_butterfly", "clos", "block_diagonal"])
def test_valid_radices_are_exactly_what_make_accepts(name):
  fam = T.family(name)
  for n in list(range(1, 130)) + [243, 1000, 1024, 4096]:
    if name in ("butterfly", "parallel_butterfly"):
      want = [k for k in range(2, n + 1) if _is_power(n, k)]  # independent brute force
    else:
      want = [k for k in range(1 if name == "clos" else 2, n + 1) if n % k == 0]
    assert list(fam.valid_radices(n)) == want, n
    if n <= 129:
      extra = {"width": 1} if "width" in fam.params else {}
      for k in range(1, n + 2):
        try:
          T.num_params_of(name, n, radix=k, **extra)
          accepted = True
        except ValueError:
          accepted = False
        assert accepted == (k in want), (n, k)


def test_random_default_depth_is_the_one_formula():
  fam = T.family("random")
  for n, n_in, f in [(1024, 784, 4), (256, 784, 8), (100, 30, 3), (64, 64, 1), (1000, 1000, 10)]:
    t = T.make("random", n, n_in=n_in, fan_in=f)
    assert t.depth == fam.default_depth(n, n_in, f)
    # log_f(max(n, n_in)) stages, rounded up: fan_in ** depth first reaches max(n, n_in).
    assert f == 1 or f ** (t.depth - 1) < max(n, n_in) <= f**t.depth


def test_from_row_names_the_bad_cell_and_spec_refuses_early():
  row = T.TopologySpec.of("random", 64, fan_in=4).to_row()
  with pytest.raises(ValueError, match=r"fan_in='four' is not an integer"):
    T.TopologySpec.from_row(dict(row, fan_in="four"))
  with pytest.raises(ValueError, match=r"skip='maybe' is not a boolean"):
    T.TopologySpec.from_row(dict(row, skip="maybe"))
  with pytest.raises(ValueError, match=r"lacks the columns \['n'\]"):
    T.TopologySpec.from_row({"name": "random"})
  with pytest.raises(ValueError, match=r"'hexagon' is not a topology family"):
    T.TopologySpec.from_row(dict(row, name="hexagon"))
  with pytest.raises(ValueError, match=r"n=48 is not a power of radix=2"):
    T.TopologySpec.of("butterfly", 48, radix=2)  # refused at construction, before any build
  # A seed cell is read for seeded families only.
  assert (
    "seed"
    not in T.TopologySpec.from_row(
      dict(T.TopologySpec.of("clos", 16).to_row(), topology_seed="3")
    ).kwargs()
  )
  assert T.TopologySpec.from_row(dict(row, topology_seed="3")).kwargs()["seed"] == 3


def test_register_refuses_a_duplicate_name():
  with pytest.raises(ValueError, match="already registered"):
    T.register(T.family("butterfly"))


# ---------------------------------------------------------------------------------------------
# Family names are branched on only in the registry.

REGISTRY_MODULES = ("nf_jax/topology.py", "nf_jax/families/")  # the registry and its plug-ins
SCANNED = ("nf_jax", "kernels", "experiments", "benchmarks")
# path -> (number of comparisons against a family-name literal, why they are still there).
KNOWN = {
  "nf_jax/sweep.py": (4, "'dense' with no topology is also the nn.Dense baseline of the results"),
  "nf_jax/results.py": (1, "is_init_ablation: the nn.Dense baseline row is never an init ablation"),
  "nf_jax/train.py": (1, "ModelSpec.is_dense: 'dense' with no topology is the nn.Dense baseline"),
  "nf_jax/hw/workload.py": (1, "a ('dense', n_in, n_out) workload layer is a GEMM, not a family"),
  "experiments/study_report.py": (
    4,
    "the study's report: nn.Dense baseline rows and its parallel_butterfly+skip headline",
  ),
  "experiments/validate_proxy.py": (2, "leaves the dense reference out of sparse-only ranks"),
  "experiments/benchmark_report.py": (1, "the nn.Dense baseline rows of the benchmark"),
  "benchmarks/cascade_bench.py": (2, "'dense' is a kernel implementation name here"),
  "benchmarks/sweep_bench.py": (1, "the nn.Dense baseline (name='dense')"),
  "benchmarks/family_bench.py": (
    6,
    "per-family benchmark sizes (4 of them) and 'dense' as a kernel implementation (2)",
  ),
}


def _family_literals(node: ast.AST) -> list[str]:
  elts = node.elts if isinstance(node, (ast.Tuple, ast.List, ast.Set)) else [node]
  return [e.value for e in elts if isinstance(e, ast.Constant) and e.value in T.FAMILIES]


def family_branches() -> dict[str, list[str]]:
  """path -> the comparisons (``==``, ``!=``, ``in``) of anything with a family-name literal."""
  out: dict[str, list[str]] = {}
  for top in SCANNED:
    for folder, _, files in os.walk(os.path.join(ROOT, top)):
      for name in sorted(files):
        path = os.path.relpath(os.path.join(folder, name), ROOT)
        if not name.endswith(".py") or path.startswith(REGISTRY_MODULES):
          continue
        with open(os.path.join(ROOT, path)) as f:
          tree = ast.parse(f.read())
        for node in ast.walk(tree):
          if isinstance(node, ast.Compare) and any(
            _family_literals(x) for x in [node.left, *node.comparators]
          ):
            out.setdefault(path, []).append(f"{path}:{node.lineno}: {ast.unparse(node)}")
  return out


def test_scanner_finds_a_family_branch():
  tree = ast.parse('if t.name in ("butterfly", "clos"):\n  pass\nx = name == "random"')
  hits = [n for n in ast.walk(tree) if isinstance(n, ast.Compare)]
  assert [bool(_family_literals(h.comparators[0])) for h in hits] == [True, True]


def test_family_names_are_branched_on_only_in_the_registry():
  found = family_branches()
  new = {p: hits for p, hits in found.items() if len(hits) > KNOWN.get(p, (0, ""))[0]}
  assert not new, (
    "family names branched on outside the registry (nf_jax/topology.py): read the Family "
    f"record instead (T.family(name).<field>): {new}"
  )
  stale = {
    p: (n, len(found.get(p, []))) for p, (n, _) in KNOWN.items() if len(found.get(p, [])) < n
  }
  assert not stale, f"KNOWN lists more branches than remain (lower the counts): {stale}"


def test_group_compatible_mixes_tables_only_of_families_without_block_structure():
  from nf_jax import train as tr

  def groups(name, **params):
    specs = [tr.ModelSpec.create(name, 64, seed=s, **params) for s in (0, 1)]
    return len(tr.group_compatible(specs, 32, mix_tables=False))

  assert not T.family("random").block_structured and T.family("parallel_butterfly").block_structured
  assert groups("random", fan_in=4, depth=2) == 1  # the gather kernel runs any tables
  assert groups("parallel_butterfly", radix=4, width=2) == 2  # different tables: own program
