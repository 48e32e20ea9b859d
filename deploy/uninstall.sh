#!/usr/bin/env bash
# Remove the owfeed actions and then their package with the wsk CLI alone.
#
# Purpose: undoes deploy/install.sh (or wskdeploy). Actions go first because OpenWhisk refuses
# to delete a package that still holds actions. Whatever is already gone is reported and
# skipped, so a rerun succeeds. Triggers created with the feed are the users' own and are left
# alone: delete those first (`wsk trigger delete NAME`) so the feed can clean up after them.
# Each wsk command is printed before it runs; the --auth value never is.
#
# Prerequisites: the wsk CLI (path in $WSK, default `wsk`), configured by `wsk property set`
# (~/.wskprops) or by --apihost/--auth here; deploy/install.sh beside this script (it owns
# the list of actions).
#
# Usage: deploy/uninstall.sh [options]
#   --package NAME    package to remove (default owfeed)
#   --namespace NS    namespace it was installed into (default: your credentials' own)
#   --apihost HOST    passed to wsk as --apihost
#   --auth KEY        passed to wsk as --auth (never printed)
#   --insecure        passed to wsk as --insecure (self-signed certificates)
#   --dry-run         print the wsk commands without running them
#   --help            print this help and exit
# Environment: WSK  path to the wsk CLI (default wsk)
set -eu

usage() {
    sed -n '2,/^set -eu$/p' "$0" | sed -e '/^set -eu$/d' -e 's/^# \{0,1\}//'
}

fail() {
    echo "uninstall.sh: $*" >&2
    exit 1
}

here=$(cd "$(dirname "$0")" && pwd)
. "$(dirname "$0")/options.sh"

while [ $# -gt 0 ]; do
    common_option "$@"
    if [ "$consumed" -gt 0 ]; then
        shift "$consumed"
        continue
    fi
    case "$1" in
        *) fail "unknown option '$1' (see --help)" ;;
    esac
done

check_names

if [ "$dry_run" = no ] && ! command -v "$wsk" >/dev/null; then
    fail "wsk CLI '$wsk' not found: install it or set WSK to its path"
fi

actions=$(bash "$here/install.sh" --list-actions | cut -d' ' -f1)

# Print the command (global flags redacted), then run it unless --dry-run. The wsk CLI exits
# with the HTTP status minus 256, so 148 means 404: already gone, which is what we want.
delete() {
    local words status
    words=$(printf '%q ' "$@")
    echo "+ $(printf '%q' "$wsk") $shown_global${words% }"
    [ "$dry_run" = no ] || return 0
    status=0
    "$wsk" ${global[@]+"${global[@]}"} "$@" </dev/null || status=$?
    case "$status" in
        0) ;;
        148) echo "uninstall.sh: $3 was not there" ;;
        *) fail "'wsk $1 $2 $3' failed with exit status $status" ;;
    esac
}

for name in $actions; do
    delete action delete "$qualified/$name"
done
delete package delete "$qualified"

if [ "$dry_run" = yes ]; then
    echo "uninstall.sh: dry run, nothing changed"
else
    echo "uninstall.sh: package $qualified is removed"
fi
