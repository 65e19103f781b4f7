"""Atomic result writes: complete file or the old one, normal permissions, no temp litter."""

import csv
import os
import re
import stat

import pytest

from nf_jax import io_utils


def test_atomic_write_replaces_whole_file_with_umask_permissions(tmp_path):
  path = tmp_path / "sub" / "out.csv"
  io_utils.atomic_write_text(str(path), "a,b\n1,2\n")
  io_utils.atomic_write_text(str(path), "a,b\n3,4\n")
  assert path.read_text() == "a,b\n3,4\n"
  umask = os.umask(0)
  os.umask(umask)
  assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
  assert os.listdir(path.parent) == ["out.csv"]


def test_failed_figure_write_keeps_old_file_and_leaves_no_temp(tmp_path):
  path = tmp_path / "plot.png"
  path.write_bytes(b"old")

  class Broken:
    def savefig(self, *args, **kwargs):
      raise RuntimeError("disk full")

  with pytest.raises(RuntimeError, match="disk full"):
    io_utils.atomic_savefig(Broken(), str(path))
  assert path.read_bytes() == b"old"
  assert os.listdir(tmp_path) == ["plot.png"]


def test_csv_writer_round_trips_quoted_values_in_column_order(tmp_path):
  rows = [{"b": 1.5, "a": "x,y"}, {"b": float("nan"), "a": 'say "hi"'}]
  path = tmp_path / "t.csv"
  io_utils.atomic_write_csv(str(path), rows, columns=["a", "b"])
  text = path.read_text()
  assert text.splitlines()[0] == "a,b" and "\r" not in text
  with open(path, newline="") as f:
    back = list(csv.DictReader(f))
  assert back == [{"a": "x,y", "b": "1.5"}, {"a": 'say "hi"', "b": "nan"}]
  assert io_utils.rows_to_csv(rows).splitlines()[0] == "b,a"  # the first row's key order
  assert io_utils.rows_to_csv([]) == ""
  assert io_utils.rows_to_csv([], ["a"]) == "a\n"
  with pytest.raises(ValueError, match="'c'"):
    io_utils.rows_to_csv([{"a": 1, "c": 2}], ["a"])


def test_io_utils_is_the_only_csv_writer():
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  known = {"nf_jax/io_utils.py", "nf_jax/pareto_search.py"}  # pareto: moving in another branch
  writers = set()
  for top in ("nf_jax", "kernels", "benchmarks", "experiments", "scripts"):
    for folder, _, files in os.walk(os.path.join(root, top)):
      for name in files:
        path = os.path.join(folder, name)
        if name.endswith(".py"):
          with open(path, encoding="utf-8") as f:
            if re.search(r"csv\.(Dict)?[wW]riter\(", f.read()):
              writers.add(os.path.relpath(path, root))
  assert writers - known == set(), "write CSV with io_utils.rows_to_csv / atomic_write_csv"
  assert "nf_jax/io_utils.py" in writers


def test_check_workdir_creates_or_refuses_with_the_fix(tmp_path):
  io_utils.check_workdir(str(tmp_path / "new" / "run"))
  assert os.listdir(tmp_path / "new" / "run") == []  # created, the probe file removed
  (tmp_path / "file").write_text("x")
  with pytest.raises(ValueError, match=r"--workdir=.*file is a file, not a folder; pass a folder"):
    io_utils.check_workdir(str(tmp_path / "file"))
  with pytest.raises(ValueError, match=r"--workdir=.*sub is not writable \(Not a directory\)"):
    io_utils.check_workdir(str(tmp_path / "file" / "sub"))


def test_sweep_refuses_a_file_workdir_before_reading_anything(tmp_path, monkeypatch):
  """It used to end in a bare FileExistsError from os.makedirs."""
  from nf_jax import results as R
  from nf_jax import sweep

  def no_reading(*args, **kwargs):
    raise AssertionError("results were read before the workdir was checked")

  monkeypatch.setattr(R, "read_results", no_reading)
  (tmp_path / "file").write_text("x")
  with pytest.raises(ValueError, match="is a file, not a folder"):
    sweep.run({}, str(tmp_path / "file"), progress=False)
