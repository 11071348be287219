# The collector image, assembled by tools/build-image.sh (`make image`), the single source of the image: it
# stages the build context (the i2c layer per architecture, the collector layer) and makes the base. Only
# COPY here, so no step runs inside the target architecture and every platform builds without emulation.
#   make image                                  # Debian base from Debian's packages, no registry
#   make image BASE=python:3.11-slim-bookworm   # the usual base, for a user with a registry
# docs/kubernetes.md#get-the-image-onto-your-nodes says how to push the result or import it on k3s.

# The base: Python 3.11, bash, coreutils, tzdata (TZ=Asia/Shanghai means +08:00: without zoneinfo glibc
# silently falls back to UTC) and CA certificates.
ARG BASE=localhost/edge-metrics-collector-base:bookworm-amd64
FROM ${BASE}
# i2cget, i2cset, i2cdump, i2cdetect, i2ctransfer and libi2c0 for this architecture: what the scripts call.
ARG I2C=i2c/amd64
COPY ${I2C}/ /
# The wheel in /opt/edge-metrics, byte-compiled at build (a read-only root filesystem never sees a
# write), and /usr/local/bin/edge-metrics; the same layer for every architecture.
COPY app/ /
# Non-root by default. Reading /dev/i2c-* needs the device's group (or root); the DaemonSet sets the user
# it needs (docs/kubernetes.md#security).
USER 10001:10001
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    LANG=C.UTF-8 \
    EDGE_OUTPUT=/var/lib/node-exporter/textfile/custom_metrics.prom
ENTRYPOINT ["edge-metrics"]
CMD ["run"]
