#!/usr/bin/env bash
# Runs the whole test suite: installs what the tests need beyond cargo when it is missing
# (under CI=true a missing tool is installed or the run fails; nothing is skipped silently),
# then runs every unit and integration test.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_updated=
need_apt() { # need_apt COMMAND PACKAGE: install PACKAGE if COMMAND is missing
    command -v "$1" >/dev/null 2>&1 && return
    echo "test.sh: installing $2 (for $1)"
    if [[ -z $apt_updated ]]; then apt-get update -qq; apt_updated=1; fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
}

need_apt python3 python3
need_apt tmux tmux

cargo test --locked --all-targets "$@"
