#!/usr/bin/env bash
# Try the S3 feed locally with one command: no OpenWhisk, no Docker; everything on 127.0.0.1.
#
# Purpose: builds the action binaries and the sandbox with cargo, then runs the sandbox: it
# starts the OpenWhisk emulator and a local S3 server (moto, verifying SigV4 signatures),
# deploys the owfeed package as manifest.yaml describes it, creates a bucket, a trigger with
# --feed owfeed/changes and a rule to an echo action, creates, changes and deletes a few
# objects, and prints the CloudEvents the echo action received with a summary.
#
# Prerequisites: cargo, and python3 with pip: on first use the sandbox installs a pinned moto
# into target/test-tools/ (the only step that needs the network), as the test suite does.
#
# Usage: deploy/sandbox.sh [--release] [--keep [--realtime]] [--source s3|couchdb|kafka] [--push] [--help]
#   --release   build and run the release binaries (default: debug)
#   --source    the demo's source: s3 (default, on moto) or couchdb (on pouchdb-server, which
#               the first couchdb run installs from npm into target/test-tools/) or kafka (on
#               tansu, which the first kafka run builds with cargo into target/test-tools/,
#               several minutes, with kafka-python from PyPI producing)
#   --push      the S3 demo in push mode: --feed owfeed/hook -p source s3 -p provider aws, each
#               write pushed by moto's S3 through moto's SNS to the receiver, no alarm. moto's
#               SNS sends no confirmation and signs with its own certificate, so test stand-ins
#               play that part of SNS and the receiver is the test build sns-test-receive, which
#               also trusts the local stand-in (the shipped receive trusts only AWS's SNS hosts)
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
while [ $# -gt 0 ]; do
    arg=$1
    shift
    case "$arg" in
        --release)
            profile=release
            cargo_profile=(--release)
            ;;
        --keep | --realtime | --push) sandbox_args+=("$arg") ;;
        --source)
            [ $# -gt 0 ] || fail "--source needs s3, couchdb or kafka"
            sandbox_args+=(--source "$1")
            shift
            ;;
        -h | --help)
            usage
            exit 0
            ;;
        *) fail "unknown option '$arg' (see --help)" ;;
    esac
done

command -v cargo >/dev/null || fail "cargo is required (https://rustup.rs)"

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
