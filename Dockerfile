# syntax=docker/dockerfile:1
# The metric-sidecar image: slim Python, bash, i2c-tools, this package, `edge-metrics` as entrypoint.
# Multi-arch (the edge boards are arm64, CI and laptops amd64):
#   docker buildx build --platform linux/arm64,linux/amd64 -t <registry>/edge-metrics-collector:0.1.0 --push .
# tests/k8s/test_image.py replays these steps without a Docker engine (wheel build, clean install,
# image layout versus the paths the manifests mount); docs/kubernetes.md says what it cannot check.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# Build stage: the wheel is pure Python, so it is built once on the build host's platform.
FROM --platform=$BUILDPLATFORM ${PYTHON_IMAGE} AS wheel
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
# src/edge_metrics/bundled is a symlink to ../../scripts: the example config ships in the package.
COPY scripts ./scripts
# The simulator's C sources ship in the wheel (pyproject.toml force-include) for `edge-metrics simulate`.
COPY sim ./sim
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM ${PYTHON_IMAGE}
# bash runs the collector scripts, i2c-tools gives them i2cget/i2cset, tzdata makes TZ=Asia/Shanghai
# mean +08:00 (without zoneinfo glibc silently falls back to UTC).
RUN apt-get update \
 && apt-get install -y --no-install-recommends bash i2c-tools tzdata \
 && rm -rf /var/lib/apt/lists/*
COPY --from=wheel /wheels /wheels
# No runtime dependencies: the wheel is the whole install. Byte-compiled here, so a read-only root
# filesystem never sees a write.
RUN pip install --no-cache-dir --compile /wheels/*.whl && rm -rf /wheels \
 && useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin edge \
 && mkdir -p /etc/edge-metrics /var/lib/node-exporter/textfile /var/lib/edge-metrics/spool \
 && chown edge:edge /var/lib/node-exporter/textfile /var/lib/edge-metrics/spool
# Non-root by default. Reading /dev/i2c-* needs the device's group (or root); the DaemonSet sets
# the user it needs (docs/kubernetes.md#security).
USER 10001
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    EDGE_OUTPUT=/var/lib/node-exporter/textfile/custom_metrics.prom
ENTRYPOINT ["edge-metrics"]
CMD ["run"]
