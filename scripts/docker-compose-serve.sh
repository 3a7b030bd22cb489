#!/bin/sh
# Serve Task API app server lives one after another inside one compose
# service container (docker-compose.yml mounts this script read-only).
#
#   sh docker-compose-serve.sh APP_COMMAND...
#   e.g. sh docker-compose-serve.sh python3 -m tutorial_app.entrypoint provider 50006
#
# Why: a provider app server ends after its one request, and a requestor
# after the node's Shutdown call, both with status 0. `docker-compose up
# --abort-on-container-exit` stops the whole stack as soon as any container
# ends, restart policy or not, so the service container has to outlive those
# lives.
#
# What it hides: nothing. Only a clean end (status 0) starts the next life.
# Any other status (a crash, a kill) ends the container with that same
# status: compose prints it and stops the run, and the node's exit code is
# then non-zero. Every life's end is logged. SIGTERM/SIGINT (docker stop,
# compose stopping the stack) go to the running life, and the container ends
# with that life's status.
set -u

[ "$#" -gt 0 ] || { echo "usage: $0 APP_COMMAND..." >&2; exit 2; }

child=
on_signal() {
    trap - TERM INT
    if [ -n "$child" ] && kill -TERM "$child" 2>/dev/null; then
        wait "$child"
        exit $?
    fi
    exit 0
}
trap on_signal TERM INT

lives=0
while :; do
    lives=$((lives + 1))
    "$@" &
    child=$!
    wait "$child"
    status=$?
    child=
    if [ "$status" -ne 0 ]; then
        echo "serve: life $lives of '$*' ended with status $status; ending the service" >&2
        exit "$status"
    fi
    echo "serve: life $lives of '$*' ended cleanly; starting the next" >&2
done
