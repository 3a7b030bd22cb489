# The Tutorial-App image a Golem node runs: one app server per container.
#
#   docker run --rm -v "$PWD/work:/golem/work" -p 50005:50005 \
#       tutorial-app:0.1.0 requestor 50005
#
# BASE_IMAGE must be a Debian-like image with python3 (>= 3.11) and python3-venv;
# offline CI passes the image scripts/docker-ci-base.sh imports. Plain syntax
# only, so the classic builder (DOCKER_BUILDKIT=0) accepts it.
# The work dir belongs to uid 1000: a bind-mounted host dir must be writable by it.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS builder

# The system bundle, not pip's vendored one: where HTTPS is intercepted the
# base image carries the intercepting CA there.
ARG PIP_CERT=/etc/ssl/certs/ca-certificates.crt
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore

# A C compiler and Python's headers for engine._native, only where the base
# lacks them (python:*-slim ships the headers, Debian's python3 does not).
RUN set -eu; \
    need=""; \
    command -v gcc >/dev/null 2>&1 || need="gcc libc6-dev"; \
    python3 -c 'import os, sys, sysconfig; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
        || need="$need python3-dev"; \
    if [ -n "$need" ]; then \
        apt-get update -qq; \
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need >/dev/null; \
        rm -rf /var/lib/apt/lists/*; \
    fi

# Dependencies first, read from pyproject.toml, so a source change reuses this layer.
WORKDIR /src
COPY pyproject.toml ./
RUN python3 -m venv /opt/venv \
    && /opt/venv/bin/python -c 'import tomllib; p = tomllib.load(open("pyproject.toml", "rb")); print("\n".join(p["build-system"]["requires"] + p["project"]["dependencies"]))' > /tmp/requirements.txt \
    && /opt/venv/bin/pip install -q -r /tmp/requirements.txt

COPY . ./
# Non-editable install of the project alone, then drop the build-only tools.
# The extension is optional in setup.py: fail here rather than ship without it.
RUN /opt/venv/bin/pip install -q --no-deps --no-build-isolation . \
    && /opt/venv/bin/pip uninstall -q -y setuptools wheel \
    && /opt/venv/bin/pip check \
    && cd / \
    && if [ -f /src/engine/_native.c ]; then /opt/venv/bin/python -c 'import engine._native'; fi \
    && /opt/venv/bin/python -c 'import tutorial_app.entrypoint'


FROM ${BASE_IMAGE}

LABEL org.opencontainers.image.title="tutorial-app" \
      org.opencontainers.image.description="Golem Task API proof-of-work app server" \
      org.opencontainers.image.licenses="GPL-3.0-or-later"

RUN useradd --uid 1000 --user-group --home-dir /golem --no-create-home \
        --shell /usr/sbin/nologin golem \
    && mkdir -p /golem/work \
    && chown -R golem:golem /golem

COPY --from=builder /opt/venv /opt/venv

# The venv first on PATH, so the entrypoint's python3 is the venv's.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1

USER golem
WORKDIR /golem/work

# python is PID 1: the app installs its own SIGTERM handler, so `docker stop`
# shuts the server down cleanly instead of waiting for SIGKILL.
STOPSIGNAL SIGTERM
ENTRYPOINT ["python3", "-m", "tutorial_app.entrypoint"]
CMD ["--help"]
