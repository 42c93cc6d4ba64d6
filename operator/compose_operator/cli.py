"""`compose-operator`: one entry point for the offline core and the operator.

Each command imports only what it needs: kopf and the Kubernetes client cost half a second
to import, which `render` and `convert` (and the webhook-less tooling around them) never pay.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

EXIT_INVALID = 2


def _parse_env_pairs(pairs: Sequence[str], files: Sequence[Path]) -> dict[str, str]:
    """Values for `${VAR}`: env files first, then `--env` pairs, later ones winning."""
    environment: dict[str, str] = {}
    for file in files:
        for number, line in enumerate(_read_text(file).splitlines(), start=1):
            stripped = line.strip()
            if not stripped or stripped.startswith("#"):
                continue
            key, sep, value = stripped.removeprefix("export ").partition("=")
            if not sep:
                raise argparse.ArgumentTypeError(f"{file}:{number}: expected KEY=VALUE")
            environment[key.strip()] = _unquote(value.strip())
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise argparse.ArgumentTypeError(f"--env {pair!r}: expected KEY=VALUE")
        environment[key] = value
    return environment


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def _read_source(path: str) -> tuple[str, str]:
    """The Compose text and the name errors should show for it (`-` is stdin)."""
    if path == "-":
        raw = getattr(sys.stdin, "buffer", None)  # absent when stdin is already text
        text = _decoded(raw.read(), "<stdin>") if raw is not None else sys.stdin.read()
        return text, "<stdin>"
    return _read_text(Path(path)), path


def _read_text(path: Path) -> str:
    return _decoded(path.read_bytes(), str(path))


def _decoded(data: bytes, name: str) -> str:
    """UTF-8 text, or a clean error (exit 2) naming the file and the first bad byte."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise argparse.ArgumentTypeError(
            f"{name}: not valid UTF-8 (byte {error.start}: {error.reason})"
        ) from None


def _dump_documents(documents: Sequence[Mapping[str, Any]]) -> str:
    import yaml

    class LiteralDumper(yaml.SafeDumper):
        pass

    def represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    LiteralDumper.add_representer(str, represent_str)
    return yaml.dump_all(documents, Dumper=LiteralDumper, sort_keys=False, explicit_start=True)


def _print_problems(error: Exception) -> int:
    from compose_operator.errors import ComposeError

    assert isinstance(error, ComposeError)
    for message in error.messages:
        print(message, file=sys.stderr)
    return EXIT_INVALID


def _command_render(args: argparse.Namespace) -> int:
    from compose_operator import compose, render
    from compose_operator.errors import ComposeError
    from compose_operator.settings import Settings, load_settings

    environment = _parse_env_pairs(args.env, args.env_file)
    text, file = _read_source(args.file)
    try:
        settings = (
            load_settings(_read_text(args.config), file=str(args.config))
            if args.config
            else Settings()
        )
        project = compose.load_project(text, file=file, environment=environment)
        plan = render.plan(
            project, app=args.name, namespace=args.namespace, settings=settings, file=file
        )
    except ComposeError as error:
        return _print_problems(error)
    for warning in plan.warnings:
        print(f"{file}: warning: {warning}", file=sys.stderr)
    sys.stdout.write(_dump_documents(plan.objects))
    for binding in plan.bindings:
        print(
            f"{file}: services.{binding.service}: binds to the existing Deployment "
            f"{binding.deployment!r} (patched at reconcile time, env only)",
            file=sys.stderr,
        )
    return 0


def _command_convert(args: argparse.Namespace) -> int:
    from compose_operator import compose
    from compose_operator.errors import ComposeError

    environment = _parse_env_pairs(args.env, [])
    text, file = _read_source(args.file)
    try:
        compose.load_project(text, file=file, environment=environment)
    except ComposeError as error:
        return _print_problems(error)
    metadata: dict[str, str] = {"name": args.name}
    if args.namespace:
        metadata["namespace"] = args.namespace
    spec: dict[str, Any] = {"compose": text}
    if environment:
        spec["environment"] = environment
    app = {
        "apiVersion": "compose-operator.io/v1alpha1",
        "kind": "ComposeApp",
        "metadata": metadata,
        "spec": spec,
    }
    sys.stdout.write(_dump_documents([app]))
    return 0


def _command_crd(_: argparse.Namespace) -> int:
    from compose_operator import crd

    sys.stdout.write(crd.render_crd_yaml())
    return 0


def _command_pull_model(args: argparse.Namespace) -> int:
    from compose_operator import puller

    return puller.main(args)


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="compose-operator",
        description="Run Compose applications with AI models on Kubernetes.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add_env_options(command: argparse.ArgumentParser) -> None:
        command.add_argument(
            "--env",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="a value for ${KEY} interpolation (repeatable)",
        )

    render_cmd = commands.add_parser("render", help="print every planned object as YAML")
    render_cmd.add_argument("-f", "--file", required=True, help="Compose file (- for stdin)")
    render_cmd.add_argument("--name", required=True, help="the ComposeApp name")
    render_cmd.add_argument("--namespace", default="default")
    render_cmd.add_argument("--config", type=Path, help="operator settings YAML")
    add_env_options(render_cmd)
    render_cmd.add_argument(
        "--env-file", action="append", default=[], type=Path, help="KEY=VALUE lines"
    )
    render_cmd.set_defaults(handler=_command_render)

    convert_cmd = commands.add_parser("convert", help="print a ComposeApp carrying the file")
    convert_cmd.add_argument("-f", "--file", required=True, help="Compose file (- for stdin)")
    convert_cmd.add_argument("--name", required=True)
    convert_cmd.add_argument("--namespace")
    add_env_options(convert_cmd)
    convert_cmd.set_defaults(handler=_command_convert)

    crd_cmd = commands.add_parser("crd", help="print the ComposeApp CustomResourceDefinition")
    crd_cmd.set_defaults(handler=_command_crd)

    pull_cmd = commands.add_parser("pull-model", help="fetch a model artifact from a registry")
    from compose_operator.puller import cli as puller_cli

    puller_cli.add_arguments(pull_cmd)
    pull_cmd.set_defaults(handler=_command_pull_model)

    run_cmd = commands.add_parser(
        "run", help="start the operator", add_help=False, prefix_chars="\0"
    )
    run_cmd.add_argument("run_args", nargs=argparse.REMAINDER)

    gateway_cmd = commands.add_parser(
        "gateway",
        help="serve an app's model gateway (in its pods)",
        add_help=False,
        prefix_chars="\0",
    )
    gateway_cmd.add_argument("gateway_args", nargs=argparse.REMAINDER)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["run"]:
        from compose_operator.shell import runner

        return runner.main(arguments[1:])
    if arguments[:1] == ["gateway"]:
        from compose_operator.gateway import main as gateway

        return gateway.main(arguments[1:])
    parser = _build_parser()
    try:
        args = parser.parse_args(arguments)
        result: int = args.handler(args)
    except argparse.ArgumentTypeError as error:
        print(f"compose-operator: {error}", file=sys.stderr)
        return EXIT_INVALID
    except FileNotFoundError as error:
        print(f"compose-operator: {error.filename}: no such file", file=sys.stderr)
        return EXIT_INVALID
    return result


if __name__ == "__main__":
    sys.exit(main())
