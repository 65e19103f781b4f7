"""Atomic writes: a result file is either the old version or the complete new one.

Also the project's one CSV writer (:func:`rows_to_csv`, :func:`atomic_write_csv`): a header and
one line per row, ``"\n"`` line ends, through :mod:`csv` (quoting where a value needs it).
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from typing import Any


def _default_mode() -> int:
  """``0o666`` less the process umask: what ``open(path, "w")`` would have given the file.

  ``mkstemp`` creates files as 0600; without this every result would be unreadable to others.
  """
  umask = os.umask(0)
  os.umask(umask)
  return 0o666 & ~umask


def _write_error(path: str, err: OSError) -> OSError:
  """``err`` (same errno and type) with a message naming ``path``, the state kept and the fix.

  A failed ``write`` (a full disk: ENOSPC, a quota: EDQUOT) names no file by itself.
  """
  why = err.strerror or str(err)
  fix = "free space there or write elsewhere, then rerun (or resume)"
  message = f"could not write {path}: {why}; its previous version (if any) is unchanged; {fix}"
  return type(err)(err.errno, message)


def atomic_write_text(path: str, text: str) -> None:
  """Writes ``text`` to ``path`` through a temporary file and ``os.replace``.

  Raises:
    OSError: the file could not be written (e.g. a full disk); the message names ``path``,
      ``path`` keeps its previous content and no temporary file is left.
  """
  directory = os.path.dirname(os.path.abspath(path))
  try:
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=os.path.basename(path))
  except OSError as err:
    raise _write_error(path, err) from err
  try:
    with os.fdopen(fd, "w") as f:
      f.write(text)
      f.flush()
      os.fsync(f.fileno())
    os.chmod(tmp, _default_mode())
    os.replace(tmp, path)
  except BaseException as err:
    if os.path.exists(tmp):
      os.unlink(tmp)
    if isinstance(err, OSError):
      raise _write_error(path, err) from err
    raise


def rows_to_csv(
  rows: Iterable[Mapping[str, Any]],
  columns: Sequence[str] | None = None,
  float_format: str | None = None,
) -> str:
  """CSV text of ``rows``: a header of ``columns`` (default: the first row's keys, in order) and
  one line per row; ``""`` for no rows and no columns.

  ``float_format``: format spec of float cells (e.g. ``".6g"``); None writes ``str(value)``,
  which reads back exactly.

  Raises:
    ValueError: a row has a key that is not a column (a missing key is written empty).
  """
  rows = list(rows)
  if columns is None:
    if not rows:
      return ""
    columns = list(rows[0])
  buffer = io.StringIO()
  writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
  writer.writeheader()
  for row in rows:
    if float_format is not None:
      row = {k: format(v, float_format) if isinstance(v, float) else v for k, v in row.items()}
    writer.writerow(row)
  return buffer.getvalue()


def atomic_write_csv(
  path: str,
  rows: Iterable[Mapping[str, Any]],
  columns: Sequence[str] | None = None,
  float_format: str | None = None,
) -> None:
  """:func:`rows_to_csv` written to ``path`` with :func:`atomic_write_text`."""
  atomic_write_text(path, rows_to_csv(rows, columns, float_format))


def atomic_savefig(fig: Any, path: str, **kwargs: Any) -> None:
  """``fig.savefig`` through a temporary file in the same folder, then ``os.replace``."""
  directory = os.path.dirname(os.path.abspath(path))
  suffix = os.path.splitext(path)[1]
  try:
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=suffix)
  except OSError as err:
    raise _write_error(path, err) from err
  os.close(fd)
  try:
    fig.savefig(tmp, **kwargs)
    os.chmod(tmp, _default_mode())
    os.replace(tmp, path)
  except BaseException as err:
    if os.path.exists(tmp):
      os.unlink(tmp)
    if isinstance(err, OSError):
      raise _write_error(path, err) from err
    raise


def check_workdir(path: str) -> None:
  """Creates ``path`` if needed and checks that files can be written there, before any work.

  Raises:
    ValueError: ``path`` is a file, or not writable (the reason from the OS); the message names
      ``--workdir`` and the fix.
  """
  if os.path.exists(path) and not os.path.isdir(path):
    raise ValueError(f"--workdir={path} is a file, not a folder; pass a folder path")
  try:
    os.makedirs(path, exist_ok=True)
    fd, probe = tempfile.mkstemp(dir=path, prefix=".write-test-")
    os.close(fd)
    os.unlink(probe)
  except OSError as err:
    raise ValueError(
      f"--workdir={path} is not writable ({err.strerror or err}); pass a writable folder"
    ) from None
