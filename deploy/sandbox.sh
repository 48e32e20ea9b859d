#!/usr/bin/env bash
# Try the S3 feed locally with one command: no OpenWhisk, no Docker; everything on 127.0.0.1.
#
# Purpose: builds the action binaries and the sandbox with cargo, then runs the sandbox: it
# starts the OpenWhisk emulator and a local S3 server (moto, verifying SigV4 signatures),
# deploys the owfeed package as manifest.yaml describes it, creates a bucket, a trigger with
# --feed owfeed/changes and a rule to an echo action, creates, changes and deletes a few
# objects, and prints the CloudEvents the echo action received with a summary.
#
# Prerequisites: cargo, and moto_server on PATH; when it is missing this script installs it
# with `python3 -m pip install 'moto[server]'` (the only step that needs the network).
#
# Usage: deploy/sandbox.sh [--release] [--keep [--realtime]] [--help]
#   --release   build and run the release binaries (default: debug)
#   --keep      leave the emulator and S3 running and print how to use them (Ctrl-C stops)
#   --realtime  with --keep: fire the feed's alarm by the clock, not only on request
#   --help      print this help and exit
set -eu

usage() {
    sed -n '2,/^set -eu$/p' "$0" | sed -e '/^set -eu$/d' -e 's/^# \{0,1\}//'
}

fail() {
    echo "sandbox.sh: $*" >&2
    exit 1
}

root=$(cd "$(dirname "$0")/.." && pwd)
profile=debug
cargo_profile=()
sandbox_args=()
for arg in "$@"; do
    case "$arg" in
        --release)
            profile=release
            cargo_profile=(--release)
            ;;
        --keep | --realtime) sandbox_args+=("$arg") ;;
        -h | --help)
            usage
            exit 0
            ;;
        *) fail "unknown option '$arg' (see --help)" ;;
    esac
done

command -v cargo >/dev/null || fail "cargo is required (https://rustup.rs)"

if ! command -v moto_server >/dev/null; then
    command -v python3 >/dev/null || fail "moto_server is missing and python3 is not there to install it"
    # Inside a virtualenv pip installs into it; elsewhere into the user's site (no root needed).
    pip_scope=(--user)
    if [ -n "${VIRTUAL_ENV:-}" ]; then
        pip_scope=()
    fi
    echo "sandbox.sh: moto_server not found; installing it: python3 -m pip install ${pip_scope[*]:-} 'moto[server]'"
    python3 -m pip install --quiet ${pip_scope[@]+"${pip_scope[@]}"} 'moto[server]' ||
        fail "pip could not install moto[server]; install it yourself and rerun"
    # pip puts moto_server in the scripts directory of the install scheme it used.
    scripts=$(python3 -c 'import os, sysconfig; print(sysconfig.get_path("scripts") + os.pathsep + sysconfig.get_path("scripts", os.name + "_user"))')
    PATH="$scripts:$PATH"
    export PATH
    hash -r
    command -v moto_server >/dev/null || fail "moto[server] is installed but moto_server is not on PATH"
fi

# Every crate under actions/ is an action of manifest.yaml (tests/suite/shipping.rs checks it).
packages=()
for manifest in "$root"/actions/*/Cargo.toml; do
    [ -f "$manifest" ] && packages+=(-p "$(basename "$(dirname "$manifest")")")
done
[ ${#packages[@]} -gt 0 ] || fail "no action crates found under $root/actions"

echo "sandbox.sh: building the actions and the sandbox ($profile)"
# --bins of feed-tests: the sandbox and the echo-action it deploys (and a few small fixtures).
(cd "$root" && cargo build --quiet ${cargo_profile[@]+"${cargo_profile[@]}"} --bins "${packages[@]}" -p feed-tests)

target_dir=${CARGO_TARGET_DIR:-$root/target}
exec "$target_dir/$profile/sandbox" --manifest "$root/manifest.yaml" ${sandbox_args[@]+"${sandbox_args[@]}"}
