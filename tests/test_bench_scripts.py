"""The bench scripts: their command lines, the keys their issues name, path-step counting."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(BENCH / script), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, check=True)


@pytest.mark.parametrize(
    "script", ["pricing.py", "env_throughput.py", "arena.py", "sweep.py", "quality.py"]
)
def test_help(script: str) -> None:
    out = run(script, "--help").stdout
    assert "--out" in out


def test_pricing_writes_the_issue_keys(tmp_path: Path) -> None:
    out = tmp_path / "pricing.json"
    printed = run("pricing.py", "--n", "20000", "--repeats", "2", "--out", str(out)).stdout
    result = json.loads(out.read_text())
    assert {"greeks_rate", "kernel_rate", "ratio", "target_ratio", "torch_threads"} <= set(result)
    assert result["n"] == 20000
    assert result["target_ratio"] == 0.5
    assert result["ratio"] == pytest.approx(result["greeks_rate"] / result["kernel_rate"])
    assert f"{result['ratio']:,.3f}" in printed  # the printed figure is the written one


def test_arena_writes_the_issue_keys(tmp_path: Path) -> None:
    out = tmp_path / "arena.json"
    run("arena.py", "--paths", "2048", "--repeats", "1", "--out", str(out))
    result = json.loads(out.read_text())
    assert {"seconds", "target_seconds", "paths", "steps", "torch_threads"} <= set(result)
    assert (result["paths"], result["steps"], result["target_seconds"]) == (2048, 30, 0.2)


def fake_pfhedge(tmp_path: Path, seconds: float) -> Path:
    """A stand-in for pfhedge's Python: answers every request of bench/pfhedge_delta.py's
    protocol with ``seconds``, whatever script and arguments it is started with."""
    server = tmp_path / "server.py"
    server.write_text(
        "import json, sys\n"
        "for line in sys.stdin:\n"
        "    if not line.strip():\n"
        "        break\n"
        f"    print(json.dumps({{'seconds': {seconds}, 'n_paths': int(line)}}), flush=True)\n"
    )
    python = tmp_path / "python"
    python.write_text(f"#!/bin/sh\nexec {sys.executable} {server}\n")
    python.chmod(0o755)
    return python


def test_arena_times_pfhedge_side_by_side(tmp_path: Path) -> None:
    # each round: the three hedgers, delta alone, then one pfhedge request; the ratios are the
    # best times over pfhedge's best, and each round's own
    out = tmp_path / "arena.json"
    python = fake_pfhedge(tmp_path, 0.5)
    printed = run("arena.py", "--paths", "2048", "--repeats", "2", "--out", str(out),
                  "--pfhedge-python", str(python)).stdout
    result = json.loads(out.read_text())
    assert result["pfhedge_delta_seconds"] == 0.5
    assert result["seconds_vs_pfhedge_delta"] == pytest.approx(result["seconds"] / 0.5)
    alone = result["seconds_delta_alone"]
    assert result["delta_alone_vs_pfhedge_delta"] == pytest.approx(alone / 0.5)
    rounds = result["ratio_rounds"]
    assert rounds["seconds_vs_pfhedge_delta"] == pytest.approx(
        [s / 0.5 for s in result["seconds_rounds"]], abs=2e-4)  # both rounded to 4 places
    assert min(rounds["delta_alone_vs_pfhedge_delta"]) == pytest.approx(alone / 0.5, abs=1e-4)
    assert result["target_seconds_vs_pfhedge_delta"] == 1.0
    assert printed.count("pfhedge's delta 0.500 s") == 2


def test_arena_without_pfhedge_says_so(tmp_path: Path) -> None:
    # this venv has no pfhedge: the worker dies at its import, and the error says what to do
    completed = subprocess.run(
        [sys.executable, str(BENCH / "arena.py"), "--paths", "2048", "--repeats", "1",
         "--out", str(tmp_path / "a.json"), "--pfhedge-python", sys.executable],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert completed.returncode != 0
    assert "is pfhedge 0.23 installed in that Python? (make bench-pfhedge)" in completed.stderr
    assert not (tmp_path / "a.json").exists()


@pytest.mark.parametrize("num_envs", [1, 64, 256])
def test_vector_rate_counts_transitions_of_whole_blocks(
    num_envs: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a clock that ticks once per reading: the rate is then the path-steps counted; NEXT_STEP's
    # reset calls advance no path and must not count; whole blocks of 20-step episodes are run
    bench = load("env_throughput")
    ticks = iter(range(10))
    monkeypatch.setattr(bench.time, "perf_counter", lambda: float(next(ticks)))
    episodes = max(256, num_envs) // num_envs  # one block's episodes (the minimum)
    assert bench.vector_rate(num_envs, 1) == episodes * 20 * num_envs


def test_rounds_take_turns() -> None:
    bench = load("env_throughput")
    calls: list[str] = []
    table = bench.rounds(2, [lambda: calls.append("a") or 1.0, lambda: calls.append("b") or 3.0])
    assert calls == ["a", "b", "a", "b"]
    assert bench.best([[1.0, 3.0], [2.0, 0.5]]) == [2.0, 3.0]
    assert table == [[1.0, 3.0], [1.0, 3.0]]


def test_median_ratio_is_the_median_of_each_rounds_own_ratio() -> None:
    """Rounds (2, 1), (3, 6), (4, 2) have ratios 2, 0.5 and 2 (median 2), where the best
    rates' ratio is 4 / 6: a slow spell on one side of one round moves the median not."""
    bench = load("env_throughput")
    table = [[2.0, 1.0], [3.0, 6.0], [4.0, 2.0]]
    assert bench.median_ratio(table, 0, 1) == 2.0
    assert bench.median_ratio(table, 1, 0) == 0.5
    assert bench.median_ratio([[1.0, 5.0, 4.0]], -1, 0) == 4.0
