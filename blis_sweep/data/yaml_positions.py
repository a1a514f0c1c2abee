"""Load a YAML document together with the line number of every key and list item.

Validation errors in sweep files name the line they are about. PyYAML's constructed
objects carry no positions, so the document is composed into nodes (which do) and
turned into plain Python values here, recording `path -> line` on the way. A path is
a tuple of mapping keys and list indices: ("axes", "rate", 3) is the fourth rate.
"""
from __future__ import annotations

import re
from pathlib import Path

import yaml

from blis_sweep.errors import BlisError

_Base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class Yaml12SafeLoader(_Base):
    """Safe loader that also reads `1e-5` (no dot) as a float, like YAML 1.2 (and the reference's parser)."""


Yaml12SafeLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\d+(?:\.\d*)?|\.\d+)[eE][-+]?\d+$"),
    list("-+0123456789."),
)


class Positions(dict):
    """path tuple -> 1-based line number; `line(path)` falls back to the closest parent."""

    def line(self, path: tuple) -> int | None:
        path = tuple(path)
        while path:
            if path in self:
                return self[path]
            path = path[:-1]
        return self.get((), None)


def compose_yaml(text: str, source: str, convert):
    """convert(loader, node) of the one document in `text` (None when empty); YAML errors are
    BlisError naming `source` and the line."""
    loader = Yaml12SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_alias_expansion(node, source)
        return convert(loader, node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        raise BlisError(f"{where}: not valid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise BlisError(f"{source}: not valid YAML: {' '.join(str(exc).split())}") from None
    finally:
        loader.dispose()


# Values that anchors/aliases may add when expanded into plain values ("billion laughs" guard).
ALIAS_EXPANSION_BUDGET = 10_000


def _check_alias_expansion(root, source: str) -> None:
    """Refuse a document whose aliases expand to far more values than it writes out.

    Sizes are memoised per node, so this costs one pass over the distinct nodes even
    when the expansion would be astronomically large.
    """
    expanded: dict[int, int] = {}
    stack = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in expanded:
            continue
        if isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        else:
            children = []
        if children_done:
            expanded[id(node)] = 1 + sum(expanded[id(c)] for c in children)
        else:
            stack.append((node, True))
            stack.extend((c, False) for c in children if id(c) not in expanded)
    if expanded[id(root)] > len(expanded) + ALIAS_EXPANSION_BUDGET:
        raise BlisError(f"{source}: YAML aliases expand to too many values (at most {ALIAS_EXPANSION_BUDGET} "
                        "repeated through anchors/aliases); write the values out")


def load_yaml_with_positions(text: str, source: str) -> tuple[object, Positions]:
    """(value, positions) of a one-document YAML text; errors are BlisError naming `source` and the line."""
    positions = Positions()

    def convert(loader, node):
        positions[()] = node.start_mark.line + 1
        return _convert(loader, node, (), positions, source)

    return compose_yaml(text, source, convert), positions


def _convert(loader, node, path: tuple, positions: Positions, source: str):
    if isinstance(node, yaml.MappingNode):
        try:
            loader.flatten_mapping(node)  # `<<: *anchor` merge keys
        except yaml.MarkedYAMLError as exc:
            raise BlisError(f"{source}:{node.start_mark.line + 1}: {exc.problem}") from None
        out = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode):
                raise BlisError(f"{source}:{line}: mapping keys must be plain names")
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                key = str(key)
            if key in out:
                where = ".".join(str(p) for p in path + (key,))
                raise BlisError(f"{source}:{line}: {where}: duplicate key (first given on line "
                                f"{positions[path + (key,)]})")
            positions[path + (key,)] = line
            out[key] = _convert(loader, value_node, path + (key,), positions, source)
        return out
    if isinstance(node, yaml.SequenceNode):
        items = []
        for i, item in enumerate(node.value):
            positions[path + (i,)] = item.start_mark.line + 1
            items.append(_convert(loader, item, path + (i,), positions, source))
        return items
    try:
        return loader.construct_object(node, deep=True)
    except yaml.YAMLError as exc:
        raise BlisError(f"{source}:{node.start_mark.line + 1}: {' '.join(str(exc).split())}") from None


def load_yaml_file_with_positions(path: str | Path) -> tuple[object, Positions]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BlisError(f"cannot read {path}: {exc}") from None
    return load_yaml_with_positions(text, str(path))
