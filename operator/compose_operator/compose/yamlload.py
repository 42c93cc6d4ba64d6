"""Read Compose YAML into plain Python values, keeping the line of every path for errors.

The text comes from users, possibly other tenants, through the API server, so reading is
bounded: at most 1 MiB, 64 levels of nesting, 100,000 nodes after alias expansion (the cap
compose-go uses, `loader/reset.go`), which stops "billion laughs" alias bombs, and 8 Mi
characters after alias expansion, counting every scalar, key and the path that names it (an
85 KB scalar aliased 12,000 times is 1 GB for whatever reads it next, in only 12,000 nodes);
recursive aliases are refused. Scalars resolve as YAML 1.2 core, like compose-go's YAML library:
`80:80` and `yes` stay strings (PyYAML's YAML 1.1 would read 4880 and True), and dates stay
strings; like go-yaml, an integer with a leading zero is octal (`mode: 0440` is 288: go-yaml's
resolver parses integers with Go's `strconv.ParseInt(text, 0, 64)`). Compose's own tags load:
`!reset` drops the entry and `!override` keeps its value; `read_tagged` also returns the
mapping paths that carried them, which reset the value a merge would otherwise extend (an
`extends` base, an `include`d resource). Merge keys (`<<: *base`) work as in Compose; a key
written twice in one mapping is an error, as in compose-go.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any, ClassVar

import yaml

from compose_operator.compose.report import Report, child, clip, item
from compose_operator.compose.values import show

MAX_BYTES = 1 << 20
MAX_DEPTH = 64
MAX_NODES = 100_000
MAX_EXPANDED = 8 * MAX_BYTES
"""Characters of scalars, keys and paths after alias expansion (and, in `interpolate`, of
scalars after interpolation): what later steps copy, hold and render."""

if TYPE_CHECKING:  # one static base for mypy: the C loader has the pure-Python one's interface
    _BaseLoader = yaml.SafeLoader
else:
    _BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_NULL = "tag:yaml.org,2002:null"
_BOOL = "tag:yaml.org,2002:bool"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_STR = "tag:yaml.org,2002:str"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
_MERGE = "tag:yaml.org,2002:merge"
_RESET = "!reset"
_OVERRIDE = "!override"

_NULL_RE = re.compile(r"^(?:~|null|Null|NULL|)$")
_BOOL_RE = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_INT_RE = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
_LEGACY_OCTAL = re.compile(r"^[-+]?0[0-7]+$")
_FLOAT_RE = re.compile(
    r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)


class _Loader(_BaseLoader):
    """A safe loader with YAML 1.2 core scalar resolution instead of PyYAML's YAML 1.1."""

    # This class's own table, so YAML 1.1's resolvers stay out of it. The ignore: PyYAML keeps
    # the table on the class, types-PyYAML declares it on instances.
    yaml_implicit_resolvers: ClassVar[dict[str | None, list[tuple[str, re.Pattern[str]]]]] = {}  # type: ignore[misc]


for _tag, _pattern, _first in (
    (_NULL, _NULL_RE, ["~", "n", "N", ""]),
    (_BOOL, _BOOL_RE, list("tTfF")),
    (_INT, _INT_RE, list("-+0123456789")),
    (_FLOAT, _FLOAT_RE, list("-+.0123456789")),
    (_MERGE, re.compile(r"^<<$"), ["<"]),
):
    _Loader.add_implicit_resolver(_tag, _pattern, _first)


class _Refused(Exception):
    """The document is over a limit; reading stops at once."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path


def read(text: str, report: Report) -> Any:
    """The document's value, or None after recording why it cannot be read."""
    return read_tagged(text, report)[0]


def read_tagged(text: str, report: Report) -> tuple[Any, tuple[tuple[str, ...], ...]]:
    """The document's value and the mapping paths tagged `!reset` or `!override`."""
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        report.problem("", "the text is not valid UTF-8")
        return None, ()
    if size > MAX_BYTES:
        report.problem("", f"the file is {size} bytes; at most {MAX_BYTES} (1 MiB) is accepted")
        return None, ()
    try:
        if not _within_limits(text, report):
            return None, ()
        loader = _Loader(text)
        node = loader.get_single_node()
    except yaml.YAMLError as error:
        _yaml_problem(error, report)
        return None, ()
    if node is None:
        report.problem("", "the file is empty; a Compose file is a mapping with `services:`")
        return None, ()
    walker = _Walker(loader, report)
    try:
        return walker.value(node, "", 0, ()), tuple(dict.fromkeys(walker.tagged))
    except _Refused as refused:
        report.problem(refused.path, str(refused))
        return None, ()


def _within_limits(text: str, report: Report) -> bool:
    """Check nesting and document count on the event stream, before building any tree."""
    loader = _Loader(text)
    depth = documents = 0
    while loader.check_event():
        event = loader.get_event()  # type: ignore[no-untyped-call]  # bare in types-PyYAML
        if isinstance(event, yaml.DocumentStartEvent):
            documents += 1
            if documents > 1:
                report.problem("", "the file holds several YAML documents; give one")
                return False
        elif isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                report.problem("", f"nesting deeper than {MAX_DEPTH} levels is refused")
                return False
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
    return True


def _yaml_problem(error: yaml.YAMLError, report: Report) -> None:
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error).split("\n", 1)[0]
    if mark is None:
        report.problem("", f"invalid YAML: {problem}")
    else:
        report.problem("", f"invalid YAML: {problem} (column {mark.column + 1})", mark.line + 1)


