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
    """Values for `${VAR}`: env files first (the `.env` format docker compose reads), then
    `--env` pairs, later ones winning."""
    from compose_operator.compose.envfile import EnvFileError, parse

    environment: dict[str, str] = {}
    for file in files:
        try:
            environment.update(parse(_read_text(file), environment))
        except EnvFileError as error:
            raise argparse.ArgumentTypeError(f"{file}: {error}") from None
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise argparse.ArgumentTypeError(f"--env {pair!r}: expected KEY=VALUE")
        environment[key] = value
    return environment


def _parse_images(pairs: Sequence[str]) -> dict[str, str]:
    images: dict[str, str] = {}
    for pair in pairs:
        service, sep, image = pair.partition("=")
        if not sep or not service or not image:
            raise argparse.ArgumentTypeError(f"--image {pair!r}: expected SERVICE=IMAGE")
        images[service] = image
    return images


def _read_source(path: str) -> tuple[str, str, Path]:
    """The Compose text, the name errors should show for it (`-` is stdin), and the project
    folder its files are read from (the file's folder; the working directory for stdin)."""
    if path == "-":
        raw = getattr(sys.stdin, "buffer", None)  # absent when stdin is already text
        text = _decoded(raw.read(), "<stdin>") if raw is not None else sys.stdin.read()
        return text, "<stdin>", Path.cwd()
    return _read_text(Path(path)), path, Path(path).parent


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


def _load_carried(
    args: argparse.Namespace, environment: Mapping[str, str], images: Mapping[str, str]
) -> tuple[str, str, Any, dict[str, Any]]:
    """The project as the operator will see it once `convert` packed it: read once from
    disk (recording every file the Compose file uses), the files placed inline or in
    ConfigMaps of their own, then loaded again from those placed files.

    Returns the Compose text, its display name, the project and the placed files.
    """
    from compose_operator import compose
    from compose_operator.compose import projectfiles
    from compose_operator.errors import ComposeError
    from compose_operator.projectdir import ProjectDir

    text, file, root = _read_source(args.file)
    disk = ProjectDir(root, excluded=_secret_files(text))

    def load(files: projectfiles.ProjectFiles) -> Any:
        return compose.load_project(
            text,
            file=file,
            environment=environment,
            files=files,
            images=images,
            images_file="--image",
        )

    first = load(disk)
    # An included file's secrets are known only now: their files never travel either.
    secret_files = {s.file for s in first.secrets.values() if s.file is not None}
    read = [found for path, found in disk.read.items() if path not in secret_files]
    placed, problems = projectfiles.pack(args.name, read, compose_bytes=len(text.encode()))
    if problems:
        raise ComposeError(str(root), problems)
    return text, file, load(projectfiles.CarriedFiles(placed)), placed


def _secret_files(text: str) -> frozenset[str]:
    """The project paths of the Compose file's own `secrets.*.file`: never read from disk,
    even below a bind-mounted folder."""
    from compose_operator.compose import yamlload
    from compose_operator.compose.projectfiles import normalize
    from compose_operator.compose.report import Report

    document = yamlload.read(text, Report())
    secrets = document.get("secrets") if isinstance(document, dict) else None
    files = [
        entry.get("file")
        for entry in (secrets.values() if isinstance(secrets, dict) else ())
        if isinstance(entry, dict)
    ]
    return frozenset(normalize("", f) for f in files if isinstance(f, str) and f)


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
    from compose_operator import render
    from compose_operator.errors import ComposeError
    from compose_operator.settings import Settings, load_settings

    environment = _parse_env_pairs(args.env, args.env_file)
    images = _parse_images(args.image)
    try:
        settings = (
            load_settings(_read_text(args.config), file=str(args.config))
            if args.config
            else Settings()
        )
        _, file, project, _ = _load_carried(args, environment, images)
        plan = render.plan(
            project, app=args.name, namespace=args.namespace, settings=settings, file=file
        )
    except ComposeError as error:
        return _print_problems(error)
    for warning in plan.warnings:
        print(f"{file}: warning: {warning}", file=sys.stderr)
    if plan.gateway is not None:
        routed = sum(1 for model in plan.models if model.endpoint)
        print(
            f"{file}: every *_URL through the model gateway is {plan.gateway.url} "
            f"({plan.gateway.name}: routes by the request's model to {routed} models)",
            file=sys.stderr,
        )
    sys.stdout.write(_dump_documents(plan.objects))
    for binding in plan.bindings:
        sys.stdout.write(_bound_patch(binding, args.name, args.namespace))
    for secret in plan.secrets:
        print(
            f"{file}: the pods of {', '.join(secret.services)} mount the Secret {secret.name} "
            f"(key {secret.key}); make it with: {secret.create}",
            file=sys.stderr,
        )
    return 0


