"""Why a pull failed, one class per cause the user can act on.

Every message is one line that names the reference or the registry; `cli.main` prints it and
exits 1. None of them ever contains a credential.
"""

from __future__ import annotations


class PullError(Exception):
    """The model could not be pulled; the message says why in one line."""


class NotFound(PullError):
    """The registry does not know the repository, the tag, or a blob."""


class Unauthorized(PullError):
    """The registry refused us: no credentials, wrong credentials, or no access."""


class NotAModel(PullError):
    """The manifest is not a model artifact (a container image, an unknown artifact)."""


class DigestMismatch(PullError):
    """Bytes from the registry do not hash to the digest that names them."""


class RegistryUnreachable(PullError):
    """No connection to the registry (refused, unresolvable, timed out, TLS failure)."""


class UnsafePath(PullError):
    """A file name in the artifact would land outside the destination directory."""
