"""Every run config shipped in configs/ loads, and each training config has a folder of its own.

Two configs with one run folder collide: the second refuses to resume the first's checkpoints
(trained with other settings). The default folder is ``<algo>-<env>-seed<seed>``, which
``python train.py --agent ALGO --env ID`` uses too, so the shipped training configs name theirs.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hedgearena.run_config import load_config
from hedgearena.yaml_io import load_yaml

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def _documents() -> dict[Path, dict]:
    return {path: load_yaml(path.read_text()) for path in sorted(CONFIGS.glob("*.yml"))}


def _run_configs() -> list[Path]:
    """The run configs (the zoo's hyperparameter files are keyed by env ids instead)."""
    return [path for path, document in _documents().items()
            if not any(str(key).startswith("hedgearena/") for key in document)]


def _training_configs() -> list[Path]:
    """The run configs that ``train.py --config`` trains with (not sweeps or RLlib's)."""
    return [path for path in _run_configs()
            if not {"sweep", "rllib"} & set(_documents()[path])]


def test_there_are_run_configs_and_zoo_files() -> None:
    assert len(_training_configs()) >= 6
    assert len(_run_configs()) < len(_documents())


@pytest.mark.parametrize("path", _run_configs(), ids=lambda p: p.name)
def test_a_shipped_run_config_loads(path: Path) -> None:
    load_config(path)


def test_shipped_training_configs_write_into_folders_of_their_own() -> None:
    """Distinct from each other and from ``train.py``'s default folder for their agent."""
    folders = {}
    for path in _training_configs():
        config = load_config(path)
        default = config.model_copy(update={"name": None}).run_name
        assert config.run_name != default, f"{path.name} writes into {default}: give it a name"
        folders[path.name] = config.run_name
    assert len(set(folders.values())) == len(folders), folders
