"""The files of a saved agent: read with errors that name the file, written whole or not at all.

A model folder written by ``train.py`` holds the agent's weights and a JSON description; a
missing file raises :class:`FileNotFoundError`, an unreadable or incomplete one a
:class:`ValueError`, both naming the file (``train.py evaluate`` reports either as a usage
error instead of a traceback from deep inside torch, zipfile or pickle). Folders and pointer
files are replaced by renames (:func:`replace_folder`, :func:`write_json`), so that an
interrupted write never leaves half a model that a later run trusts.

:func:`load_saved_agent` is the Python way to a run folder's agent: the hedger that
``train.py evaluate`` and ``train.py stress --agent`` score, to pass to
:func:`hedgearena.baselines.arena.run_arena` or :func:`hedgearena.baselines.benchmark.benchmark`
beside other hedgers. Saved agents act deterministically (an SB3 agent's mean action, with
the observation statistics of its ``vecnormalize.pkl``), so a run folder scored twice on the
same paths gives the same numbers. :func:`check_saved_agent` refuses a ``model/`` that is not
the agent its run's ``config.yaml`` describes (another algorithm, another view of the env,
another network).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hedgearena.baselines.hedger import Hedger
    from hedgearena.envs.config import EnvConfig
    from hedgearena.run_config import RunConfig

_RETRAIN = "train the run again or restore the file"


def required_file(path: Path, what: str) -> Path:
    """``path`` if it is a file, else ``FileNotFoundError`` naming it as ``what``.

    Examples:
        >>> required_file(Path("no/such/policy.pt"), "deep-hedging weights")
        Traceback (most recent call last):
        ...
        FileNotFoundError: deep-hedging weights 'no/such/policy.pt' is missing: train the run again or restore the file
    """  # noqa: E501
    if not path.is_file():
        raise FileNotFoundError(f"{what} {str(path)!r} is missing: {_RETRAIN}")
    return path


def read_json(path: Path, what: str, keys: Sequence[str] = ()) -> dict[str, Any]:
    """The JSON object of ``path``, holding at least ``keys``.

    Raises:
        FileNotFoundError: the file is missing.
        ValueError: the file is no JSON object, or lacks some of ``keys``.
    """
    required_file(path, what)
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{what} {str(path)!r} is not valid JSON ({error}): {_RETRAIN}") from None
    if not isinstance(data, dict):
        raise ValueError(
            f"{what} {str(path)!r} must hold a JSON object, got {type(data).__name__}: {_RETRAIN}"
        )
    missing = [key for key in keys if key not in data]
    if missing:
        raise ValueError(f"{what} {str(path)!r} lacks the key(s) {missing}: {_RETRAIN}")
    return data


@contextmanager
def loading(path: Path, what: str) -> Iterator[None]:
    """Turn any failure to load ``path`` (corrupt or foreign content) into a ``ValueError``.

    A missing file still raises :class:`FileNotFoundError` (check it with
    :func:`required_file` first for a message that names it as ``what``).
    """
    try:
        yield
    except FileNotFoundError:
        raise
    except Exception as error:
        reason = _reason(error)
        raise ValueError(
            f"{what} {str(path)!r} cannot be loaded ({reason}); it is corrupt or was not "
            f"written by hedgearena: {_RETRAIN}"
        ) from error


_TORCH_WEIGHTS_ONLY = "WeightsUnpickler error:"
"""What torch's ``weights_only`` loader puts before the reason it refused a file's content."""


def _reason(error: BaseException) -> str:
    r"""The first line of ``error`` that says what is wrong, prefixed with its type.

    torch's and pickle's messages run over many lines. torch's ``weights_only`` loader opens
    with advice to load the file again with ``weights_only=False`` (which would run whatever
    code a foreign file holds): the reason is the text after ``WeightsUnpickler error:``.

    Examples:
        >>> _reason(ValueError("bad\nmore"))
        'ValueError: bad'
        >>> _reason(ValueError("Weights only load failed. Re-running with weights_only set to "
        ...                    "False will likely succeed. WeightsUnpickler error: \n\n"
        ...                    "Unsupported operand 103\n\nCheck the documentation"))
        'ValueError: Unsupported operand 103'
    """
    text = str(error)
    if _TORCH_WEIGHTS_ONLY in text:
        text = text.split(_TORCH_WEIGHTS_ONLY, 1)[1]
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


def replace_folder(folder: Path, write: Callable[[Path], Any]) -> Path:
    """Fill ``folder`` anew with ``write(partial)``, so that an interruption leaves it whole.

    ``write`` fills a fresh sibling folder (``.<name>.partial``), which then takes the place of
    ``folder`` by two renames: a write cut short (Ctrl-C, a crash, a full disk) leaves
    ``folder`` as it was, never a new model beside an old normaliser or a truncated file;
    between the two renames it is missing, never half written.
    """
    partial = folder.with_name(f".{folder.name}.partial")
    old = folder.with_name(f".{folder.name}.old")
    for stale in (partial, old):
        shutil.rmtree(stale, ignore_errors=True)
    partial.mkdir(parents=True)
    write(partial)
    if folder.exists():
        folder.rename(old)
    partial.rename(folder)
    shutil.rmtree(old, ignore_errors=True)
    return folder


def write_json(path: Path, data: Any) -> Path:
    """Write ``data`` as JSON to ``path`` whole or not at all (a temporary file renamed)."""
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(data))
    os.replace(partial, path)
    return path


# ------------------------------------------------------------------------- run folders
REPORTS = ("scores.json", "stress.json", "results.json")
"""Files of report folders (benchmark, a run's report/, stress, sweep), which hold no agent."""

MODEL_FILES = {"agent.json": "an SB3 agent", "settings.json": "a deep-hedging policy",
               "rllib.json": "an RLlib agent"}
"""The description file of each kind of saved agent in ``model/`` (``agents.training``'s
``AGENT_FILE``, ``agents.deep_hedging``'s ``SETTINGS_FILE``, ``agents.rllib``'s
``AGENT_FILE``) -> what it describes."""


def check_run_folder(run_dir: Path, what: str) -> None:
    """Refuse a folder that is not the run folder of a trained agent (``train``, ``rllib``).

    ``what`` names the argument in the error (``--agent``, ``RUN_DIR``).

    Raises:
        ValueError: a missing folder, a report folder, or one without ``config.yaml``.
    """
    if not run_dir.is_dir():
        why = "it is a file, not a folder" if run_dir.exists() else "it does not exist"
        raise ValueError(f"{what} {str(run_dir)!r}: not a run folder ({why})")
    report = next((name for name in REPORTS if (run_dir / name).is_file()), None)
    if report is not None:
        raise ValueError(f"{what} {str(run_dir)!r} is a report folder (it holds {report}), not "
                         "a run folder: give a folder written by train or rllib, which holds "
                         "the agent (model/) and its config.yaml")
    if not (run_dir / "config.yaml").is_file():
        why = ("its config.yaml is a folder, not the run config file"
               if (run_dir / "config.yaml").exists() else "config.yaml is missing")
        raise ValueError(f"{what} {str(run_dir)!r}: not a run folder ({why})")


def check_saved_agent(run_dir: Path, config: RunConfig) -> None:
    """Refuse a run folder whose ``model/`` is not the agent its ``config`` describes.

    ``model/`` must hold the kind of agent of ``config`` (an RLlib agent for an RLlib run, a
    deep-hedging policy for ``agent.algo: deep_hedging``, else an SB3 agent), of its algorithm,
    with its view of the env (``agent.env_kwargs``, keys the config leaves ``auto`` aside) and,
    for deep hedging, the network fields ``agent.hyperparams`` gives (``hidden``, ``output``...).
    A model copied from another run used to be scored under this run's name and config (an SAC
    model in a PPO run as "ppo agent"), or failed with "settings.json is missing". A folder
    without ``model/`` passes: loading it names what is missing.

    Args:
        run_dir: the run folder.
        config: its run config (``config.yaml``; ``evaluate``'s may differ in ``arena.*``).

    Raises:
        ValueError: naming the file, what it holds and what the config says.
        FileNotFoundError: never (a missing description is left to the loader).
    """
    from hedgearena.baselines.benchmark import is_dated

    model_dir = run_dir / "model"
    if not model_dir.is_dir():
        return
    held = [name for name in MODEL_FILES if (model_dir / name).is_file()]
    if not held:
        return  # the loader names the missing file
    config_file = run_dir / "config.yaml"
    mismatch = (f"{str(model_dir)!r} is not the agent {str(config_file)!r} describes: "
                "the model and the config are of different runs; train the run again, or "
                "restore the run's own model/ or config.yaml")
    env_config = config.env.config()  # built once: a replay's reads its data
    env = _record(env_config)
    _check_trained_env(run_dir, env, mismatch)
    # a model records the env it trained on: on a dated market, the history before arena.split
    skip = {"market", "market_kwargs"} if is_dated(env_config.market) else set()
    if "rllib.json" in held:
        saved = read_json(model_dir / "rllib.json", "RLlib agent description", ("algo",))
        if str(saved["algo"]).lower() != config.rllib.algo.lower():
            raise ValueError(f"model/rllib.json holds an RLlib {saved['algo']} agent, "
                             f"rllib.algo is {config.rllib.algo}: {mismatch}")
        _check_model_env(saved.get("env"), env, skip, "model/rllib.json's RLlib agent",
                         mismatch)
        return
    algo = config.agent.algo
    expected = "settings.json" if algo == "deep_hedging" else "agent.json"
    if expected not in held:
        raise ValueError(f"model/ holds {MODEL_FILES[held[0]]} ({held[0]}), agent.algo is "
                         f"{algo}, whose model/ holds {expected}: {mismatch}")
    if algo == "deep_hedging":
        settings_file = model_dir / "settings.json"
        settings = read_json(settings_file, "deep-hedging settings", ("policy",))
        _check_policy(settings, settings_file, config, mismatch)
        _check_model_env(settings.get("env"), env, skip, "model/settings.json's policy",
                         mismatch)
        return
    view = read_json(model_dir / "agent.json", "SB3 agent description", ("algo", "env_kwargs"))
    if view["algo"] != algo:
        raise ValueError(f"model/agent.json holds an SB3 {view['algo']} agent, agent.algo is "
                         f"{algo}: {mismatch}")
    differ = _differences(view["env_kwargs"], config.agent.env_kwargs)
    if differ:
        raise ValueError(f"model/agent.json's view of the env differs from agent.env_kwargs "
                         f"({'; '.join(differ)}): {mismatch}")
    _check_model_env(view.get("env"), env, skip, "model/agent.json's SB3 agent", mismatch)


def env_record(config: RunConfig) -> dict[str, Any]:
    """``config``'s env as ``env.yaml`` records it (the YAML round trip of its plain data)."""
    return _record(config.env.config())


def _record(env_config: EnvConfig) -> dict[str, Any]:
    """``env_config`` as ``env.yaml`` records it."""
    from hedgearena.envs.config import plain_data
    from hedgearena.yaml_io import dump_yaml, load_yaml

    return load_yaml(dump_yaml(plain_data(env_config.to_dict())))


def _env_differences(saved: dict[str, Any], now: dict[str, Any], skip: set[str]) -> list[str]:
    """``key: saved vs now`` of two env records: the first three (reprs cut to 60 characters).

    Only keys both hold are compared (a key one lacks is a setting added since, at its
    default), ``skip`` aside.
    """
    keys = [key for key in sorted(set(saved) & set(now) - skip) if saved[key] != now[key]]
    shown = [f"{key}: {str(saved[key])[:60]} then, {str(now[key])[:60]} now" for key in keys[:3]]
    return shown + ([f"and {len(keys) - 3} more"] if len(keys) > 3 else [])


def _check_trained_env(run_dir: Path, now: dict[str, Any], mismatch: str) -> None:
    """Refuse a ``config.yaml`` whose env (its record ``now``) is not the run's own.

    Training writes the env it built as ``env.yaml`` beside the config; ``evaluate`` and a
    saved agent's scoring build the env from ``config.yaml`` again. An edited ``config.yaml``
    (another cost, another env id) scored the model on an env it never saw, with no warning.
    A folder without ``env.yaml`` (written by hand, or older) is not checked.
    """
    record = run_dir / "env.yaml"
    if not record.is_file():
        return
    from hedgearena.yaml_io import load_yaml

    saved = load_yaml(record.read_text())
    differ = _env_differences(saved if isinstance(saved, dict) else {}, now, set())
    if differ:
        raise ValueError(f"{str(run_dir / 'config.yaml')!r} builds another env than the run "
                         f"trained on ({str(record)!r}: {'; '.join(differ)}): {mismatch}")


def _check_model_env(saved: Any, env: dict[str, Any], skip: set[str], where: str,
                     mismatch: str) -> None:
    """Refuse a model whose recorded env (``saved``) is not the config's (``env``).

    ``where`` names the record (``model/settings.json's policy``); ``skip`` are the keys not
    compared (a dated market's, whose model trained on the history before ``arena.split``).
    A model saved before its env was recorded (``saved`` not a mapping) passes.
    """
    if not isinstance(saved, dict):
        return
    differ = _env_differences(saved, env, skip)
    if differ:
        raise ValueError(f"{where} was trained on another env ({'; '.join(differ)}): "
                         f"{mismatch}")


def _check_policy(settings: dict[str, Any], settings_file: Path, config: RunConfig,
                  mismatch: str) -> None:
    """Refuse a deep-hedging policy whose network differs from ``agent.hyperparams``'.

    ``settings`` is the policy's ``settings.json`` (``settings_file``, named in errors).
    """
    from hedgearena.agents.policies import PolicySpec
    from hedgearena.training import split_deep_hedging_params

    policy = settings["policy"]
    if not isinstance(policy, dict):
        raise ValueError(f"deep-hedging settings {str(settings_file)!r} hold no policy "
                         f"description: {_RETRAIN}")
    given = split_deep_hedging_params(dict(config.agent.hyperparams))[1]
    # a field the file lacks (written before the field existed) loads at its default
    defaults = {field.name: field.default for field in dataclasses.fields(PolicySpec)}
    held = {key: policy[key] if key in policy else defaults[key] for key in given}
    differ = [f"{key}: {_plain(held[key])!r} in the model, {_plain(value)!r} in the config"
              for key, value in given.items() if _plain(held[key]) != _plain(value)]
    if differ:
        raise ValueError(f"model/settings.json's policy differs from agent.hyperparams "
                         f"({'; '.join(differ)}): {mismatch}")


def _differences(saved: Any, config: Any) -> list[str]:
    """``key: saved vs config`` of an agent's view, the config's ``auto`` values aside."""
    if not isinstance(saved, dict) or not isinstance(config, dict):
        return [] if _plain(saved) == _plain(config) else [f"{saved!r} vs {config!r}"]
    keys = sorted(set(saved) | set(config))
    return [f"{key}: {saved.get(key)!r} in the model, {config.get(key)!r} in the config"
            for key in keys if config.get(key) != "auto"
            and _plain(saved.get(key)) != _plain(config.get(key))]


def _plain(value: Any) -> Any:
    """``value`` with tuples as lists (JSON's and YAML's readings of one sequence compare)."""
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


SCORING_SEED = "the scoring seed (run_arena's seed, BenchmarkSettings.seed)"
"""How :func:`check_out_of_sample` names the seed it refuses."""


def check_out_of_sample(run_dir: Path, config: RunConfig, rllib: bool, seed: int,
                        env_config: Any) -> None:
    """Refuse scoring the agent of ``run_dir`` (run config ``config``) on its training paths.

    The checks ``train.py evaluate`` makes, for the Python API (a saved agent's
    ``scoring_check``, called by :func:`hedgearena.baselines.arena.run_arena`): paths of
    ``seed`` that the agent trained on (:func:`hedgearena.training.check_scoring_seed`, an
    RLlib agent's runner seeds :func:`hedgearena.agents.rllib.check_rllib_scoring_seed`), and
    a replay (``env_config``'s dated market) that begins before the ``arena.split`` the agent
    learnt before.

    Raises:
        ValueError: naming the run folder, what would be replayed and what to do instead.
    """
    from hedgearena.baselines.benchmark import is_dated

    try:
        if rllib:
            from hedgearena.agents.rllib import check_rllib_scoring_seed

            check_rllib_scoring_seed(config, seed, SCORING_SEED)
        else:
            from hedgearena.training import check_scoring_seed

            check_scoring_seed(config, seed, SCORING_SEED)
    except ValueError as error:
        raise ValueError(f"the agent of {run_dir}: {error}") from None
    split = config.arena.split
    if split is None or not is_dated(env_config.market):
        return
    first = env_config.market.data.index[0].date().isoformat()
    if first < split:
        raise ValueError(
            f"the agent of {run_dir} learnt on the history before arena.split = {split}: "
            f"scoring it on a replay from {first} would replay days it trained on; score it "
            f"from {split} on (BenchmarkSettings(split='{split}') or a later date, or the "
            f"market_kwargs start='{split}')")


def load_saved_agent(run_dir: str | Path, name: str | None = None) -> Hedger:
    """The trained agent of a run folder (``train.py``'s or ``rllib``'s) as an arena hedger.

    The agent ``train.py evaluate`` and ``train.py stress --agent`` score: its weights, its
    view of the env and (SB3) its observation statistics, acting deterministically. The arena
    refuses scoring it on its training paths (:func:`check_out_of_sample`, its
    ``scoring_check``): a seed that is the run's ``seed`` (an RLlib run's: one of its env
    runners'), or a replay from before the ``arena.split`` it learnt before. Its validation and
    calibration paths (``arena.seed + 1`` and ``+ 2`` of its run) are not refused, as
    ``train.py evaluate`` does not refuse them: score it on other seeds than those too.

    Args:
        run_dir: the run folder (holding ``config.yaml`` and ``model/``).
        name: the label in tables (default: the run's, e.g. ``"ppo agent"``).

    Returns:
        A :class:`hedgearena.baselines.hedger.Hedger`.

    Raises:
        ValueError: not a run folder, no ``model/``, a model that is not the config's agent
            (:func:`check_saved_agent`), or a corrupt file (named).
        FileNotFoundError: a file of the model is missing (named).

    Examples:
        >>> load_saved_agent("no/such/run")
        Traceback (most recent call last):
        ...
        ValueError: run_dir 'no/such/run': not a run folder (it does not exist)
    """
    from hedgearena.run_config import load_config

    folder = Path(run_dir)
    check_run_folder(folder, "run_dir")
    config = load_config(folder / "config.yaml")
    rllib = (folder / "model" / "rllib.json").is_file()
    if rllib:
        from hedgearena.agents.rllib import load_rllib_run

        hedger: Hedger = load_rllib_run(folder, config, name)
    else:
        from hedgearena.training import load_agent  # which checks the model is the run's agent

        hedger = load_agent(folder, config)
    if name is not None:
        hedger.name = name
    hedger.scoring_check = functools.partial(check_out_of_sample, folder, config, rllib)
    return hedger
