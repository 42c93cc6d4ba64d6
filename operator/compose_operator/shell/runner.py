"""`compose-operator run`: settings, logging, metrics, health probes, then kopf standalone.

Settings are loaded and validated before anything connects to a cluster: a bad settings
file exits 2 with every located problem, like invalid Compose input on the CLI.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import logging
import os
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from compose_operator import admission
from compose_operator.errors import ComposeError
from compose_operator.settings import Settings, load_settings

DEFAULT_SETTINGS = Path("/etc/compose-operator/settings.yaml")
SETTINGS_ENV = "COMPOSE_OPERATOR_SETTINGS"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="compose-operator run", description="start the operator")
    parser.add_argument(
        "--settings",
        type=Path,
        help=f"operator settings YAML (default: ${SETTINGS_ENV}, else {DEFAULT_SETTINGS} "
        "if present, else built-in defaults)",
    )
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument(
        "--namespace", action="append", default=[], help="watch this namespace (repeatable)"
    )
    scope.add_argument(
        "--all-namespaces", action="store_true", help="watch every namespace (the default)"
    )
    parser.add_argument("--metrics-port", type=int, default=8080)
    parser.add_argument("--health-port", type=int, default=8081, help="/healthz and /readyz")
    parser.add_argument("--webhook-port", type=int, default=9443)
    parser.add_argument(
        "--webhook",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="serve the validating admission webhook and register its CA bundle in the "
        "ValidatingWebhookConfiguration the chart or manifests made",
    )
    parser.add_argument(
        "--webhook-configuration",
        default=admission.CONFIGURATION_NAME,
        help="the ValidatingWebhookConfiguration whose CA bundle the operator patches "
        f"(default: {admission.CONFIGURATION_NAME})",
    )
    parser.add_argument(
        "--webhook-host",
        default="127.0.0.1",
        help="DNS name or IP in the webhook certificate",
    )
    certificate = parser.add_mutually_exclusive_group()
    certificate.add_argument(
        "--webhook-cert-dir",
        type=Path,
        help="tls.crt, tls.key and ca.crt to serve the webhook with (several replicas share "
        "one certificate; the chart mounts its Secret here); default: a self-signed "
        "certificate made at start-up",
    )
    certificate.add_argument(
        "--webhook-cert-secret",
        type=namespaced_name,
        metavar="NAMESPACE/NAME",
        help="the Secret whose tls.crt, tls.key and ca.crt every replica serves the webhook "
        "with; an empty one is filled at start-up by the first replica (the kustomize "
        "manifests' way, where nothing else can make a certificate)",
    )
    parser.add_argument("--log-format", choices=("plain", "json"), default="plain")
    parser.add_argument("--resync-seconds", type=float, default=300.0)
    parser.add_argument(
        "--concurrency",
        type=int,
        default=8,
        help="apps reconciled in parallel, each with one API request in flight at most",
    )
    parser.add_argument(
        "--leader-election",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="reconcile only while holding the Lease (two replicas: one leads, one stands by)",
    )
    parser.add_argument(
        "--leader-election-id",
        default="compose-operator",
        help="name of the Lease (replicas of one install share it)",
    )
    parser.add_argument(
        "--leader-election-namespace",
        default=os.environ.get("POD_NAMESPACE", ""),
        help="namespace of the Lease (default: $POD_NAMESPACE)",
    )
    parser.add_argument("--verbose", action="store_true", help="debug logging")
    return parser


def namespaced_name(value: str) -> tuple[str, str]:
    namespace, _, name = value.partition("/")
    if not namespace or not name or "/" in name:
        raise argparse.ArgumentTypeError(f"expected NAMESPACE/NAME, got {value!r}")
    return namespace, name


def settings_path(flag: Path | None, environ: Mapping[str, str]) -> Path | None:
    """The flag, else the environment override, else the default file when it exists."""
    if flag is not None:
        return flag
    if environ.get(SETTINGS_ENV):
        return Path(environ[SETTINGS_ENV])
    return DEFAULT_SETTINGS if DEFAULT_SETTINGS.exists() else None


def read_settings(path: Path | None) -> Settings:
    if path is None:
        return Settings()
    return load_settings(path.read_text(encoding="utf-8"), file=str(path))


class AppField(logging.Filter):
    """Gives every record an `app` (`namespace/name`, or `-` for operator-wide lines)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "app", None):
            ref = getattr(record, "k8s_ref", None)
            if isinstance(ref, dict) and ref.get("name"):
                record.app = f"{ref.get('namespace') or '-'}/{ref['name']}"
            else:
                record.app = "-"
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "app": getattr(record, "app", "-"),
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line)


def setup_logging(log_format: str, *, verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(AppField())
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)-7s [%(app)s] %(name)s: %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for noisy in ("kubernetes", "urllib3", "aiohttp.access", "kopf.objects"):
        # kopf.objects says "Handler succeeded" for every watch event; our reconcile logs say more.
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbose else logging.WARNING)


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(list(argv))
    try:
        settings = read_settings(settings_path(args.settings, os.environ))
    except ComposeError as error:
        for message in error.messages:
            print(message, file=sys.stderr)
        return 2
    except OSError as error:
        print(f"{args.settings}: {error.strerror}", file=sys.stderr)
        return 2
    setup_logging(args.log_format, verbose=args.verbose)
    try:
        asyncio.run(serve(args, settings))
    except KeyboardInterrupt:
        return 0
    return 0


