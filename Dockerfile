# syntax=docker/dockerfile:1
# One image for all five Tradewind services; the command picks the service:
#   docker run IMAGE service ws|signal|risk|execution|db_writer
#   docker run IMAGE migrate
#   docker run IMAGE fake-exchange --host 0.0.0.0 --port 9443
# Runs as uid/gid 10001 and writes only to /tmp (mount a tmpfs there), so it
# works with a read-only root filesystem. No secrets are baked in: they come
# from files (/run/secrets, TRADEWIND_*_FILE) at run time.
#
# The base is a build argument whose default is the official Python image named
# in deploy/images.env (scripts/sync_images.py keeps the two equal; add
# `@sha256:...` there to pin it by digest). CI passes a Debian-built base
# (--build-arg PYTHON_BASE=..., .ci/container_checks.sh). Rebuild when the base
# image or requirements.lock changes (docs/deploy.md, "Updating images").
ARG PYTHON_BASE=python:3.11.16-slim-bookworm

# --- build: a virtualenv with the locked, hash-checked dependencies --------------
# checkov cannot resolve an ARG in FROM; the ARG default above is an exact tag,
# held equal to deploy/images.env by `scripts/sync_images.py --check`.
# checkov:skip=CKV_DOCKER_7:base is ARG PYTHON_BASE, an exact tag checked against deploy/images.env
FROM ${PYTHON_BASE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python3 -m venv /opt/venv
COPY requirements.lock ./
# Every distribution, build backends included, must match a hash in the lock.
RUN /opt/venv/bin/pip install --no-cache-dir --require-hashes --no-deps -r requirements.lock
COPY pyproject.toml README.md ./
COPY src ./src
# The project itself: no index, no build isolation (setuptools and wheel come
# from the lock above), then drop the packaging tools from the runtime venv.
RUN /opt/venv/bin/pip install --no-cache-dir --no-deps --no-index --no-build-isolation . \
 && /opt/venv/bin/python -m compileall -q /opt/venv/lib \
 && /opt/venv/bin/pip uninstall --yes setuptools wheel pip

# --- runtime -----------------------------------------------------------------------
FROM ${PYTHON_BASE} AS runtime
ARG PYTHON_BASE
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="tradewind" \
      org.opencontainers.image.description="Tradewind: event-driven crypto trading services (ws, signal, risk, execution, db_writer)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.vendor="Tradewind" \
      org.opencontainers.image.documentation="docs/deploy.md" \
      org.opencontainers.image.base.name="${PYTHON_BASE}"

RUN groupadd --system --gid 10001 tradewind \
 && useradd --system --uid 10001 --gid 10001 --no-create-home \
            --home-dir /nonexistent --shell /usr/sbin/nologin tradewind

COPY --from=build /opt/venv /opt/venv

ENV PATH="/opt/venv/bin:${PATH}" \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    TMPDIR=/tmp \
    TRADEWIND_HTTP__HOST=0.0.0.0 \
    TRADEWIND_HTTP__PORT=8080

WORKDIR /tmp
USER 10001:10001
EXPOSE 8080

# Liveness of whichever service runs, on its own port; python only, no curl.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os,sys,urllib.request as u; p=os.environ.get('TRADEWIND_HTTP__PORT','8080'); sys.exit(0 if u.urlopen('http://127.0.0.1:%s/livez' % p, timeout=3).status == 200 else 1)"]

STOPSIGNAL SIGTERM
ENTRYPOINT ["tradewind"]
CMD ["--help"]
