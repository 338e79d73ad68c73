"""The checks CI runs besides the tests, each as a user would run it: ruff (lint and format),
pyright over jax_lrn, the documentation built with warnings as errors and the examples on its
pages run, and the built sdist and wheel installed into a fresh virtual environment.

The tools come with the ``test`` extra. Without one, its check skips, except in CI (``CI`` set),
where a missing tool is a failure rather than a quiet skip.
"""

import importlib.util
import os
import re
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest

import jax_lrn
from jax_lrn import compat

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def _require(module: str) -> None:
  if importlib.util.find_spec(module) is None:
    message = f"{module} is not installed (it comes with pip install -e '.[test]')"
    if os.environ.get("CI"):
      pytest.fail(message)
    pytest.skip(message)


def _run(*args: str, cwd: Path = ROOT, env: dict | None = None) -> str:
  """Runs ``python *args``; returns stdout and stderr; fails with both on a non-zero status."""
  result = subprocess.run(
    [sys.executable, *args],
    cwd=cwd,
    capture_output=True,
    text=True,
    env={**os.environ, **(env or {})},
    timeout=600,
  )
  output = result.stdout + result.stderr
  assert result.returncode == 0, f"python {' '.join(args)} failed:\n{output}"
  return output


def test_ruff_check():
  _require("ruff")
  _run("-m", "ruff", "check", ".")


def test_ruff_format():
  _require("ruff")
  _run("-m", "ruff", "format", "--check", ".")


def test_pyright():
  """Basic mode over jax_lrn/ ([tool.pyright] in pyproject.toml), against this environment."""
  _require("pyright")
  # No version check against PyPI: the pinned, bundled pyright runs offline.
  out = _run(
    "-m", "pyright", "--pythonpath", sys.executable, env={"PYRIGHT_PYTHON_IGNORE_WARNINGS": "1"}
  )
  assert "0 errors, 0 warnings" in out


@pytest.fixture(scope="module")
def doctrees(tmp_path_factory):
  """One doctree cache for both builders: the doctest build reuses what the html build read."""
  return tmp_path_factory.mktemp("doctrees")


def _public_names() -> list[str]:
  names = [f"jax_lrn.{name}" for name in jax_lrn.__all__ if name != "compat"]
  names += [f"jax_lrn.compat.{name}" for name in compat.__all__]
  names += [f"jax_lrn.{api}.LocalResponseNorm" for api in ("nnx", "linen", "equinox")]
  names += ["jax_lrn.onnx_export.register"]
  names += [f"jax_lrn.{api}.LocalContrastNorm" for api in ("nnx", "linen", "equinox")]
  names += [
    f"jax_lrn.{api}.{layer}"
    for api in ("nnx", "linen", "equinox")
    for layer in ("GDN", "SpatialGDN")
  ]
  return names


def test_docs_build_with_warnings_as_errors(doctrees, tmp_path):
  _require("sphinx")
  _require("sphinx-mathjax-offline")
  _require("equinox")
  out = tmp_path / "html"
  _run("-m", "sphinx", "-W", "--keep-going", "-b", "html", "-d", str(doctrees), "docs", str(out))
  # Every public name has an entry generated from its docstring in the API reference.
  api = "".join(page.read_text() for page in (out / "api").glob("*.html"))
  missing = [name for name in _public_names() if f'id="{name}"' not in api]
  assert not missing, f"no API entry for {missing}"
  _check_self_contained(out)


def _check_self_contained(out: Path) -> None:
  """The built site renders offline: no page loads a script or a stylesheet from another host
  (MathJax is bundled by sphinx-mathjax-offline), and the pages with formulas load the bundled
  MathJax, which is there."""
  remote = re.compile(r"<(?:script|link)\b[^>]*\b(?:src|href)=[\"'](?:https?:)?//[^\"']*", re.I)
  found = {
    str(page.relative_to(out)): remote.findall(page.read_text())
    for page in out.rglob("*.html")
    if remote.search(page.read_text())
  }
  assert not found, f"pages that load from another host: {found}"
  lrn_page = (out / "api" / "lrn.html").read_text()
  assert 'src="../_static/mathjax/tex-chtml.js"' in lrn_page
  assert (out / "_static" / "mathjax" / "tex-chtml.js").is_file()


