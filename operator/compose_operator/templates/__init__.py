"""The model workload's Jinja2 templates, and the one safe way to render them.

Templates ship inside the package (read with importlib.resources, never from the working
directory); a platform team replaces one by file name through `settings.templates`. Every
`{{ … }}` must pass through `tojson`: the environment's `finalize` refuses anything else.

`tojson` does not splice a value's text into the YAML at all: it prints a slot token and
keeps the value aside. The rendered text, which then holds only the template's own
structure, is parsed with the safe loader once per distinct structure (cached); each render
copies that structure and puts a JSON copy of every value into its slot. No value, whatever
it contains, can change the document's structure, and a render costs two C JSON round trips
instead of a YAML parse.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

import jinja2
import yaml

MODEL_DEPLOYMENT = "model-deployment.yaml.j2"
MODEL_SERVICE = "model-service.yaml.j2"
MODEL_CACHE = "model-cache.yaml.j2"
NAMES = (MODEL_DEPLOYMENT, MODEL_SERVICE, MODEL_CACHE)

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_SLOTS = "_compose_operator_slots"
"""The context variable holding one render's values (a list `tojson` appends to)."""
_TOKEN = re.compile(r"__tojson_(\d+)__")


class TemplateValueError(ValueError):
    """A template printed a value without `tojson`, or inside a larger YAML scalar."""


class JsonText(str):
    """Text that `tojson` produced: the only thing a template may print."""

    __slots__ = ()


@jinja2.pass_context
def tojson(context: jinja2.runtime.Context, value: Any) -> JsonText:
    """A slot for `value`: a quoted token that stands for one whole YAML value."""
    slots: list[Any] = context[_SLOTS]
    slots.append(value)
    return JsonText(f'"__tojson_{len(slots) - 1}__"')


def _undefined(value: Any) -> Any:
    """`StrictUndefined` raises its own clear error ("'nmae' is undefined") when used."""
    if isinstance(value, jinja2.Undefined):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def _only_json(value: Any) -> Any:
    if isinstance(value, JsonText):
        return value
    raise TemplateValueError(
        f"template printed {value!r} without `| tojson`; every value must pass through it"
    )


def _packaged(name: str) -> str | None:
    if name not in NAMES:
        return None
    return resources.files(__name__).joinpath(name).read_text(encoding="utf-8")


@functools.lru_cache(maxsize=32)
def environment(overrides: tuple[tuple[str, str], ...] = ()) -> jinja2.Environment:
    """One compiled environment per set of replacement templates (they are hashable)."""
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader(
            [jinja2.DictLoader(dict(overrides)), jinja2.FunctionLoader(_packaged)]
        ),
        undefined=jinja2.StrictUndefined,
        finalize=_only_json,
        autoescape=False,
        keep_trailing_newline=True,
        auto_reload=False,
    )
    env.filters["tojson"] = tojson
    return env


Path = tuple[str | int, ...]


@dataclass(frozen=True)
class _Compiled:
    """A rendered structure, parsed once: its JSON with empty slots, and where they are."""

    skeleton: str
    values: tuple[tuple[Path, int], ...]
    """(where in the document, which value) for each value slot."""
    keys: tuple[tuple[Path, str, int], ...]
    """(the mapping, its token key, which value) for each key slot, innermost first."""


def render(name: str, context: Mapping[str, Any], overrides: Mapping[str, str]) -> Any:
    """Render template `name` and parse it: a dict, or None when it renders nothing."""
    template = environment(tuple(sorted(overrides.items()))).get_template(name)
    printed: list[Any] = []
    compiled = _compile(template.render({**context, _SLOTS: printed}))
    values = json.loads(_ENCODER.encode(printed))  # fresh JSON copies: no shared objects
    document = json.loads(compiled.skeleton)
    for path, index in compiled.values:
        _parent(document, path)[path[-1]] = values[index]
    for path, token, index in compiled.keys:
        key = values[index]
        if not isinstance(key, str):
            raise TemplateValueError(f"a mapping key must be a string, not {key!r}")
        mapping = _parent(document, (*path, token))
        mapping[key] = mapping.pop(token)
    return document


_ENCODER = json.JSONEncoder(sort_keys=True, default=_undefined)


def _parent(document: Any, path: Path) -> Any:
    for step in path[:-1]:
        document = document[step]
    return document


@functools.lru_cache(maxsize=256)
def _compile(text: str) -> _Compiled:
    """Parse the template's own structure once per distinct rendered text.

    Slot tokens are the only strings in `text` that can match `_TOKEN` whole (a string
    holding one as a part is refused), so the tokens mark exactly where values go.
    """
    document = yaml.load(text, Loader=_LOADER)
    values: list[tuple[Path, int]] = []
    keys: list[tuple[Path, str, int]] = []
    _find_slots(document, (), values, keys)
    try:
        skeleton = json.dumps(document)
    except (TypeError, ValueError) as error:
        raise TemplateValueError(f"the template's own text is not JSON-like: {error}") from None
    return _Compiled(skeleton, tuple(values), tuple(reversed(keys)))


def _find_slots(
    node: Any, path: Path, values: list[tuple[Path, int]], keys: list[tuple[Path, str, int]]
) -> None:
    if isinstance(node, str):
        whole = _TOKEN.fullmatch(node)
        if whole:
            values.append((path, int(whole[1])))
        elif _TOKEN.search(node):
            raise TemplateValueError(
                f"a `tojson` value must be a whole YAML value, not part of {node!r}"
            )
    elif isinstance(node, dict):
        for key, value in node.items():
            if isinstance(key, str) and _TOKEN.search(key):
                whole = _TOKEN.fullmatch(key)
                if not whole:
                    raise TemplateValueError(
                        f"a `tojson` key must be a whole YAML value, not part of {key!r}"
                    )
                keys.append((path, key, int(whole[1])))
            _find_slots(value, (*path, key), values, keys)
    elif isinstance(node, list):
        for index, item in enumerate(node):
            _find_slots(item, (*path, index), values, keys)


def problems(overrides: Mapping[str, str]) -> dict[str, str]:
    """What is wrong with replacement templates, by name: an unknown name or bad syntax."""
    found = {}
    for name, text in overrides.items():
        if name not in NAMES:
            found[name] = f"no template named {name!r}; known: {', '.join(NAMES)}"
            continue
        try:
            environment().parse(text)
        except jinja2.TemplateSyntaxError as error:
            found[name] = f"line {error.lineno}: {error.message}"
    return found
