# The Tutorial-App image a Golem node runs: one app server per container.
#
#   docker run --rm -v "$PWD/work:/golem/work" -p 50005:50005 \
#       tutorial-app:0.1.0 requestor 50005
#
# BASE_IMAGE must be a Debian-like image with python3 (>= 3.11) and python3-venv;
# offline CI passes the image scripts/docker-ci-base.sh imports. Plain syntax
# only, so the classic builder (DOCKER_BUILDKIT=0) accepts it.
#
# Who runs it: a Golem node passes its own numeric uid alone (`--user 1234`),
# so the app runs as a uid /etc/passwd does not know, with group 0. Nothing
# here depends on the uid: what the app needs at run time is group 0 with
# the owner's rights (g=u), HOME points there, and the venv is readable and
# executable by anyone. The node's work dir is bind-mounted at /golem/work
# and must be writable by the uid the container runs as.
# region: base-image
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS builder
# endregion: base-image
# scripts/docker-ci-base.sh tags this stage (the build cache of the
# dependencies) and prunes stale ones by this label, so no build leaves a
# dangling builder image behind.
LABEL org.golem.tutorial-app.stage=builder

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

# region: runtime-user
# uid 1000 is only the default for `docker run` without --user: its
# primary group is 0, the group every uid a node picks also runs with.
RUN useradd --uid 1000 --gid 0 --home-dir /golem --no-create-home \
        --shell /usr/sbin/nologin golem \
    && mkdir -p /golem/work /usr/local/share/tutorial-app \
    && chown -R 1000:0 /golem \
    && chmod -R g=u /golem
# endregion: runtime-user

COPY --from=builder /opt/venv /opt/venv

# region: health-probe
# HEALTHCHECK: ask the app server's gRPC health service for SERVING. The
# port is the command's argument, so it is read from PID 1's command line
# (the entrypoint, or compose's serve loop around it). Under mutual TLS only
# the node holds a client key: the check can then only see that the port
# accepts connections.
RUN printf '%s\n' \
    '"""Docker HEALTHCHECK of a Task API app server: exit 0 iff it is SERVING."""' \
    'import asyncio, pathlib, socket, sys' \
    'from grpclib.client import Channel' \
    'from grpclib.health.v1.health_grpc import HealthStub' \
    'from grpclib.health.v1.health_pb2 import HealthCheckRequest, HealthCheckResponse' \
    'argv = pathlib.Path("/proc/1/cmdline").read_bytes().decode().split("\0")' \
    'ports = [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg in ("requestor", "provider")]' \
    'if not ports or not ports[0].isdigit():' \
    '    sys.exit("healthcheck: PID 1 serves no app: " + " ".join(argv))' \
    'port = int(ports[0])' \
    'work = pathlib.Path(argv[argv.index("--work-dir") + 1] if "--work-dir" in argv[:-1] else "/golem/work")' \
    'tls = ("task_api_server_key.pem", "task_api_server_cert.pem", "task_api_client_cert.pem")' \
    'if all((work / name).is_file() for name in tls):' \
    '    socket.create_connection(("127.0.0.1", port), timeout=3).close()' \
    '    sys.exit(0)' \
    'async def serving() -> bool:' \
    '    channel = Channel("127.0.0.1", port)' \
    '    try:' \
    '        reply = await HealthStub(channel).Check(HealthCheckRequest(service=""), timeout=3)' \
    '    finally:' \
    '        channel.close()' \
    '    return reply.status == HealthCheckResponse.SERVING' \
    'sys.exit(0 if asyncio.run(serving()) else "healthcheck: not SERVING")' \
    > /usr/local/share/tutorial-app/healthcheck.py \
    && /opt/venv/bin/python -m py_compile /usr/local/share/tutorial-app/healthcheck.py \
    && rm -rf /usr/local/share/tutorial-app/__pycache__
# endregion: health-probe

# region: run-as-a-node
# The venv first on PATH, so the entrypoint's python3 is the venv's. HOME:
# an unknown uid gets "/" from Docker, which it cannot write.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HOME=/golem

USER 1000
WORKDIR /golem/work

# A check costs one short python process (about 0.1 s of CPU).
HEALTHCHECK --interval=10s --timeout=5s --start-period=5s --retries=3 \
    CMD ["/opt/venv/bin/python3", "/usr/local/share/tutorial-app/healthcheck.py"]

# python is PID 1: the app installs its own SIGTERM handler, so `docker stop`
# shuts the server down cleanly instead of waiting for SIGKILL.
STOPSIGNAL SIGTERM
ENTRYPOINT ["python3", "-m", "tutorial_app.entrypoint"]
CMD ["--help"]
# endregion: run-as-a-node
