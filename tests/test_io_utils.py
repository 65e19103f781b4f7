"""Atomic result writes: complete file or the old one, normal permissions, no temp litter."""

import os
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
