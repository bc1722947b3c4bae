"""The list of patched third-party internals stays true: each entry's module exists,
its proving test exists, and the installed version is the one it was written against
(an upgrade fails here until someone re-reads the entry and its test)."""

import importlib
import importlib.metadata
import re
from pathlib import Path

import pytest

from gochat_project.patches import PATCHES, Patch

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("patch", PATCHES, ids=lambda p: p.distribution)
def test_each_patch_names_its_module_its_test_and_the_installed_version(patch: Patch) -> None:
    importlib.import_module(patch.where)
    path, _, name = patch.proven_by.partition("::")
    assert re.search(rf"^def {re.escape(name)}\(", (ROOT / path).read_text(), re.M), patch.proven_by
    installed = importlib.metadata.version(patch.distribution)
    assert installed == patch.written_against, (
        f"{patch.distribution} is {installed}, {patch.target} was written against {patch.written_against}: "
        f"re-read {patch.where}, run {patch.proven_by}, then update the entry")


def test_every_module_under_patches_is_listed() -> None:
    modules = {f"gochat_project.patches.{p.stem}" for p in (ROOT / "gochat_project/patches").glob("*.py")
               if p.stem != "__init__"}
    assert modules <= {p.where for p in PATCHES}
