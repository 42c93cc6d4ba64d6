"""What every serving engine provides, and the parts all engines share.

An engine is one file with one small object: its port, its arguments, the runtime flags it
refuses or warns about, and any extra volume it needs. The Deployment, probes and model
volume are built once, in `render`, from these answers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from compose_operator.errors import Problem, Warning
from compose_operator.project import Model

if TYPE_CHECKING:
    from compose_operator.settings import Settings

MODELS_DIR = "/models"
"""Where the model volume is mounted in the puller and the engine."""
HEALTH_PATH = "/health"
STARTUP_PERIOD_SECONDS = 10
STARTUP_FAILURE_THRESHOLD = 180
"""10 s x 180 = 30 minutes for a model to load before the kubelet restarts the pod:
large weights read from a cold volume take minutes (KAITO allows 30 minutes, KubeAI 3 h)."""


@dataclass(frozen=True)
class Weights:
    """Where the engine finds the model: files the puller wrote, or a Hugging Face repo."""

    huggingface: str | None = None
    """`org/repo[:quant]` the engine downloads itself; None: the puller wrote `MODELS_DIR`."""

    @property
    def pulled(self) -> bool:
        return self.huggingface is None


@dataclass(frozen=True)
class FlagRules:
    """How an engine treats runtime flags: refused ones break the contract; external ones
    make the engine read local files, load code or reach other hosts (refused unless the
    policy allows them); the others replace a value the operator set (the last flag wins) and
    deserve a warning."""

    refused: frozenset[str]
    overrides: Mapping[str, str] = field(default_factory=dict)
    """flag → what it overrides, e.g. {"--ctx-size": "context_size"}; applies when set."""
    external: frozenset[str] = frozenset()
    external_unless_inline: frozenset[str] = frozenset()
    """Flags whose value is read as a file unless it is inline text holding `{` (vLLM tries
    `--chat-template` as a file first)."""
    abbreviations: bool = False
    """The engine's parser (argparse) takes any unique prefix of a long flag as the flag."""

    def known(self) -> list[tuple[str, str]]:
        """(flag, kind) for every flag with a rule, the strictest kinds first."""
        kinds = (
            ("refused", self.refused),
            ("external", self.external | self.external_unless_inline),
            ("override", frozenset(self.overrides)),
        )
        return [(flag, kind) for kind, flags in kinds for flag in sorted(flags)]


class Engine(Protocol):
    name: str
    port: int
    container: str

    def image(self, settings: Settings, gpu: bool) -> str: ...

    def command(self, settings: Settings) -> list[str]: ...

    def args(self, model: Model, weights: Weights, gpus: int) -> list[str]: ...

    def check(
        self, model: Model, weights: Weights, gpus: int, path: str, *, external: bool = False
    ) -> tuple[list[Problem], list[Warning]]:
        """What this engine refuses (problems) or ignores (warnings) in model `path`;
        `external`: the policy allows flags that read files or reach other hosts."""
        ...

    def env(self, weights: Weights) -> dict[str, str]: ...

    def volumes(self) -> list[dict[str, Any]]: ...

    def volume_mounts(self) -> list[dict[str, Any]]: ...


def image(name: str, settings: Settings, gpu: bool) -> str:
    images = settings.engines[name]
    return images.gpu if gpu else images.cpu


def command(name: str, settings: Settings) -> list[str]:
    return list(settings.engines[name].command)


def health_probes() -> dict[str, dict[str, Any]]:
    """Probes on `/health` at the `http` port: long startup, then readiness and liveness."""

    def probe(period: int, failures: int) -> dict[str, Any]:
        return {
            "httpGet": {"path": HEALTH_PATH, "port": "http"},
            "periodSeconds": period,
            "timeoutSeconds": 5,
            "failureThreshold": failures,
        }

    return {
        "startup": probe(STARTUP_PERIOD_SECONDS, STARTUP_FAILURE_THRESHOLD),
        "readiness": probe(10, 3),
        "liveness": probe(30, 3),
    }


def flag_name(flag: str) -> str:
    """`--port=9000` → `--port`, `--served_model_name` → `--served-model-name` (both engines'
    parsers take underscores or ignore the spelling, so the check must not); a value such as
    `0.7` stays as is (never a flag we check)."""
    if not flag.startswith("-"):
        return flag
    name = flag.split("=", 1)[0]
    return "--" + name[2:].replace("_", "-") if name.startswith("--") else name


def _resolve(name: str, rules: FlagRules) -> tuple[str, str] | None:
    """(the flag `name` stands for, its kind), or None when no rule applies."""
    known = rules.known()
    for flag, kind in known:
        if flag == name:
            return flag, kind
    if rules.abbreviations and name.startswith("--") and len(name) > 3:
        for flag, kind in known:
            if flag.startswith(name):
                return flag, kind
    return None


def _value(flags: Sequence[str], index: int) -> str:
    flag = flags[index]
    if "=" in flag:
        return flag.split("=", 1)[1]
    return flags[index + 1] if index + 1 < len(flags) else ""


def check_flags(
    flags: Sequence[str],
    rules: FlagRules,
    active: Mapping[str, bool],
    path: str,
    *,
    external: bool = False,
) -> tuple[list[Problem], list[Warning]]:
    """Refuse contract-breaking flags, and flags that reach outside the pod unless
    `external`; warn about flags that replace a value we set. Spellings the engines accept
    (underscores, argparse's abbreviations) are checked as the flag they stand for.

    `active` says which overridden values the operator actually set for this model (a
    `--ctx-size` with no `context_size` overrides nothing). `path` is the model's.
    """
    problems, warnings = [], []
    for index, flag in enumerate(flags):
        found = _resolve(flag_name(flag), rules)
        if found is None:
            continue
        name, kind = found
        where = f"{path}.runtime_flags[{index}]"
        written = flag.split("=", 1)[0]
        spelled = "" if written == name else f"{written} is {name}: "
        if kind == "refused":
            problems.append(Problem(where, f"{spelled}{name} is set by the operator; remove it"))
        elif kind == "external" and not external:
            if name in rules.external_unless_inline and "{" in _value(flags, index):
                continue
            problems.append(
                Problem(
                    where,
                    f"{spelled}{name} makes the engine read local files, load code or reach "
                    "other hosts, which the operator's policy does not allow "
                    "(allowFileAndNetworkFlags)",
                )
            )
        elif kind == "override" and active.get(rules.overrides[name], False):
            what = rules.overrides[name]
            warnings.append(
                Warning(
                    where,
                    f"{spelled}{name} overrides the {what} the operator sets (the last flag wins)",
                )
            )
    return problems, warnings


def telemetry_env(weights: Weights) -> dict[str, str]:
    """No phoning home; and no Hub lookups when the weights are already on disk."""
    env = {"DO_NOT_TRACK": "1"}
    if weights.pulled:
        env["HF_HUB_OFFLINE"] = "1"
    return env
