# Options and checks shared by install.sh and uninstall.sh; sourced by both after they define
# `usage` and `fail`. Not meant to be run on its own.
#
# Sets: wsk, package, namespace, dry_run, global (wsk's global flags), shown_global (the same
# flags as printed, with the --auth value replaced), and after check_names: qualified.

wsk=${WSK:-wsk}
package=owfeed
namespace=""
dry_run=no
global=()
shown_global=""

need_value() {
    [ "$2" -ge 2 ] || fail "option $1 needs a value (see --help)"
}

# common_option ARGS...: takes one shared option from the front of ARGS and sets `consumed`
# to how many arguments it used (0 when the option is not a shared one).
common_option() {
    consumed=0
    case "$1" in
        --package)
            need_value "$1" $#
            package=$2
            consumed=2
            ;;
        --namespace)
            need_value "$1" $#
            namespace=$2
            consumed=2
            ;;
        --apihost)
            need_value "$1" $#
            global+=(--apihost "$2")
            shown_global="$shown_global--apihost $(printf '%q' "$2") "
            consumed=2
            ;;
        --auth)
            need_value "$1" $#
            global+=(--auth "$2")
            shown_global="$shown_global--auth *** "
            consumed=2
            ;;
        --insecure)
            global+=(--insecure)
            shown_global="$shown_global--insecure "
            consumed=1
            ;;
        --dry-run)
            dry_run=yes
            consumed=1
            ;;
        -h | --help)
            usage
            exit 0
            ;;
    esac
}

# check_names: rejects bad --package/--namespace values and sets `qualified`.
check_names() {
    case "$package" in
        "" | */*) fail "--package '$package' must be a non-empty name without '/'" ;;
    esac
    case "$namespace" in
        */*) fail "--namespace '$namespace' must be a name without '/'" ;;
    esac
    qualified=$package
    if [ -n "$namespace" ]; then
        qualified=/$namespace/$package
    fi
}
