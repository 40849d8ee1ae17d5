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

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY controller ./controller
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

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
      org.opencontainers.image.base.name="docker.io/library/python:3.11-slim"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    HOME=/tmp \
    TMPDIR=/tmp \
    ROLLOUTCTL_METRICS_ADDRESS=0.0.0.0:8080
# The wheels are bind-mounted from the build stage, so no layer keeps them.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels "rolloutctl==${VERSION}" \
    && pip uninstall --yes pip setuptools wheel \
    && rolloutctl --help > /dev/null
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["rolloutctl", "run"]
