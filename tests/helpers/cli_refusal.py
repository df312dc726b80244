"""The CLI's usage errors, for tests that expect ``train.py`` to refuse its arguments."""

from __future__ import annotations

import pytest

from hedgearena.cli import main


def refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run the CLI, expect a usage error (exit 2), return its message on one line."""
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 2
    return " ".join(capsys.readouterr().err.split())
