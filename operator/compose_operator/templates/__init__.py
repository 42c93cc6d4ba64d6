"""The model workload's Jinja2 templates, and the one safe way to render them.

Templates ship inside the package (read with importlib.resources, never from the working
directory); a platform team replaces one by file name through `settings.templates`. Every
`{{ … }}` must pass through `tojson`: the environment's `finalize` refuses anything else, so
no value, whatever it contains, can change the YAML document's structure. The result is
parsed with `yaml.safe_load`; callers only ever see dicts.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from importlib import resources
from typing import Any

import jinja2
import yaml

MODEL_DEPLOYMENT = "model-deployment.yaml.j2"
MODEL_SERVICE = "model-service.yaml.j2"
MODEL_CACHE = "model-cache.yaml.j2"
NAMES = (MODEL_DEPLOYMENT, MODEL_SERVICE, MODEL_CACHE)

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# What YAML may not hold raw (PyYAML's Reader.NON_PRINTABLE) or reads as a line break inside
# a quoted scalar (NEL, LS, PS: folded to a space), and the byte-order mark. JSON leaves all
# of these raw when `ensure_ascii` is off; `ensure_ascii` would split astral characters into
# surrogate pairs, which YAML does not join again. So: escape exactly these.
_NOT_YAML_SAFE = re.compile(
    "[^\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]"
)


class JsonText(str):
    """Text that `tojson` produced: the only thing a template may print."""

    __slots__ = ()


def tojson(value: Any) -> JsonText:
    """`value` as JSON that YAML reads back unchanged (JSON is YAML's flow style)."""
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, default=_undefined)
    return JsonText(_NOT_YAML_SAFE.sub(lambda match: f"\\u{ord(match[0]):04x}", text))


def _undefined(value: Any) -> Any:
    """`StrictUndefined` raises its own clear error ("'nmae' is undefined") when printed."""
    if isinstance(value, jinja2.Undefined):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def _only_json(value: Any) -> Any:
    if isinstance(value, JsonText):
        return value
    raise TemplateValueError(
        f"template printed {value!r} without `| tojson`; every value must pass through it"
    )


class TemplateValueError(ValueError):
    """A template printed a value without `tojson`."""


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


def render(name: str, context: Mapping[str, Any], overrides: Mapping[str, str]) -> Any:
    """Render template `name` and parse it: a dict, or None when it renders nothing."""
    template = environment(tuple(sorted(overrides.items()))).get_template(name)
    return yaml.load(template.render(context), Loader=_LOADER)


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