def _bound_patch(binding: Any, app: str, namespace: str) -> str:
    """The server-side-apply body the operator sends to a bound Deployment, with a header."""
    from compose_operator import render

    container = binding.deployment
    body = render.build_env_patch(binding, namespace=namespace, containers=[container])
    header = (
        f"# services.{binding.service}: no image, so it binds to the existing Deployment "
        f"{binding.deployment},\n"
        f"# which must carry the annotation compose-operator.io/app: {app}. The operator "
        "applies this body\n"
        "# (server-side apply, field manager compose-operator) with the env in every "
        f"container;\n# {container!r} stands for each container name, known only in the "
        "cluster.\n"
    )
    return "---\n" + header + _dump_documents([body]).removeprefix("---\n")


def _command_convert(args: argparse.Namespace) -> int:
    from compose_operator import convert
    from compose_operator.errors import ComposeError
    from compose_operator.render.projectfiles import create_secret_command

    environment = _parse_env_pairs(args.env, args.env_file)
    images = _parse_images(args.image)
    try:
        text, file, project, placed = _load_carried(args, environment, images)
    except ComposeError as error:
        return _print_problems(error)
    app = convert.build_app(
        name=args.name,
        namespace=args.namespace,
        compose=text,
        environment=environment,
        images=images,
        placed=placed,
    )
    maps = convert.own_config_maps(placed, args.namespace)
    stream = _dump_documents([app, *maps])
    sys.stdout.write(stream)
    if len(stream.encode()) > convert.CLIENT_SIDE_APPLY_MAX:
        print(
            f"{file}: apply it with `kubectl apply --server-side`: client-side apply keeps a copy "
            "of each object in an annotation of at most 256 KiB",
            file=sys.stderr,
        )
    for path, found in placed.items():
        where = "inline" if found.config_map is None else f"ConfigMap {found.config_map[0]}"
        print(
            f"{file}: packed {path} ({convert.size_text(found.content)}, {where})", file=sys.stderr
        )
    used = sorted({m.source for s in project.services.values() for m in s.secrets})
    for name in used:
        secret = project.secrets[name]
        print(
            f"{file}: secrets.{name} is not packed (secrets never travel in a ComposeApp); "
            f"make it with: {create_secret_command(secret, args.namespace)}",
            file=sys.stderr,
        )
    if args.kustomize is not None:
        _write_kustomization(args.kustomize, app, placed, args.namespace)
    return 0


def _write_kustomization(
    directory: Path, app: Mapping[str, Any], placed: Mapping[str, Any], namespace: str | None
) -> None:
    from compose_operator import convert

    app_file = "composeapp.yaml"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / app_file).write_text(_dump_documents([app]))
    body = convert.kustomization(placed, namespace, app_file)
    (directory / "kustomization.yaml").write_text(_dump_documents([body]))
    if "configurations" in body:
        config = _dump_documents([convert.kustomize_config()])
        (directory / convert.KUSTOMIZE_CONFIG).write_text(config)
    for found in placed.values():
        if found.config_map is None:
            continue
        target = directory / convert.KUSTOMIZE_FILES / found.path
        target.parent.mkdir(parents=True, exist_ok=True)
        content = found.content
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content)
    print(
        f"wrote {directory / 'kustomization.yaml'} (kubectl apply -k {directory})", file=sys.stderr
    )


