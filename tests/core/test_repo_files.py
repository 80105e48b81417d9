"""Files the tests read must be in git, or a clean clone (CI) lacks them."""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _git(*args):
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)


@pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(), reason="not a git checkout")
def test_no_fixture_file_is_ignored_or_untracked():
    # `git status --ignored` lists both untracked and ignored files under the folder
    out = _git("status", "--porcelain", "--ignored", "--untracked-files=all", "--", "tests/fixtures", "weights")
    assert out.returncode == 0, out.stderr
    stray = [line for line in out.stdout.splitlines() if line[:2] in ("??", "!!") and "__pycache__" not in line]
    assert not stray, "fixture/weight files a clean clone would lack:\n" + "\n".join(stray)


def test_cli_pages_match_the_cli(monkeypatch):
    """docs/cli/*.md are the CLI's own --help; they had drifted (train-codec lacked --quant). Regenerate with
    `python scripts/gen_cli_docs.py`."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("gen_cli_docs", ROOT / "scripts" / "gen_cli_docs.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    monkeypatch.setenv("COLUMNS", "80")
    stale = [rel for rel, text in gen.pages().items() if (ROOT / "docs" / rel).read_text() != text]
    assert not stale, f"run `python scripts/gen_cli_docs.py`: {stale}"