def test_docs_examples_run(doctrees, tmp_path):
  """The {doctest} blocks of every page (sphinx.ext.doctest), with their expected outputs."""
  _require("sphinx")
  _require("sphinx-mathjax-offline")
  _require("equinox")
  out = tmp_path / "doctest"
  _run("-m", "sphinx", "-W", "-b", "doctest", "-d", str(doctrees), "docs", str(out))
  report = (out / "output.txt").read_text()
  assert re.search(r"^\s*0 failures in tests$", report, re.M), report
  pages = sorted(p.stem for p in DOCS.glob("*.md") if "```{doctest}" in p.read_text())
  ran = sorted(re.findall(r"^Document: (\S+)$", report, re.M))
  assert ran == pages, report


def test_readme_example_runs():
  """The README's Python example, as written (the docs pages' examples run as doctests)."""
  blocks = re.findall(r"^```python\n(.*?)^```", (ROOT / "README.md").read_text(), re.M | re.S)
  assert blocks, "no Python example in the README"
  for block in blocks:
    _run("-c", block)


def _install_into_fresh_venv(artifact: Path, venv: Path) -> Path:
  """A venv whose only package of its own is ``artifact``; the dependencies are this
  environment's (a .pth file adds its site-packages), so nothing is downloaded for them."""
  subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
  python = venv / "bin" / "python"
  site = subprocess.run(
    [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
    capture_output=True,
    text=True,
    check=True,
  ).stdout.strip()
  ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
  (Path(site) / "dependencies.pth").write_text("\n".join(sorted(ours)) + "\n")
  _run("-m", "pip", "--python", str(python), "install", "-q", "--no-deps", str(artifact))
  return python


def test_sdist_and_wheel_install_and_import(tmp_path):
  _require("build")
  dist = tmp_path / "dist"
  # Without flags, build makes the sdist and then the wheel from the unpacked sdist.
  _run("-m", "build", "--outdir", str(dist), str(ROOT))
  (wheel,) = dist.glob("*.whl")
  (sdist,) = dist.glob("*.tar.gz")
  version = jax_lrn.__version__
  assert wheel.name == f"jax_lrn-{version}-py3-none-any.whl"
  assert sdist.name == f"jax_lrn-{version}.tar.gz"
  files = zipfile.ZipFile(wheel).namelist()
  assert {"jax_lrn/__init__.py", "jax_lrn/equinox.py", "jax_lrn/py.typed"} <= set(files)
  assert all(f.startswith(("jax_lrn/", f"jax_lrn-{version}.dist-info/")) for f in files), files
  members = {name.split("/", 1)[-1] for name in tarfile.open(sdist).getnames()}
  assert {"LICENSE", "README.md", "pyproject.toml", "jax_lrn/__init__.py"} <= members
  assert not any(name.startswith("tests/") for name in members)

  code = (
    "import importlib.metadata, jax_lrn, jax_lrn.compat, jax_lrn.nnx, jax_lrn.linen, "
    "jax_lrn.equinox; print(jax_lrn.__file__); print(jax_lrn.__version__); "
    "print(importlib.metadata.version('jax-lrn'))"
  )
  for artifact in (wheel, sdist):
    venv = tmp_path / f"venv-{artifact.suffix.lstrip('.')}"
    python = _install_into_fresh_venv(artifact, venv)
    # From an empty folder, so that the checkout is not on sys.path.
    result = subprocess.run([str(python), "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    location, imported_version, metadata_version = result.stdout.split()
    assert Path(location).is_relative_to(venv), location
    assert imported_version == metadata_version == version
