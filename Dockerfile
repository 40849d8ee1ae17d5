# syntax=docker/dockerfile:1.7
# rolloutctl controller image: `rolloutctl run`, as the Helm chart's Deployment runs it.
#
#   docker build -t rolloutctl:0.1.0 --build-arg VERSION=0.1.0 \
#       --build-arg REVISION="$(git rev-parse HEAD)" .
#
# Stage 1 builds the rolloutctl wheel and the wheels of its dependencies; stage 2 installs
# only those wheels (no compiler, no source tree, no pip cache) and drops pip itself. The
# image runs as UID/GID 65532 with a read-only root filesystem: nothing is written at run
# time except under /tmp, where the chart mounts an emptyDir (HOME and TMPDIR point there).
#
# Supply chain: the base image is pinned by digest (the multi-architecture index of
# python:3.11.14-slim; the tag is only for the reader), and every file pip installs is
# checked against a hash in requirements.lock (runtime dependencies) or
# requirements-build.lock (setuptools and wheel, to build rolloutctl's own wheel), both
# generated from pyproject.toml by `scripts/lock` (uv pip compile --generate-hashes).
# To move the base image: `docker buildx imagetools inspect python:3.11-slim` and copy the
# index digest here.

ARG PYTHON_IMAGE=python:3.11.14-slim@sha256:c8271b1f627d0068857dce5b53e14a9558603b527e46f1f901722f935b786a39

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY requirements.lock requirements-build.lock pyproject.toml README.md ./
COPY controller ./controller
# the dependencies exactly as locked (hashes checked); rolloutctl's own wheel built with the
# locked setuptools and wheel, without fetching anything else
RUN pip wheel --no-cache-dir --require-hashes --no-deps --wheel-dir /wheels -r requirements.lock \
    && pip install --no-cache-dir --require-hashes -r requirements-build.lock \
    && pip wheel --no-cache-dir --no-build-isolation --no-deps --wheel-dir /wheels . \
    && cp requirements.lock /wheels/

FROM ${PYTHON_IMAGE}
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="rolloutctl" \
      org.opencontainers.image.description="Progressive-rollout controller for Kubernetes that releases by SLOs and error budgets" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/rolloutctl/rolloutctl" \
      org.opencontainers.image.base.name="docker.io/library/python:3.11.14-slim" \
      org.opencontainers.image.base.digest="sha256:c8271b1f627d0068857dce5b53e14a9558603b527e46f1f901722f935b786a39"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    HOME=/tmp \
    TMPDIR=/tmp \
    ROLLOUTCTL_METRICS_ADDRESS=0.0.0.0:8080
# The wheels are bind-mounted from the build stage, so no layer keeps them. The locked
# dependencies go in with their hashes checked, then rolloutctl itself without dependencies.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels --require-hashes \
        -r /wheels/requirements.lock \
    && pip install --no-cache-dir --no-index --find-links=/wheels --no-deps "rolloutctl==${VERSION}" \
    && pip uninstall --yes pip setuptools wheel \
    && rolloutctl --help > /dev/null
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["rolloutctl", "run"]
