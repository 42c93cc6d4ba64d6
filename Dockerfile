# syntax=docker/dockerfile:1
#
# The compose-operator image: the operator (`compose-operator run`, the default command) and
# the model-puller init container (`compose-operator pull-model REF --dest DIR`) in one image.
#
#   docker build -t ghcr.io/compose-operator/compose-operator:0.1.0 .
#
# Both base images are build arguments, so the image also builds where no remote registry is
# reachable. With podman, from a local Python 3.11 base (e.g. a debootstrapped bookworm with
# python3 and ca-certificates, `podman import`ed) and the uv executable itself (not a
# version-manager shim):
#
#   mkdir -p uv-image && cp /path/to/uv uv-image/uv
#   printf 'FROM scratch\nCOPY uv /uv\n' | podman build -t localhost/uv:local -f - uv-image
#   podman build --runtime runc --network host \
#     --build-arg BASE_IMAGE=localhost/python:3.11 --build-arg UV_IMAGE=localhost/uv:local \
#     -v /etc/ssl/certs:/build-ca:ro --build-arg SSL_CERT_FILE=/build-ca/ca-certificates.crt \
#     -t localhost/compose-operator:dev .
#
# (`--runtime runc`: crun cannot run RUN steps on a cgroup-v1 host; the CA mount only where
# the package index is reached through a TLS-inspecting proxy.)

ARG BASE_IMAGE=python:3.11-slim
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.9

FROM ${UV_IMAGE} AS uv

FROM ${BASE_IMAGE} AS build
COPY --from=uv /uv /usr/local/bin/uv
# Only for a package index behind a TLS-inspecting proxy: the path of a CA bundle mounted
# into the build. A build-stage argument never reaches the final image.
ARG SSL_CERT_FILE
# The virtual environment is built with the base image's own Python (never a downloaded
# one), so copying it into a fresh copy of the same base keeps every symlink valid.
ENV UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=python3.11 \
    UV_PROJECT_ENVIRONMENT=/opt/compose-operator \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1
WORKDIR /src
# Dependencies first, exactly as locked, so a source change does not reinstall them.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY operator ./operator
# --no-editable installs the project as a built wheel: the runtime image needs no /src.
RUN uv sync --frozen --no-dev --no-editable

FROM ${BASE_IMAGE}
LABEL org.opencontainers.image.title="compose-operator" \
      org.opencontainers.image.description="Run Compose applications with AI models on Kubernetes" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /opt/compose-operator /opt/compose-operator
# HOME points at /tmp because the root filesystem is read-only in the cluster and /tmp is
# the one writable emptyDir the manifests mount.
ENV PATH=/opt/compose-operator/bin:${PATH} \
    HOME=/tmp \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
# A fixed numeric UID/GID (distroless "nonroot"): runAsNonRoot can verify a number, not a name.
USER 65532:65532
WORKDIR /tmp
ENTRYPOINT ["compose-operator"]
CMD ["run"]
