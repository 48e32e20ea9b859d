#!/usr/bin/env bash
# Install (or update) the owfeed package and its actions with the wsk CLI alone.
#
# Purpose: for users without wskdeploy; does what `wskdeploy -m manifest.yaml` does. It builds
# nothing: run deploy/build.sh first to make dist/<action>.zip. Idempotent: `wsk ... update`
# creates what is missing and updates what exists. Each wsk command is printed before it runs;
# the --auth value never is.
#
# Prerequisites: the wsk CLI (path in $WSK, default `wsk`), configured by `wsk property set`
# (~/.wskprops) or by --apihost/--auth here.
#
# Usage: deploy/install.sh [options]
#   --package NAME    package to create or update (default owfeed)
#   --namespace NS    namespace to install into (default: the one your credentials own)
#   --dist DIR        directory holding <action>.zip (default: dist/ in the repository)
#   --native          deploy as kind blackbox (dockerskeleton image) instead of rust:1.34
#   --apihost HOST    passed to wsk as --apihost
#   --auth KEY        passed to wsk as --auth (never printed)
#   --insecure        passed to wsk as --insecure (self-signed certificates)
#   --dry-run         print the wsk commands without running them
#   --list-actions    print the action table (name, timeout ms, memory MB, annotations) and exit
#   --help            print this help and exit
# Environment: WSK  path to the wsk CLI (default wsk)
set -eu

# The actions, in step with manifest.yaml (tests/suite/shipping.rs checks both agree):
# name, timeout in ms, memory in MB, annotations as KEY=VALUE separated by commas, where
# web=MODE stands for wsk's --web MODE (raw: a raw-HTTP web action) as manifest's `web: MODE`.
action_table() {
    cat <<'TABLE'
changes 60000 256 feed=true,provide-api-key=true
poll 60000 256 provide-api-key=true
hook 60000 256 feed=true,provide-api-key=true
receive 60000 256 web=raw,provide-api-key=true,web-custom-options=true
TABLE
}

usage() {
    sed -n '2,/^set -eu$/p' "$0" | sed -e '/^set -eu$/d' -e 's/^# \{0,1\}//'
}

fail() {
    echo "install.sh: $*" >&2
    exit 1
}

root=$(cd "$(dirname "$0")/.." && pwd)
dist=$root/dist
native=no
. "$(dirname "$0")/options.sh"

while [ $# -gt 0 ]; do
    common_option "$@"
    if [ "$consumed" -gt 0 ]; then
        shift "$consumed"
        continue
    fi
    case "$1" in
        --dist)
            need_value "$1" $#
            dist=$2
            shift 2
            ;;
        --native)
            native=yes
            shift
            ;;
        --list-actions)
            action_table
            exit 0
            ;;
        *) fail "unknown option '$1' (see --help)" ;;
    esac
done

check_names

if [ ! -d "$dist" ]; then
    fail "no $dist directory: run deploy/build.sh first"
fi
while read -r name _; do
    [ -f "$dist/$name.zip" ] || fail "$dist/$name.zip is missing: run deploy/build.sh first"
done < <(action_table)

if [ "$dry_run" = no ] && ! command -v "$wsk" >/dev/null; then
    fail "wsk CLI '$wsk' not found: install it or set WSK to its path"
fi

# Print the command (global flags redacted), then run it unless --dry-run.
run_wsk() {
    local words
    words=$(printf '%q ' "$@")
    echo "+ $(printf '%q' "$wsk") $shown_global${words% }"
    if [ "$dry_run" = no ]; then
        "$wsk" ${global[@]+"${global[@]}"} "$@" </dev/null
    fi
}

run_wsk package update "$qualified" --shared yes

feeds=""
while read -r name timeout memory annotations; do
    case ",$annotations," in
        *,feed=true,*) feeds="$feeds $qualified/$name" ;;
    esac
    args=(action update "$qualified/$name" "$dist/$name.zip")
    if [ "$native" = yes ]; then
        args+=(--native)
    else
        args+=(--kind rust:1.34)
    fi
    args+=(--timeout "$timeout" --memory "$memory")
    IFS=, read -r -a pairs <<<"$annotations"
    for pair in "${pairs[@]}"; do
        case "$pair" in
            web=*) args+=(--web "${pair#web=}") ;;
            *) args+=(-a "${pair%%=*}" "${pair#*=}") ;;
        esac
    done
    run_wsk "${args[@]}"
done < <(action_table)

if [ "$dry_run" = yes ]; then
    echo "install.sh: dry run, nothing changed"
else
    echo "install.sh: package $qualified is installed; create triggers with --feed, feeds:$feeds"
fi