class _Walker:
    def __init__(self, loader: _Loader, report: Report) -> None:
        self.loader = loader
        self.report = report
        self.nodes = 0
        self.size = 0
        self.open: set[int] = set()
        self.tagged: list[tuple[str, ...]] = []

    def count(self, characters: int) -> None:
        self.size += characters
        if self.size > MAX_EXPANDED:
            raise _Refused(
                "",
                f"the document expands to more than {MAX_EXPANDED} characters (aliases and "
                "merge keys included); refusing it",
            )

    def value(self, node: yaml.Node, path: str, depth: int, keys: tuple[str, ...] | None) -> Any:
        """`keys` is the mapping path (None inside a list, where Compose resets nothing)."""
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise _Refused(
                "",
                f"the document expands to more than {MAX_NODES} YAML nodes (aliases included); "
                "refusing it",
            )
        self.count(len(path) + (len(node.value) if isinstance(node, yaml.ScalarNode) else 0))
        if path not in self.report.lines:
            self.report.lines[path] = node.start_mark.line + 1
        if depth > MAX_DEPTH:
            raise _Refused(path, f"nesting deeper than {MAX_DEPTH} levels (aliases included)")
        if id(node) in self.open:
            raise _Refused(path, "a YAML alias refers to the node that contains it")
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node, path)
        self.open.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                return self._mapping(node, path, depth, keys)
            if isinstance(node, yaml.SequenceNode):
                return self._sequence(node, path, depth)
            raise _Refused(path, f"unexpected YAML node {type(node).__name__}")
        finally:
            self.open.discard(id(node))

    def _tag_problem(self, node: yaml.Node, path: str, expected: str) -> bool:
        if node.tag in (expected, _OVERRIDE):
            return False
        self.report.problem(path, f"unsupported YAML tag {_short(node.tag)}")
        return True

    def _sequence(self, node: yaml.SequenceNode, path: str, depth: int) -> list[Any] | None:
        if self._tag_problem(node, path, _SEQ):
            return None
        values = []
        for index, element in enumerate(node.value):
            if element.tag == _RESET:
                continue
            values.append(self.value(element, item(path, index), depth + 1, None))
        return values

    def _mapping(
        self, node: yaml.MappingNode, path: str, depth: int, keys: tuple[str, ...] | None
    ) -> dict[str, Any] | None:
        if self._tag_problem(node, path, _MAP):
            return None
        seen: dict[str, int] = {}
        merged: list[yaml.Node] = []
        own: list[tuple[str, yaml.Node]] = []
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode):
                self.report.problem(path, f"a mapping key must be a plain value (line {line})")
                continue
            key = key_node.value
            self.count(len(key))
            if key in seen:
                self.report.problem(
                    child(path, key),
                    f'mapping key "{clip(key)}" already defined at line {seen[key]}',
                    line,
                )
                continue
            seen[key] = line
            if keys is not None and value_node.tag in (_RESET, _OVERRIDE):
                self.tagged.append((*keys, key))
            if key_node.tag == _MERGE:
                merged.append(value_node)
            elif value_node.tag != _RESET:
                own.append((key, value_node))
                self.report.lines[child(path, key)] = line
        result: dict[str, Any] = {}
        for source in reversed(merged):
            result.update(self._merge_source(source, path, depth, keys))
        for key, value_node in own:
            inner = None if keys is None else (*keys, key)
            result[key] = self.value(value_node, child(path, key), depth + 1, inner)
        return result

    def _merge_source(
        self, node: yaml.Node, path: str, depth: int, keys: tuple[str, ...] | None
    ) -> dict[str, Any]:
        """The mapping a `<<:` key brings in; with a list of mappings, the first wins."""
        sources = node.value if isinstance(node, yaml.SequenceNode) else [node]
        result: dict[str, Any] = {}
        for source in reversed(sources):
            value = self.value(source, path, depth + 1, keys)
            if not isinstance(value, dict):
                self.report.problem(path, "a merge key (<<) takes a mapping or a list of mappings")
                continue
            result.update(value)
        return result

    def _scalar(self, node: yaml.ScalarNode, path: str) -> Any:
        tag = node.tag
        if tag == _RESET:
            return None
        if tag == _OVERRIDE:
            implicit = (True, False)
            # the ignore: types-PyYAML leaves Resolver.resolve unannotated
            tag = _STR if node.style else self.loader.resolve(yaml.ScalarNode, node.value, implicit)  # type: ignore[no-untyped-call]
        try:
            return _construct(tag, node.value)
        except ValueError:
            self.report.problem(path, f"{show(node.value)} is not a valid {_short(tag)} value")
            return None
        except KeyError:
            self.report.problem(path, f"unsupported YAML tag {_short(tag)}")
            return None


def _construct(tag: str, text: str) -> Any:
    """A scalar's value under YAML 1.2 core rules; ValueError when text does not fit tag."""
    if tag == _STR:
        return text
    if tag == _NULL:
        if not _NULL_RE.match(text):
            raise ValueError(text)
        return None
    if tag == _BOOL:
        if not _BOOL_RE.match(text):
            raise ValueError(text)
        return text.lower() == "true"
    if tag == _INT:
        if not _INT_RE.match(text):
            raise ValueError(text)
        if text[:2] in ("0o", "0x"):
            return int(text, 0)
        if _LEGACY_OCTAL.match(text):
            return int(text, 8)
        return int(text, 10)
    if tag == _FLOAT:
        if not _FLOAT_RE.match(text):
            raise ValueError(text)
        lowered = text.lower()
        if lowered.endswith(".inf"):
            return -math.inf if lowered.startswith("-") else math.inf
        if lowered == ".nan":
            return math.nan
        return float(text)
    raise KeyError(tag)


def _short(tag: str) -> str:
    """`tag:yaml.org,2002:binary` → `!!binary`, as it is written in YAML."""
    return tag.replace("tag:yaml.org,2002:", "!!")
