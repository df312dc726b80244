"""YAML reading for configs and ``--set`` values: numbers and booleans as YAML 1.2 reads them.

PyYAML follows YAML 1.1, where a float needs a dot: ``1e-3`` and ``3e-4`` are read as the
strings ``'1e-3'`` and ``'3e-4'``, and a learning rate or a cost written that way would fail
late (or be taken for a name). YAML 1.1 also reads ``010`` as the octal 8, ``1:30`` as the
sexagesimal 90 and ``on`` / ``off`` / ``yes`` / ``no`` as booleans. :func:`load_yaml` reads
numbers and booleans as YAML 1.2's core schema does: ``1e-3`` is 0.001, ``-.05`` is -0.05,
``010`` is 10 (``0o10`` is 8, ``0x1f`` 31), ``1:30``, ``1:30.5`` and ``off`` are strings, and only
``true`` / ``false`` are booleans. Underscores in numbers (``1_000``) are still read as digit
separators. A key given twice in one mapping is an error (PyYAML would keep the last value
silently).
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
    |[-+]?\.[0-9][0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)
"""YAML 1.2's floats: PyYAML's (YAML 1.1) need a dot, so ``1e-3`` was a string, and a sign
before a leading dot, so ``-.05`` was one too; its sexagesimal ``1:30.5`` (90.5) is no float."""
_INT = re.compile(r"^(?:[-+]?[0-9][0-9_]*|0o[0-7]+|0x[0-9a-fA-F]+)$")
"""YAML 1.2's integers (decimal, ``0o`` octal, ``0x`` hexadecimal; ``_`` separators kept)."""
_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
"""YAML 1.2's booleans."""
_INT_TAG, _BOOL_TAG = "tag:yaml.org,2002:int", "tag:yaml.org,2002:bool"
_FLOAT_TAG, _MERGE_TAG = "tag:yaml.org,2002:float", "tag:yaml.org,2002:merge"
for _cls in (_Loader, _Dumper):
    _cls.yaml_implicit_resolvers = {  # YAML 1.1's numbers and booleans out (a copy per class)
        first: [(tag, regexp) for tag, regexp in resolvers
                if tag not in (_INT_TAG, _BOOL_TAG, _FLOAT_TAG)]
        for first, resolvers in _cls.yaml_implicit_resolvers.items()
    }
    _cls.add_implicit_resolver(_FLOAT_TAG, _FLOAT, list("-+0123456789."))
    _cls.add_implicit_resolver(_INT_TAG, _INT, list("-+0123456789"))
    _cls.add_implicit_resolver(_BOOL_TAG, _BOOL, list("tTfF"))


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    """A YAML 1.2 integer (YAML 1.1's constructor reads a leading 0 as octal)."""
    text = str(loader.construct_scalar(node)).replace("_", "")
    if text[:2] in ("0o", "0x"):
        return int(text[2:], 8 if text[1] == "o" else 16)
    return int(text, 10)


_Loader.add_constructor(_INT_TAG, _construct_int)


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode,
                       deep: bool = False) -> dict[Any, Any]:
    """A mapping whose keys are unique: YAML forbids a key twice, PyYAML keeps the last one.

    A config that sets ``cost`` twice in one section would silently lose the first value.
    """
    seen: dict[Any, Any] = {}
    for key_node, _ in node.value:
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _MERGE_TAG:
            continue  # merge keys (<<) may be overridden; others: PyYAML's checks
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", node.start_mark,
                f"found the key {key!r} twice (first on line {seen[key]}); YAML allows each "
                "key once in a mapping", key_node.start_mark)
        seen[key] = key_node.start_mark.line + 1
    return loader.construct_mapping(node, deep=deep)


_Loader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)


def load_yaml(text: str) -> Any:
    """The YAML document in ``text`` (safe types only; ``1e-3`` is the number 0.001).

    Examples:
        >>> load_yaml("{learning_rate: 3e-4, cost: 1e-3, steps: 1e4, name: band}")
        {'learning_rate': 0.0003, 'cost': 0.001, 'steps': 10000.0, 'name': 'band'}
        >>> load_yaml("[1_000, 2.5, .5, -1E+2, 7]")
        [1000, 2.5, 0.5, -100.0, 7]
        >>> load_yaml("[010, 0o10, 0x1f, 1:30, 1:30.5, off, yes, true, False]")
        [10, 8, 31, '1:30', '1:30.5', 'off', 'yes', True, False]
        >>> load_yaml("[-.05, +.5, .5e-3]")
        [-0.05, 0.5, 0.0005]
    """
    return yaml.load(text, Loader=_Loader)


def dump_yaml(data: Any) -> str:
    """``data`` as YAML that :func:`load_yaml` reads back as it was (keys in their order).

    Examples:
        >>> load_yaml(dump_yaml({"name": "312e5148", "rate": 3e-4}))
        {'name': '312e5148', 'rate': 0.0003}
        >>> load_yaml(dump_yaml({"id": "010", "flag": "on", "on": True}))
        {'id': '010', 'flag': 'on', 'on': True}
    """
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False)