async def serve(args: argparse.Namespace, settings: Settings) -> None:
    """Run kopf, the health server, the metrics server and the leader election until kopf
    stops (SIGTERM, SIGINT, or a lost lead)."""
    import kopf
    from kubernetes import client, config

    from compose_operator.shell import handlers, health, webhook
    from compose_operator.shell.controller import Controller
    from compose_operator.shell.index import LiveIndex
    from compose_operator.shell.kube import ApiError, KubeApi
    from compose_operator.shell.leader import LeaderElector
    from compose_operator.shell.metrics import Metrics
    from compose_operator.shell.reconcile import Reconciler, real_core
    from compose_operator.shell.sharing import SharingIndex

    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    configuration = client.Configuration.get_default_copy()
    # One connection per reconcile thread, plus the leader election's.
    configuration.connection_pool_maxsize = args.concurrency + 2
    metrics = Metrics()
    metrics.serve(args.metrics_port)
    raw_api = KubeApi(client.ApiClient(configuration), on_request=metrics.count_request)
    core = real_core()
    index = LiveIndex()
    sharing = SharingIndex(core, settings) if settings.sharing.policy != "never" else None
    controller: Controller | None = None

    def allowed() -> bool:
        return controller is not None and controller.allowed()

    reconciler = Reconciler(raw_api.gated(allowed), settings, core=core, now=utc_now, index=index)
    controller = Controller(
        reconciler,
        metrics,
        resync_seconds=args.resync_seconds,
        sharing=sharing,
        index=index,
        workers=args.concurrency,
        leading=not args.leader_election,
    )
    registry = kopf.OperatorRegistry()
    handlers.register(
        registry,
        controller,
        validation=(core, settings) if args.webhook else None,
        # Selector offers need Namespace labels: a cluster-wide watch, granted only then.
        watch_namespaces=sharing is not None and not args.namespace,
        network_policies=settings.network_policies,
        # The webhook serves on every replica, the standby too: its reads are not gated.
        namespace_labels=Reconciler(
            raw_api, settings, core=core, now=utc_now, index=index
        ).namespace_labels,
    )
    operator_settings = kopf.OperatorSettings()
    operator_settings.posting.enabled = False
    operator_settings.watching.server_timeout = 300
    operator_settings.watching.client_timeout = 330
    handlers.label_selectors(operator_settings, network_policies=settings.network_policies)
    # With named namespaces kopf would list and watch every Namespace (a cluster-wide grant)
    # only to learn which of them exist; the names given are taken as they are instead.
    operator_settings.scanning.disabled = bool(args.namespace)
    stop = asyncio.Event()

    @kopf.on.cleanup(id="set-stop-flag", registry=registry)
    async def set_stop_flag(**_: Any) -> None:
        # kopf leaves its waiter on the stop flag running past a signal, then waits 5 s for
        # it as a "hung" task: set, it ends at once, and SIGTERM exits in well under a second.
        stop.set()

    elector_task: asyncio.Task[None] | None = None
    if args.leader_election:
        if not args.leader_election_namespace:
            raise SystemExit(
                "--leader-election needs --leader-election-namespace or $POD_NAMESPACE"
            )
        elector = LeaderElector(
            raw_api,
            args.leader_election_namespace,
            f"{os.environ.get('HOSTNAME') or 'compose-operator'}_{os.getpid()}",
            on_started_leading=controller.start_leading,
            on_stopped_leading=lambda: _lost_lead(controller, stop),
            name=args.leader_election_id,
        )
    with tempfile.TemporaryDirectory(prefix="compose-operator-webhook-") as certs:
        if args.webhook:
            cert_dir = args.webhook_cert_dir
            if args.webhook_cert_secret:
                secret_namespace, secret_name = args.webhook_cert_secret
                try:
                    shared = await asyncio.to_thread(
                        webhook.shared_certificate,
                        raw_api,
                        secret_namespace,
                        secret_name,
                        args.webhook_host,
                    )
                except (webhook.CertificateError, ApiError) as error:
                    raise SystemExit(
                        f"compose-operator run: webhook certificate: {error}"
                    ) from None
                webhook.write_files(shared, Path(certs))
                cert_dir = Path(certs)
            server = webhook.build_server(
                host=args.webhook_host,
                port=args.webhook_port,
                directory=Path(certs),
                cert_dir=cert_dir,
            )

            async def register(bundle: str) -> None:
                await asyncio.to_thread(
                    webhook.register_ca_bundle, raw_api, args.webhook_configuration, bundle
                )

            server.on_ca_bundle = register
            # kopf's managed configurations stay off (`admission.managed` unset): the chart
            # and manifests make the one configuration, the operator patches its CA bundle.
            operator_settings.admission.server = server
        ready = asyncio.Event()
        probes = await health.start(args.health_port, ready)
        if args.leader_election:
            elector_task = asyncio.create_task(_lead_when_ready(elector, ready))
        try:
            await kopf.operator(
                registry=registry,
                settings=operator_settings,
                standalone=True,
                clusterwide=not args.namespace,
                namespaces=args.namespace,
                ready_flag=ready,
                stop_flag=stop,
            )
        finally:
            if elector_task is not None:
                elector_task.cancel()
                await asyncio.gather(elector_task, return_exceptions=True)
            await probes.cleanup()


async def _lead_when_ready(elector: Any, ready: asyncio.Event) -> None:
    """Campaign once kopf is up: a leader must have its watches (and its index) running."""
    await ready.wait()
    await elector.run()


def _lost_lead(controller: Any, stop: asyncio.Event) -> None:
    """Stop writing at once; exit, to come back as a standby with fresh state."""
    controller.stop_leading()
    if not controller.stopping:
        stop.set()


def utc_now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
