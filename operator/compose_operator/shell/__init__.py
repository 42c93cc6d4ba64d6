"""The operator's shell: kopf handlers, API calls, status, webhook and metrics."""
