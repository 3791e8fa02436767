"""Loading YAML config files with `file:line: field: problem` errors.

One mechanism for every config file (catalog, courses, ARC presets): the YAML is
parsed once into Python data *and* a map from each key path to its line, then a
pydantic model validates the data and every error is reported at the line of the
deepest key path that exists in the file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from .i18n import _

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


@dataclass(frozen=True)
class ConfigProblem:
    file: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.field}: {self.message}"

    @classmethod
    def at(cls, file: str, lines: dict[tuple, int], loc: tuple, message: str) -> "ConfigProblem":
        """A problem with the value at key path `loc`, reported at its line (or its nearest parent's).

        >>> str(ConfigProblem.at("c.yaml", {("profiles",): 3}, ("profiles", 2, "image"), "missing"))
        'c.yaml:3: profiles[2].image: missing'
        """
        return cls(file, _line_for(lines, loc), field_name(loc), message)


class ConfigError(ValueError):
    """One or more problems in a config file; `str()` gives one line per problem."""

    def __init__(self, problems: list[ConfigProblem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def _line_map(node: yaml.Node, path: tuple = (), out: dict | None = None) -> dict[tuple, int]:
    """Map every key path in a composed YAML tree to its 1-based line."""
    out = {} if out is None else out
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            sub = path + (key.value,)
            out[sub] = key.start_mark.line + 1
            _line_map(value, sub, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            sub = path + (i,)
            out[sub] = item.start_mark.line + 1
            _line_map(item, sub, out)
    return out


def _line_for(lines: dict[tuple, int], loc: tuple) -> int:
    loc = tuple(loc)
    while loc and loc not in lines:
        loc = loc[:-1]
    return lines.get(loc, 1)


def field_name(loc: tuple) -> str:
    """`('profiles', 2, 'cpu_limit')` -> `profiles[2].cpu_limit`."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(file)"


#: Config files larger than this are refused unread (a config is a few KB; this stops a device or a log).
MAX_CONFIG_BYTES = 1024 * 1024
#: Nodes the document may hold once its aliases are expanded (a "billion laughs" stops here).
MAX_EXPANDED_NODES = 100_000
#: Nesting depth of mappings and lists.
MAX_DEPTH = 100


def _read_text(path: Path) -> str:
    """The file as UTF-8 text, at most MAX_CONFIG_BYTES; every problem is a ConfigError at its line."""
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError([ConfigProblem(str(path), 1, "(file)", _("cannot be read: {error}").format(error=exc.strerror or exc))]) from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError([ConfigProblem(str(path), 1, "(file)", _("more than {limit} bytes; a config file is at most that").format(limit=MAX_CONFIG_BYTES))])
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError([ConfigProblem(
            str(path), line, "(encoding)", _("not UTF-8 text (byte {byte} at offset {offset}); save the file as UTF-8").format(
                byte=f"0x{raw[exc.start]:02x}", offset=exc.start),
        )]) from None


def _nested_too_deep() -> str:
    return _("nested too deep (more than {limit} levels)").format(limit=MAX_DEPTH)


def _check_shape(node: yaml.Node, path: str) -> None:
    """Refuse alias bombs, deep nesting and duplicate keys before anything walks the tree.

    Sizes are counted per node once (memoised), so a bomb is measured without expanding it.
    """
    sizes: dict[int, int] = {}
    stack: list[tuple[yaml.Node, int, bool]] = [(node, 1, False)]
    while stack:
        current, depth, done = stack.pop()
        if depth > MAX_DEPTH:
            raise ConfigError([ConfigProblem(path, current.start_mark.line + 1, "(nesting)", _nested_too_deep())])
        if isinstance(current, yaml.ScalarNode):
            sizes[id(current)] = 1
            continue
        children = [v for pair in current.value for v in pair] if isinstance(current, yaml.MappingNode) else list(current.value)
        if not done:
            if id(current) in sizes:
                continue
            sizes[id(current)] = 0  # in progress (YAML cannot make cycles through safe_load-able anchors)
            stack.append((current, depth, True))
            stack.extend((c, depth + 1, False) for c in children if id(c) not in sizes)
            continue
        total = 1 + sum(sizes.get(id(c), 1) for c in children)
        if total > MAX_EXPANDED_NODES:
            raise ConfigError([ConfigProblem(
                path, current.start_mark.line + 1, "(aliases)",
                _("anchors and aliases expand to more than {limit} values; write the values out or use fewer aliases").format(
                    limit=MAX_EXPANDED_NODES),
            )])
        sizes[id(current)] = total
        if isinstance(current, yaml.MappingNode):
            seen: dict = {}
            for key, _value in current.value:
                if not isinstance(key, yaml.ScalarNode):
                    raise ConfigError([ConfigProblem(path, key.start_mark.line + 1, "(syntax)", _("a key must be a plain word, not a list or mapping"))])
                if key.value in seen:
                    raise ConfigError([ConfigProblem(
                        path, key.start_mark.line + 1, str(key.value)[:60], _("key appears twice (first on line {line})").format(line=seen[key.value]),
                    )])
                seen[key.value] = key.start_mark.line + 1


def load_yaml(path: str | os.PathLike) -> tuple[Any, dict[tuple, int]]:
    """Parse a YAML file; returns (data, line map).

    Every problem becomes a ConfigError at a line: not UTF-8, too large, syntax,
    alias bombs, deep nesting, duplicate or non-scalar keys (see `_check_shape`).
    """
    path = Path(path)
    if path.is_dir():
        raise ConfigError([ConfigProblem(str(path), 1, "(file)", _("is a folder, not a YAML file"))])
    text = _read_text(path)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        if node is not None:
            _check_shape(node, str(path))
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 1
        problem = " ".join(str(getattr(exc, "problem", None) or exc).split())  # one line per problem
        raise ConfigError([ConfigProblem(str(path), line, "(syntax)", problem.replace('"<unicode string>", ', ""))]) from None
    except RecursionError:
        raise ConfigError([ConfigProblem(str(path), 1, "(nesting)", _nested_too_deep())]) from None
    lines = _line_map(node) if node is not None else {}
    return data, lines


def validate_data(model: type[M], data: Any, lines: dict[tuple, int], file: str) -> M:
    """Validate parsed data against a pydantic model, errors mapped to lines."""
    try:
        return model.model_validate(data if data is not None else {})
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
            msg = err["msg"]
            if msg.startswith("Value error, "):
                msg = msg[len("Value error, "):]
            if err["type"] == "extra_forbidden":
                msg = _("unknown field (check the spelling; see the documented fields)")
            problems.append(ConfigProblem.at(file, lines, loc, msg))
        raise ConfigError(problems) from None


def load_model(model: type[M], path: str | os.PathLike) -> M:
    data, lines = load_yaml(path)
    return validate_data(model, data, lines, str(path))


def require_unique(values: Iterable[str], what: str) -> None:
    """Raise ValueError naming the first value seen twice (a model validator's check).

    >>> require_unique(["a", "b", "a"], "profile slug")
    Traceback (most recent call last):
    ...
    ValueError: profile slug 'a' appears twice
    """
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise ValueError(_("{what} {value} appears twice").format(what=what, value=repr(value)))
        seen.add(value)


class StrictModel(BaseModel):
    """Base for config models: unknown keys are errors, values are immutable."""

    model_config = {"extra": "forbid", "frozen": True}


_file_cache: dict[tuple[Any, str], tuple[int, Any]] = {}


def cached_load(loader: Callable[[str], T], path: str | os.PathLike) -> T:
    """`loader(path)`, reloaded only when the file changes (mtime), so a running hub sees edits.

    The one cache for every config file (catalog, courses, allocations).
    """
    key = (loader, str(Path(path).resolve()))
    mtime = os.stat(key[1]).st_mtime_ns
    hit = _file_cache.get(key)
    if hit and hit[0] == mtime:
        return hit[1]
    value = loader(key[1])
    _file_cache[key] = (mtime, value)
    return value
