# payscope-operator image: the wheel is built in one stage and installed into a slim
# Python 3.11 runtime with no compilers, running as the non-root user 65532.
#   docker build -t payscope-operator:0.1.0 .
# Kubernetes probes /healthz and /readyz (see the Helm chart); no Docker HEALTHCHECK.
#
# PYTHON_IMAGE is the official python:3.11-slim-bookworm. `make image` builds this same
# file offline with podman instead: a Debian bookworm python3.11 base bootstrapped by
# mmdebstrap, and PIP_OPTIONS pointing pip at a mounted wheelhouse (see README).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
# Extra pip options, e.g. "--no-index --find-links=/wheelhouse" for an offline build.
ARG PIP_OPTIONS=""
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator/ operator/
# hadolint ignore=SC2086
RUN python -m pip wheel --no-deps $PIP_OPTIONS --wheel-dir /wheels .

FROM ${PYTHON_IMAGE} AS runtime
ARG PIP_OPTIONS=""
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/payscope/bin:$PATH

SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN groupadd --system --gid 65532 payscope \
 && useradd --system --uid 65532 --gid 65532 --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin payscope

# Only the wheel crosses over from the build stage; its dependencies come as binary wheels
# (--only-binary) so that nothing is ever compiled here. Byte code is compiled at install
# time, because the root filesystem is read-only at run time.
COPY --from=build /wheels/ /tmp/wheels/
# hadolint ignore=SC2086
RUN python -m venv /opt/payscope \
 && /opt/payscope/bin/pip install --no-cache-dir --only-binary=:all: $PIP_OPTIONS /tmp/wheels/payscope_operator-*.whl \
 && rm -rf /tmp/wheels

# Labels last: a new revision changes only this metadata, not the cached layers above.
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="payscope-operator" \
      org.opencontainers.image.description="Kubernetes operator that provisions and audits PayScope's data layer." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="https://github.com/payscope/payscope-operator" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.vendor="PayScope"

USER 65532:65532
WORKDIR /tmp
EXPOSE 8080
ENTRYPOINT ["payscope-operator", "run"]
