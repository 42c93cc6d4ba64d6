"""Compose text → a typed, validated ComposeProject. Pure: no I/O, no clock, no os.environ.

`load_project` reads the YAML safely (size, depth and alias caps; Compose's `!reset` and
`!override` tags), interpolates `${VAR}` from the given mapping only, validates every element
and collects every problem before raising one `ComposeError`.

Problem paths name keys with dots and list items with brackets:
`models.llm.context_size`, `models.llm.runtime_flags[2]`, `services.app.models[1]`,
`services.app.models.llm.endpoint_var`; a problem with the whole file has the empty path.

Modules: `yamlload` (reading), `interpolate`, `models`, `services` (with `servicefields` and
`bindings`), `values` (typed reads), `report` (the problem collector), `toplevel`.
"""

from compose_operator.compose.bindings import env_prefix
from compose_operator.compose.toplevel import load_project

__all__ = ["env_prefix", "load_project"]
