"""Pull (and push) Docker model artifacts over the OCI distribution API, standard library only.

`pull_model` is what the model pod's init container runs (`compose-operator pull-model`);
`push.push_model` publishes an artifact, for tests and demos against a local registry.
"""

from compose_operator.puller.cli import add_arguments, main
from compose_operator.puller.errors import PullError
from compose_operator.puller.layers import PulledFile
from compose_operator.puller.pull import PullResult, pull_model

__all__ = ["PullError", "PullResult", "PulledFile", "add_arguments", "main", "pull_model"]
