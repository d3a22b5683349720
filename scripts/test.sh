#!/usr/bin/env bash
# Runs the whole test suite: installs what the tests need beyond cargo when it is missing
# (under CI=true a missing tool is installed or the run fails; nothing is skipped silently),
# then runs every unit, integration and documentation test (`--all-targets` leaves out the
# examples in doc comments, so they run second, with `--doc`), the soak test (tests/soak.rs,
# CHARLA_SOAK_SECS) among them, the browser tests (tests/browser, headless Chromium), and then
# each fuzz target for a while (scripts/fuzz.sh, CHARLA_FUZZ_SECS seconds each, 30 by
# default). Arguments go to `cargo test` and then choose what runs instead:
# `scripts/test.sh --test irc_clients`, `scripts/test.sh --lib -- --nocapture`,
# `scripts/test.sh --doc`.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_updated=
apt_install() { # apt_install PACKAGE...
    if [[ -z $apt_updated ]]; then apt-get update -qq; apt_updated=1; fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

need_apt() { # need_apt COMMAND PACKAGE...: install the Debian PACKAGEs if COMMAND is missing
    command -v "$1" >/dev/null 2>&1 && return
    echo "test.sh: installing ${*:2} (for $1)"
    apt_install "${@:2}"
}

need_pip() { # need_pip MODULE PACKAGE: install the PyPI PACKAGE if python3 cannot import MODULE
    python3 -c "import $1" >/dev/null 2>&1 && return
    echo "test.sh: installing $2 from PyPI (for python3's $1)"
    python3 -m pip --version >/dev/null 2>&1 || apt_install python3-pip
    # Debian's python3 is "externally managed" (PEP 668): pip refuses to install unless told it
    # may, and then installs under /usr/local, apart from Debian's own Python packages.
    PIP_BREAK_SYSTEM_PACKAGES=1 PIP_ROOT_USER_ACTION=ignore python3 -m pip install --quiet "$2"
    python3 -c "import $1"
}

need_apt python3 python3
need_pip irc.client irc            # tests/irc_lib_client.py
need_apt tmux tmux                 # irssi runs in a tmux terminal
need_apt irssi irssi
need_apt weechat-headless weechat-headless weechat-plugins
need_apt nc netcat-openbsd         # the browser tests' plain-text user
need_apt chromium chromium         # the browser tests (headless)
need_apt node nodejs
need_apt npm npm
# A private PostgreSQL per test binary (tests/common/postgres.rs runs initdb and postgres from
# /usr/lib/postgresql/*/bin, which are not on the PATH) and NATS for the cluster tests.
if ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then
    echo "test.sh: installing postgresql (for tests/common/postgres.rs)"
    apt_install postgresql
fi
need_apt nats-server nats-server
# The screenshots show emoji as people see them.
[[ -e /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf ]] || apt_install fonts-noto-color-emoji
if [[ ! -d tests/browser/node_modules/playwright-core ]]; then
    echo "test.sh: installing playwright-core from npm (for tests/browser)"
    npm ci --prefix tests/browser --no-audit --no-fund --silent
fi

# A CI machine builds once from a clean clone on a small disk: incremental build files (about
# 1 GB) and full debug info (about half of the 3 GB of test binaries) only cost space there;
# line numbers stay in backtraces. (Locally these would rebuild everything that `cargo test`
# built, so they are for CI only.)
if [[ ${CI:-} == true ]]; then
    export CARGO_INCREMENTAL=0 CARGO_PROFILE_DEV_DEBUG=line-tables-only
fi

if [[ $# -gt 0 ]]; then
    cargo test --locked "$@"
else
    cargo test --locked --all-targets
    cargo test --locked --doc
    # The browser tests drive target/debug/charla, which cargo test has just built.
    npm test --prefix tests/browser --silent
    # Every fuzz target for CHARLA_FUZZ_SECS seconds (30 by default); 0 leaves fuzzing out.
    fuzz_secs=${CHARLA_FUZZ_SECS:-30}
    if [[ $fuzz_secs == 0 ]]; then
        echo "test.sh: fuzzing left out (CHARLA_FUZZ_SECS=0)"
    else
        scripts/fuzz.sh all "$fuzz_secs"
    fi
fi
