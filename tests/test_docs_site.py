"""The documentation site builds with ``mkdocs build --strict`` (a broken link, anchor, API
reference or a page missing from the navigation fails), and every relative link of README.md
names a file of the repository."""

import os
import re
import subprocess
import sys

import pytest
from cjepa_helpers import REPO

LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_site_builds_strictly(tmp_path):
    pytest.importorskip("mkdocs", reason="the docs extra: pip install -e '.[docs]'")
    pytest.importorskip("mkdocstrings")
    site = tmp_path / "site"
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        timeout=300,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    assert "WARNING" not in build.stderr, build.stderr[-3000:]
    # each topic has its page, and the API reference rendered the docstrings
    for page in ("getting-started", "configs", "troubleshooting", "benchmarks", "interop"):
        assert (site / page / "index.html").is_file(), page
    assert "MultiBlockMaskGenerator" in (site / "reference" / "core" / "index.html").read_text()


def test_readme_links_name_files():
    readme = (REPO / "README.md").read_text()
    targets = [t for t in LINK.findall(readme) if not t.startswith(("http://", "https://", "#"))]
    assert targets, "README.md links into docs/"
    missing = [t for t in targets if not (REPO / t.split("#")[0]).exists()]
    assert not missing, missing
    assert len(readme.splitlines()) <= 300, "README.md is the front door: at most 300 lines"
