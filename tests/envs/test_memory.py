"""The allocator setting of hedgearena.envs.memory: freed pages are reused, opt-out works."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from hedgearena.envs.memory import MALLOC_SETTINGS, keep_freed_memory, malloc_setting

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"

# Builds a batch's worth of arrays (24 x 4 MiB, touched), frees them, and counts the page
# faults of doing it again: with the setting the second round reuses the first's pages.
FAULTS = """
import resource, numpy as np
import hedgearena.envs
def build():
    arrays = [np.ones(2**19) for _ in range(24)]
    del arrays
build()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
build()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _run(code: str, setting: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "HEDGEARENA_MALLOC"}
    if setting is not None:
        env["HEDGEARENA_MALLOC"] = setting
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.skipif(not GLIBC, reason="the setting applies to glibc's allocator only")
def test_freed_pages_are_reused_unless_opted_out() -> None:
    kept = _run(FAULTS, None)
    system = _run(FAULTS, "system")
    assert kept.returncode == 0, kept.stderr
    assert system.returncode == 0, system.stderr
    # 96 MiB is 24,576 pages of 4 KiB: glibc's own thresholds hand most of them back (seen:
    # 12,221 faults); with the setting the second build faults in (almost) none.
    assert int(system.stdout) > 5_000
    assert int(kept.stdout) < 500


@pytest.mark.skipif(not GLIBC, reason="the setting applies to glibc's allocator only")
def test_keep_freed_memory_applies_on_glibc() -> None:
    assert keep_freed_memory() is True  # idempotent: applying it again succeeds


def test_malloc_setting_names_the_allowed_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HEDGEARENA_MALLOC", raising=False)
    assert malloc_setting() == "hedgearena"
    for value in MALLOC_SETTINGS:
        monkeypatch.setenv("HEDGEARENA_MALLOC", value)
        assert malloc_setting() == value
    monkeypatch.setenv("HEDGEARENA_MALLOC", "off")
    with pytest.raises(ValueError, match="HEDGEARENA_MALLOC must be one of hedgearena, system"):
        malloc_setting()


def test_a_bad_setting_stops_the_import() -> None:
    result = _run("import hedgearena", "fast")
    assert result.returncode != 0
    assert "HEDGEARENA_MALLOC must be one of hedgearena, system; got 'fast'" in result.stderr
