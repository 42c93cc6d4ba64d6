"""The model gateway (`compose-operator gateway`): one OpenAI-compatible endpoint per app.

It routes each request to the Service of the model its JSON body names, as Docker Model
Runner's single endpoint does, so every `*_URL` of an app can be one URL. The routing table
is a file the operator renders (`render/gateway.py`) into a ConfigMap; this package reads it
and serves. It imports nothing of the operator's shell (kopf, the Kubernetes client).

Modules: `routes` (the table and its lookups, pure), `server` (the aiohttp app), `main` (the
command line, signals and the graceful drain).
"""
