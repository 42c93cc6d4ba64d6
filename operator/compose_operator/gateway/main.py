"""`compose-operator gateway`: serve one app's routing table until SIGTERM, then drain.

A routing change rolls the gateway's pods. A stopping pod first fails /readyz while still
serving for `--endpoint-delay` seconds (Services drop it from their endpoints meanwhile), then
closes its listener and gives the requests it is serving up to `--drain-seconds` to finish:
a long generation in flight is not cut by a rollout.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from aiohttp import web

from compose_operator.gateway import routes
from compose_operator.gateway.server import Gateway

log = logging.getLogger("compose_operator.gateway")


def parser() -> argparse.ArgumentParser:
    command = argparse.ArgumentParser(
        prog="compose-operator gateway",
        description="Route OpenAI-style requests to an app's models by the body's `model`.",
    )
    command.add_argument("--routes", type=Path, required=True, help="the routing table (JSON)")
    command.add_argument("--host", default="0.0.0.0")
    command.add_argument("--port", type=int, default=8080)
    command.add_argument("--max-request-bytes", type=int, default=16 * 1024 * 1024)
    command.add_argument(
        "--upstream-timeout", type=float, default=600, help="seconds an engine may stay silent"
    )
    command.add_argument(
        "--endpoint-delay", type=float, default=5, help="seconds to keep serving after SIGTERM"
    )
    command.add_argument(
        "--drain-seconds", type=float, default=600, help="seconds in-flight requests may take"
    )
    command.add_argument("--log-format", choices=("json", "plain"), default="json")
    command.add_argument("--quiet", action="store_true", help="no line per request")
    return command


async def serve(gateway: Gateway, *, host: str, port: int, endpoint_delay: float,
                drain_seconds: float, stop: asyncio.Event) -> None:  # fmt: skip
    """Serve until `stop` is set; then fail readiness, wait, stop listening, and drain."""
    runner = web.AppRunner(
        gateway.application(),
        access_log=None,
        handler_cancellation=True,
        shutdown_timeout=drain_seconds,
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=1024, reuse_address=True)
    await site.start()
    log.info(
        "serving %d models of %s/%s on %s:%d",
        len(gateway.table.models), gateway.table.namespace, gateway.table.app, host, port,
    )  # fmt: skip
    await stop.wait()
    gateway.draining = True
    log.info("stopping: not ready; serving %.0f s more, then draining", endpoint_delay)
    await asyncio.sleep(endpoint_delay)
    await runner.cleanup()
    log.info("stopped")


def main(argv: Sequence[str]) -> int:
    args = parser().parse_args(argv)
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.WARNING if args.quiet else logging.INFO)
    log.propagate = False
    try:
        table = routes.parse(args.routes.read_text())
    except (OSError, routes.RoutesError) as error:
        print(f"compose-operator gateway: {args.routes}: {error}", file=sys.stderr)
        return 2
    gateway = Gateway(
        table,
        max_request_bytes=args.max_request_bytes,
        upstream_timeout=args.upstream_timeout,
        log_format=args.log_format,
    )

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await serve(
            gateway,
            host=args.host,
            port=args.port,
            endpoint_delay=args.endpoint_delay,
            drain_seconds=args.drain_seconds,
            stop=stop,
        )

    asyncio.run(run())
    return 0
