"""YAML reading for configs and ``--set`` values: numbers in exponent form are numbers.

PyYAML follows YAML 1.1, where a float needs a dot: ``1e-3`` and ``3e-4`` are read as the
strings ``'1e-3'`` and ``'3e-4'``, and a learning rate or a cost written that way would fail
late (or be taken for a name). :func:`load_yaml` reads them as YAML 1.2 does.
"""

from __future__ import annotations

import re
from typing import Any

import yaml


class _Loader(yaml.SafeLoader):
    """The safe loader with YAML 1.2's floats (exponents without a dot)."""


class _Dumper(yaml.SafeDumper):
    """The safe dumper that knows those floats, so it quotes a string that reads as one.

    A Tune trial id such as ``312e5148`` written plain would come back as ``inf``.
    """


_FLOAT = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)
"""YAML 1.2's floats: PyYAML's (YAML 1.1) need a dot, so ``1e-3`` was a string."""
for _cls in (_Loader, _Dumper):
    _cls.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))


def load_yaml(text: str) -> Any:
    """The YAML document in ``text`` (safe types only; ``1e-3`` is the number 0.001).

    Examples:
        >>> load_yaml("{learning_rate: 3e-4, cost: 1e-3, steps: 1e4, name: band}")
        {'learning_rate': 0.0003, 'cost': 0.001, 'steps': 10000.0, 'name': 'band'}
        >>> load_yaml("[1_000, 2.5, .5, -1E+2, 7]")
        [1000, 2.5, 0.5, -100.0, 7]
    """
    return yaml.load(text, Loader=_Loader)


def dump_yaml(data: Any) -> str:
    """``data`` as YAML that :func:`load_yaml` reads back as it was (keys in their order).

    Examples:
        >>> load_yaml(dump_yaml({"name": "312e5148", "rate": 3e-4}))
        {'name': '312e5148', 'rate': 0.0003}
    """
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False)
