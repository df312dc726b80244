"""The README's code runs: its Python blocks, and its ``train.py`` command lines parse and resolve.

The README is the user's front door: a snippet that no longer runs, or a command line with an
option or ``--set`` key that no longer exists, is a broken door. The Python blocks run as they
stand, but for the substitutions listed here (smaller sizes only), each of which must match the
README exactly once, so a changed snippet fails here instead of being tested no more.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import pytest

from hedgearena.cli import COMMANDS, build_parser, resolve_config

README = Path(__file__).resolve().parents[1] / "README.md"
TEXT = README.read_text()
PYTHON_BLOCKS = re.findall(r"```python\n(.*?)```", TEXT, flags=re.S)

SMALLER = {  # the snippet's own sizes, then the test's (everything else runs as it stands)
    "BenchmarkSettings(n_paths=20_000)": "BenchmarkSettings(n_paths=1_000)",
    ".learn(100_000)": ".learn(1_280)",
}
"""Substitutions applied to the Python blocks: each must occur exactly once in the README."""


def test_the_readme_has_the_blocks_this_file_runs() -> None:
    assert len(PYTHON_BLOCKS) >= 6
    for old in SMALLER:
        assert sum(block.count(old) for block in PYTHON_BLOCKS) == 1, old


@pytest.mark.parametrize("index", range(len(PYTHON_BLOCKS)))
def test_a_python_block_of_the_readme_runs(index: int, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    code = PYTHON_BLOCKS[index]
    for old, new in SMALLER.items():
        code = code.replace(old, new)
    monkeypatch.chdir(tmp_path)  # what a snippet writes (runs/mine) goes there
    exec(compile(code, f"README.md python block {index + 1}", "exec"), {"__name__": "readme"})


def _command_lines() -> list[str]:
    """Every ``python train.py ...`` command of the README's bash blocks (comments cut off)."""
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", TEXT, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            command = line.split("#", 1)[0].strip()
            if command.startswith("python train.py"):
                lines.append(command)
    return lines


COMMAND_LINES = _command_lines()
MADE_UP = ("my_run.yml", "my_sweep.yml", "runs/")  # files and run folders the reader makes


def test_the_readme_shows_every_command() -> None:
    shown = {shlex.split(line)[2] if len(shlex.split(line)) > 2 else "train"
             for line in COMMAND_LINES}
    assert set(COMMANDS) <= shown | {"train"}, set(COMMANDS) - shown


@pytest.mark.parametrize("line", COMMAND_LINES)
def test_a_command_line_of_the_readme_parses_and_resolves(line: str) -> None:
    """Its command and options exist; unless it names a file or run folder the reader makes,
    its config resolves (``--set`` keys and values, shortcuts: what ``train.py`` checks before
    it runs anything)."""
    argv = shlex.split(line)[2:]
    if not argv or (argv[0] not in COMMANDS and argv[0].startswith("-")):
        argv = ["train", *argv]  # as train.py reads options alone
    args = build_parser().parse_args(argv)
    if any(name in line for name in MADE_UP):
        return
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    config = resolve_config(args)
    assert config is not None
