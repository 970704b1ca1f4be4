"""The installed version comes from git: in a checkout that has a release tag it is that tag
or a dev version after it, never the placeholder of a source tree without history."""

from __future__ import annotations

import subprocess
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.version import Version

import pokewatch_core

ROOT = Path(__file__).resolve().parents[1]


def _git(*args: str) -> str | None:
    """The output of a git command run in the checkout, or None where it fails (no git, no
    repository, no tag)."""
    try:
        proc = subprocess.run(
            ["git", "-C", str(ROOT), *args], capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def _nearest_tag() -> str:
    """The release tag ``git describe`` finds; skips the test where it finds none (a tarball:
    no history, so the build took the fallback version)."""
    toplevel = _git("rev-parse", "--show-toplevel")
    tag = _git("describe", "--tags", "--abbrev=0")
    if toplevel is None or Path(toplevel).resolve() != ROOT or tag is None:
        pytest.skip("not a git checkout with a tag (a tarball): the version is the fallback")
    return tag


def test_installed_version_is_from_git_not_a_placeholder():
    tag = _nearest_tag()
    version = pokewatch_core.__version__
    assert version == metadata.version("pokewatch")
    fallback = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["hatch"]["version"][
        "fallback-version"
    ]
    assert version not in {fallback, "0.0.0+unknown"}, version
    assert Version(version) >= Version(tag.removeprefix("v")), (version, tag)


def test_installed_version_follows_the_commit():
    """A commit after the tag is a dev version naming that commit: the editable install was
    rebuilt when the commit changed (``[tool.uv] cache-keys``); else run ``uv sync``."""
    tag = _nearest_tag()
    head = _git("rev-parse", "HEAD")
    assert head is not None
    version = Version(pokewatch_core.__version__)
    if _git("rev-parse", f"{tag}^{{commit}}") == head:
        assert version.base_version == tag.removeprefix("v") or version.is_devrelease, version
        return
    assert version.is_devrelease and version.local is not None, version
    commit = version.local.split(".")[0]
    assert commit.startswith("g") and head.startswith(commit[1:]), (str(version), head)
