#!/usr/bin/env bash
# Build the project's Docker image on a machine that reaches only a Debian
# mirror and PyPI (no container registry): CI and developers share this.
#
#   scripts/docker-ci-base.sh [--rebuild-base] [--base-only]
#
# Idempotent. Steps, each skipped when already done:
#   1. install docker.io, docker-compose and debootstrap (apt) if missing;
#   2. start dockerd in the background if no daemon answers (left running);
#   3. debootstrap a minimal Debian from the mirror in this machine's apt
#      sources, add python3 + venv and this machine's CA bundle, and
#      `docker import` it as the base image;
#   4. build the Dockerfile on that base, tagged tutorial-app:VERSION and :latest.
#      Its builder stage is tagged tutorial-app-builder:cache (the build cache
#      of the dependencies, so rebuilds are quick); a builder image replaced
#      or app image replaced by a rebuild is removed (unless a container uses
#      it), so no build leaves a dangling image behind.
#
# Must run as root. Environment knobs:
#   RELEASE            Debian release to bootstrap (default: bookworm)
#   BASE_IMAGE         base image tag (default: tutorial-app-base:$RELEASE)
#   DOCKERD_LOG        dockerd's log file (default: /var/log/tutorial-app-dockerd.log)
#   DOCKERD_TIMEOUT    seconds to wait for a started dockerd (default: 60)
#   DEBOOTSTRAP_CACHE  .deb cache reused across runs (default: /var/cache/tutorial-app/debootstrap)
#   HOST_CA_BUNDLE     CA bundle copied into the base (default: /etc/ssl/certs/ca-certificates.crt)
#   KEEP_BUILDER       0: remove the builder stage after the build too (saves
#                      about 0.5 GB; the next build reinstalls the dependencies)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RELEASE=${RELEASE:-bookworm}
BASE_IMAGE=${BASE_IMAGE:-tutorial-app-base:$RELEASE}
IMAGE_NAME=tutorial-app
BUILDER_IMAGE=$IMAGE_NAME-builder:cache
# The label the Dockerfile's builder stage carries.
BUILDER_LABEL=org.golem.tutorial-app.stage=builder
# The label of the app image itself (the Dockerfile's final stage).
APP_LABEL=org.opencontainers.image.title=tutorial-app
KEEP_BUILDER=${KEEP_BUILDER:-1}
DOCKERD_LOG=${DOCKERD_LOG:-/var/log/tutorial-app-dockerd.log}
DOCKERD_TIMEOUT=${DOCKERD_TIMEOUT:-60}
DEBOOTSTRAP_CACHE=${DEBOOTSTRAP_CACHE:-/var/cache/tutorial-app/debootstrap}
HOST_CA_BUNDLE=${HOST_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
# Packages of the base image; the Dockerfile's builder stage adds the compiler.
BASE_PACKAGES=python3,python3-venv,ca-certificates

# The classic builder: BuildKit's buildx plugin is not part of Debian's docker.io.
export DOCKER_BUILDKIT=0

rebuild_base=0
base_only=0
for arg in "$@"; do
    case $arg in
        --rebuild-base) rebuild_base=1 ;;
        --base-only) base_only=1 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $arg (try --help)" >&2; exit 2 ;;
    esac
done

START=$(date +%s.%N)
STEP_START=$START

