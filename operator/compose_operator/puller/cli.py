"""`compose-operator pull-model REF --dest DIR`: the model pod's init container.

Exit codes: 0 pulled (or already present), 1 the pull failed (one line on stderr saying why),
2 usage (a malformed reference or option).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from compose_operator.puller.errors import PullError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
PROG = "compose-operator pull-model"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("reference", help="model reference, e.g. ai/smollm2 or host:5000/org/m:tag")
    parser.add_argument(
        "--dest", required=True, type=Path, help="directory to write the model files into"
    )
    parser.add_argument(
        "--insecure",
        action="store_true",
        help="use plain HTTP for this registry (always the case for localhost and 127.0.0.1)",
    )
    parser.add_argument(
        "--docker-config",
        type=Path,
        help="registry credentials: a Docker config.json, or a directory holding one (or a "
        "mounted pull Secret's .dockerconfigjson); default $DOCKER_CONFIG, then ~/.docker",
    )


def main(args: argparse.Namespace) -> int:
    from compose_operator.puller.pull import pull_model
    from compose_operator.references import parse_reference

    try:
        parse_reference(args.reference)
    except ValueError as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return EXIT_USAGE
    try:
        pull_model(
            args.reference,
            args.dest,
            insecure=args.insecure,
            docker_config=args.docker_config,
        )
    except PullError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return EXIT_FAILED
    except OSError as error:
        print(f"{PROG}: error: cannot write into {args.dest}: {error}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK
