"""The project's one linter and formatter (ruff, configured in pyproject.toml) must pass."""

import os
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("command", [["check", "."], ["format", "--check", "."]])
def test_ruff(command):
  ruff = shutil.which("ruff")
  assert ruff, "ruff is missing: install the test extra, pip install -e '.[test]'"
  result = subprocess.run([ruff, *command], cwd=ROOT, capture_output=True, text=True)
  assert result.returncode == 0, result.stdout + result.stderr