log() { printf '[docker-ci-base] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
step_done() { log "$1 done in $(elapsed "$STEP_START") s"; STEP_START=$(date +%s.%N); }

[[ $(id -u) -eq 0 ]] || die "must run as root (apt-get, dockerd and debootstrap need it)"

ensure_tools() {
    local missing=()
    command -v docker >/dev/null || missing+=(docker.io)
    command -v dockerd >/dev/null || missing+=(docker.io)
    command -v docker-compose >/dev/null || missing+=(docker-compose)
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    if ((${#missing[@]})); then
        log "installing ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            $(printf '%s\n' "${missing[@]}" | sort -u) >/dev/null
    fi
}

daemon_answers() { docker info >/dev/null 2>&1; }

# Start dockerd detached (own session, survives this script) and wait for it.
start_dockerd() {
    log "starting dockerd $* (log: $DOCKERD_LOG)"
    mkdir -p "$(dirname "$DOCKERD_LOG")"
    setsid dockerd "$@" >>"$DOCKERD_LOG" 2>&1 </dev/null &
    local pid=$! waited=0
    until daemon_answers; do
        if ! kill -0 "$pid" 2>/dev/null; then
            log "dockerd exited; last log lines:"; tail -n 15 "$DOCKERD_LOG" >&2
            return 1
        fi
        if ((waited >= DOCKERD_TIMEOUT * 5)); then
            log "dockerd did not answer within ${DOCKERD_TIMEOUT}s; stopping it"
            kill "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
            return 1
        fi
        sleep 0.2
        waited=$((waited + 1))
    done
    log "dockerd running, pid $pid"
}

ensure_daemon() {
    if daemon_answers; then
        log "a Docker daemon already answers"
        return
    fi
    # overlay2 first; vfs (slow, but needs nothing from the kernel) if it fails.
    start_dockerd || start_dockerd --storage-driver=vfs || die "could not start dockerd"
}

# The first mirror URI for $RELEASE in this machine's apt sources (deb822
# *.sources files and one-line lists alike); never hard-coded.
host_mirror() {
    local files=() f
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        [[ -f $f ]] && files+=("$f")
    done
    ((${#files[@]})) || return 1
    awk -v rel="$RELEASE" '
        function flush() {
            if (uris != "" && enabled && debtype && (" " suites " ") ~ (" " rel " ")) {
                split(uris, u, " "); print u[1]; found = 1; exit
            }
            uris = ""; suites = ""; enabled = 1; debtype = 0
        }
        FNR == 1 { flush() }
        /^[[:space:]]*$/ { flush(); next }
        /^[[:space:]]*#/ { next }
        /^deb[[:space:]]/ {
            # one-line format: deb [options] URI SUITE COMPONENTS...
            line = $0; sub(/\[[^]]*\]/, "", line); split(line, f, /[[:space:]]+/)
            if (f[3] == rel) { print f[2]; found = 1; exit }
            next
        }
        tolower($1) == "types:" { debtype = ($0 ~ /[[:space:]]deb([[:space:]]|$)/) }
        tolower($1) == "uris:" { $1 = ""; uris = $0 }
        tolower($1) == "suites:" { $1 = ""; suites = $0 }
        tolower($1) == "enabled:" { enabled = (tolower($2) != "no") }
        END { if (!found) flush() }
    ' "${files[@]}"
}

ensure_base_image() {
    if ((!rebuild_base)) && docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
        log "base image $BASE_IMAGE exists (--rebuild-base to rebuild)"
        return
    fi
    local mirror
    mirror=$(host_mirror) || true
    [[ -n $mirror ]] || die "no apt source for '$RELEASE' found under /etc/apt"
    [[ -r $HOST_CA_BUNDLE ]] || die "CA bundle $HOST_CA_BUNDLE not readable"
    log "bootstrapping $RELEASE from $mirror"

    ROOTFS=$(mktemp -d /var/tmp/tutorial-app-rootfs.XXXXXX)
    [[ $ROOTFS == /var/tmp/tutorial-app-rootfs.?* ]] || die "mktemp gave '$ROOTFS'"
    trap cleanup_rootfs EXIT
    mkdir -p "$DEBOOTSTRAP_CACHE"
    local dblog="$ROOTFS.log"
    if ! debootstrap --variant=minbase --include="$BASE_PACKAGES" \
            --cache-dir="$DEBOOTSTRAP_CACHE" "$RELEASE" "$ROOTFS" "$mirror" >"$dblog" 2>&1; then
        tail -n 20 "$dblog" >&2
        die "debootstrap failed (full log: $dblog)"
    fi
    rm -f "$dblog"

    # The whole host bundle: it holds the CA of the proxy that intercepts
    # HTTPS from containers. The copy under /usr/local/share survives a later
    # update-ca-certificates run inside the image.
    install -m 0644 "$HOST_CA_BUNDLE" "$ROOTFS/etc/ssl/certs/ca-certificates.crt"
    install -D -m 0644 "$HOST_CA_BUNDLE" "$ROOTFS/usr/local/share/ca-certificates/host-ca-bundle.crt"
    # Docker provides these at run time; keep the host's out of the image.
    : >"$ROOTFS/etc/resolv.conf"
    : >"$ROOTFS/etc/hostname"
    # Translations, manuals and docs are dead weight in a server image; the
    # dpkg excludes keep later apt-get installs in derived images lean too.
    printf '%s\n' 'path-exclude=/usr/share/locale/*' 'path-exclude=/usr/share/man/*' \
        'path-exclude=/usr/share/info/*' 'path-exclude=/usr/share/doc/*' \
        'path-include=/usr/share/doc/*/copyright' \
        >"$ROOTFS/etc/dpkg/dpkg.cfg.d/tutorial-app-excludes"
    rm -rf "$ROOTFS"/usr/share/locale/* \
        "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/cache/apt/*.bin \
        "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/log/* "$ROOTFS"/tmp/* \
        "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/info/*
    find "$ROOTFS/usr/share/doc" -type f ! -name copyright -delete
    # Without PATH in the image config, a Dockerfile's ENV PATH=...:$PATH
    # would expand $PATH to nothing.
    tar -C "$ROOTFS" --numeric-owner -c . | docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change 'CMD ["/bin/bash"]' \
        --message "debootstrap --variant=minbase $RELEASE + $BASE_PACKAGES + host CA bundle" \
        - "$BASE_IMAGE" >/dev/null
    cleanup_rootfs
    trap - EXIT
    log "imported $BASE_IMAGE"
}

ROOTFS=
cleanup_rootfs() {
    [[ -n $ROOTFS && -d $ROOTFS ]] || return 0
    # A failed debootstrap can leave /proc or /sys mounted inside the tree.
    awk -v r="$ROOTFS/" 'index($2, r) == 1 { print $2 }' /proc/mounts | sort -r |
        while read -r m; do umount -l "$m" || true; done
    rm -rf --one-file-system "$ROOTFS"
    ROOTFS=
}

project_version() {
    sed -n 's/^version[[:space:]]*=[[:space:]]*"\([^"]*\)".*/\1/p' "$ROOT/pyproject.toml" | head -n 1
}

build_image() {
    local version
    version=$(project_version)
    [[ -n $version ]] || die "no version in pyproject.toml"
    log "building $IMAGE_NAME:$version on $BASE_IMAGE"
    # The classic builder leaves a multi-stage build's builder stage as an
    # untagged (dangling) image. Built first under its own tag, the full
    # build reuses it from the cache and nothing is left untagged.
    docker build --build-arg BASE_IMAGE="$BASE_IMAGE" --target builder \
        -t "$BUILDER_IMAGE" "$ROOT"
    docker build --build-arg BASE_IMAGE="$BASE_IMAGE" \
        -t "$IMAGE_NAME:$version" -t "$IMAGE_NAME:latest" "$ROOT"
    if [[ $KEEP_BUILDER == 0 ]]; then
        docker image rm "$BUILDER_IMAGE" >/dev/null
    fi
    # Images the tags moved away from are dangling now: remove those of this
    # project (builder or app) that no container uses, and nothing else.
    local label dangling
    for label in "$BUILDER_LABEL" "$APP_LABEL"; do
        docker image prune --force --filter "label=$label" >/dev/null
    done
    dangling=$(docker image ls --quiet --filter dangling=true --filter "label=$BUILDER_LABEL")
    [[ -z $dangling ]] || die "dangling builder images left: $dangling"
}

ensure_tools;       step_done "tools"
ensure_daemon;      step_done "daemon"
ensure_base_image;  step_done "base image"
if ((!base_only)); then
    build_image;    step_done "project image"
fi
docker image ls --format '{{.Repository}}:{{.Tag}}\t{{.Size}}' | grep -E "^($IMAGE_NAME|$IMAGE_NAME-builder|${BASE_IMAGE%%:*}):" >&2 || true
log "total $(elapsed "$START") s"