def _command_webhook_config(args: argparse.Namespace) -> int:
    from compose_operator import admission

    if args.url:
        client = admission.url_client(args.url)
    else:
        where, _, port = args.service.rpartition(":")
        namespace, _, name = where.partition("/")
        if not (namespace and name and port.isdigit()):
            raise argparse.ArgumentTypeError(
                f"--service {args.service!r}: expected NAMESPACE/NAME:PORT"
            )
        client = admission.service_client(namespace, name, int(port))
    configuration = admission.build_configuration(client, name=args.name, namespaces=args.namespace)
    sys.stdout.write(_dump_documents([configuration]))
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

    def add_project_options(command: argparse.ArgumentParser) -> None:
        command.add_argument(
            "-f",
            "--file",
            required=True,
            help="Compose file (- for stdin); its project files "
            "are read from its folder, as docker compose reads them",
        )
        command.add_argument(
            "--env",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="a value for ${KEY} interpolation (repeatable)",
        )
        command.add_argument(
            "--env-file", action="append", default=[], type=Path, help="KEY=VALUE lines (.env)"
        )
        command.add_argument(
            "--image",
            action="append",
            default=[],
            metavar="SERVICE=IMAGE",
            help="the image of a service, e.g. one with only build: (repeatable)",
        )

    render_cmd = commands.add_parser("render", help="print every planned object as YAML")
    add_project_options(render_cmd)
    render_cmd.add_argument("--name", required=True, help="the ComposeApp name")
    render_cmd.add_argument("--namespace", default="default")
    render_cmd.add_argument("--config", type=Path, help="operator settings YAML")
    render_cmd.set_defaults(handler=_command_render)

    convert_cmd = commands.add_parser(
        "convert", help="print a ComposeApp carrying the Compose file and its project files"
    )
    add_project_options(convert_cmd)
    convert_cmd.add_argument("--name", required=True)
    convert_cmd.add_argument("--namespace")
    convert_cmd.add_argument(
        "--kustomize",
        type=Path,
        metavar="DIR",
        help="also write a kustomization of the app to DIR (large files by configMapGenerator)",
    )
    convert_cmd.set_defaults(handler=_command_convert)

    crd_cmd = commands.add_parser("crd", help="print the ComposeApp CustomResourceDefinition")
    crd_cmd.set_defaults(handler=_command_crd)

    webhook_cmd = commands.add_parser(
        "webhook-config",
        help="print the ValidatingWebhookConfiguration (the chart and manifests include it)",
    )
    target = webhook_cmd.add_mutually_exclusive_group(required=True)
    target.add_argument("--service", help="NAMESPACE/NAME:PORT of the webhook's Service")
    target.add_argument("--url", help="the operator's webhook base URL, e.g. https://host:9443")
    webhook_cmd.add_argument("--name", default="compose-operator")
    webhook_cmd.add_argument(
        "--namespace",
        action="append",
        default=[],
        help="only ComposeApps in this namespace (repeatable; default: all)",
    )
    webhook_cmd.set_defaults(handler=_command_webhook_config)

    pull_cmd = commands.add_parser("pull-model", help="fetch a model artifact from a registry")
    from compose_operator.puller import cli as puller_cli

    puller_cli.add_arguments(pull_cmd)
    pull_cmd.set_defaults(handler=_command_pull_model)

    # Listed for --help only: main() hands these commands their arguments before parsing.
    for name, summary in (
        ("run", "start the operator"),
        (
            "release-all",
            "remove the operator's finalizer from every ComposeApp (uninstalling with apps left)",
        ),
        ("gateway", "serve an app's model gateway (in its pods)"),
    ):
        passed_on = commands.add_parser(name, help=summary, add_help=False, prefix_chars="\0")
        passed_on.add_argument("arguments", nargs=argparse.REMAINDER)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["run"]:
        from compose_operator.shell import runner

        return runner.main(arguments[1:])
    if arguments[:1] == ["release-all"]:
        from compose_operator.shell import release

        return release.main(arguments[1:])
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
