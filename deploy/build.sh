#!/usr/bin/env bash
# Build the OpenWhisk action zips: dist/<action>.zip for every crate under actions/.
#
# Purpose: each action ships as a precompiled, statically linked x86_64 binary stored as the
# top-level `exec` (mode 755) of a zip, which both the rust:1.34 runtime (Debian stretch, old
# glibc) and the blackbox/native image (Alpine, musl) run as is. A binary linked against the
# build machine's glibc would not start there, so every binary is checked to be a static ELF
# (no PT_INTERP program header, no DT_NEEDED library) and its zip to stay within the budget
# below. The zip's size is most of an action's cold start (the proxy receives and unpacks it):
# see BENCHMARKS.md for what the bytes are and what would make them fewer.
#
# Prerequisites: cargo with the x86_64-unknown-linux-gnu target (the host target on x86_64
# Linux) and python3 (its zipfile module builds the zips; no zip/readelf tool is needed).
#
# Usage: deploy/build.sh [--check-only] [--help]
#   --check-only  build nothing; verify the zips already in dist/
# Idempotent: reruns rebuild incrementally and rewrite identical zips (fixed timestamps).
set -eu

usage() {
    sed -n '2,/^set -eu$/p' "$0" | sed -e '/^set -eu$/d' -e 's/^# \{0,1\}//'
}

check_only=no
for arg in "$@"; do
    case "$arg" in
        --check-only) check_only=yes ;;
        -h | --help)
            usage
            exit 0
            ;;
        *)
            echo "build.sh: unknown option '$arg' (expected --check-only or --help)" >&2
            exit 2
            ;;
    esac
done

root=$(cd "$(dirname "$0")/.." && pwd)
target=x86_64-unknown-linux-gnu
target_dir=${CARGO_TARGET_DIR:-$root/target}
dist=$root/dist
# poll 2.147 MB, changes 2.088 MB today (2.128 and 2.085 before issue 22's last step: typed
# registrations, READ as serde types, the tick's memory admission add 19 kB to poll; 1.65 MB before the kafka source; its wire client with
# kafka-protocol's codec for the 8 messages it speaks, the record-batch decoder, pure-Rust
# gzip/snappy/lz4/zstd decoders, SASL and a second rustls configuration add 0.36 MB; BENCHMARKS
# "Binary size of the kafka source"; the namespace scheduler's tick, entities, shared pace and
# cron matching add 88 kB to poll and 56 kB to changes, BENCHMARKS "Where the namespace
# scheduler's bytes go"; the listing work of issue 21 about 17 kB after what it shed, BENCHMARKS
# "Listing 100k objects on Ceph RGW"). Set at the largest zip plus 2 %: a new dependency of
# 40 kB zipped fails it; whatever adds to poll must shed as much or say why the budget grows.
max_zip_bytes=$((2170 * 1000))

command -v python3 >/dev/null || {
    echo "build.sh: python3 is required (it writes and checks the zips)" >&2
    exit 1
}

# Every directory under actions/ with a Cargo.toml is an action; its crate and binary share
# the directory's name.
actions=""
for manifest in "$root"/actions/*/Cargo.toml; do
    [ -f "$manifest" ] || continue
    actions="$actions $(basename "$(dirname "$manifest")")"
done
if [ -z "$actions" ]; then
    echo "build.sh: no action crates found under $root/actions" >&2
    exit 1
fi

if [ "$check_only" = no ]; then
    command -v cargo >/dev/null || {
        echo "build.sh: cargo is required" >&2
        exit 1
    }
    packages=""
    for action in $actions; do
        packages="$packages -p $action"
    done
    echo "build.sh: building$actions (release, static, $target)"
    # RUSTFLAGS reaches only the target artifacts because --target is given: build scripts
    # and proc macros stay dynamically linked host binaries, as they must.
    # shellcheck disable=SC2086 # word splitting of $packages is intended
    (cd "$root" && RUSTFLAGS="-C target-feature=+crt-static" \
        cargo build --release --target "$target" $packages)
    mkdir -p "$dist"
fi

# One python3 program both packs (unless --check-only) and checks, so the check reads the zip
# exactly as OpenWhisk will: top-level `exec`, executable, static ELF.
# shellcheck disable=SC2086 # word splitting of $actions is intended
python3 - "$check_only" "$target_dir/$target/release" "$dist" "$max_zip_bytes" $actions <<'PY'
import os
import stat
import struct
import sys
import zipfile

check_only = sys.argv[1] == "yes"
bin_dir, dist, max_zip = sys.argv[2], sys.argv[3], int(sys.argv[4])
actions = sys.argv[5:]

PT_DYNAMIC, PT_INTERP, DT_NULL, DT_NEEDED = 2, 3, 0, 1


def elf_problem(data):
    """Return why `data` is not a static x86_64 ELF executable, or None."""
    if data[:4] != b"\x7fELF":
        return "not an ELF file"
    if data[4] != 2 or data[5] != 1:
        return "not a 64-bit little-endian ELF"
    (e_machine,) = struct.unpack_from("<H", data, 18)
    if e_machine != 62:
        return f"machine {e_machine} is not x86_64 (62)"
    (e_phoff,) = struct.unpack_from("<Q", data, 32)
    e_phentsize, e_phnum = struct.unpack_from("<HH", data, 54)
    for i in range(e_phnum):
        p_type, _flags, p_offset, _vaddr, _paddr, p_filesz = struct.unpack_from(
            "<IIQQQQ", data, e_phoff + i * e_phentsize
        )
        if p_type == PT_INTERP:
            interp = data[p_offset : p_offset + p_filesz].rstrip(b"\0").decode(errors="replace")
            return f"dynamically linked (PT_INTERP {interp})"
        if p_type == PT_DYNAMIC:
            # A static-pie keeps a dynamic section for its own relocations; it must name no
            # shared library.
            for off in range(p_offset, p_offset + p_filesz, 16):
                d_tag, _ = struct.unpack_from("<qQ", data, off)
                if d_tag == DT_NULL:
                    break
                if d_tag == DT_NEEDED:
                    return "needs a shared library (DT_NEEDED)"
    return None


def pack(action):
    binary = os.path.join(bin_dir, action)
    if not os.path.isfile(binary):
        sys.exit(f"build.sh: {binary} was not built (is the binary named like its folder?)")
    with open(binary, "rb") as f:
        data = f.read()
    info = zipfile.ZipInfo("exec", date_time=(1980, 1, 1, 0, 0, 0))
    info.external_attr = (stat.S_IFREG | 0o755) << 16
    info.create_system = 3  # unix, so unzip honours the mode bits
    info.compress_type = zipfile.ZIP_DEFLATED
    out = os.path.join(dist, action + ".zip")
    tmp = out + ".tmp"
    with zipfile.ZipFile(tmp, "w") as z:
        z.writestr(info, data, compresslevel=9)
    os.replace(tmp, out)


def check(action):
    """Return (binary bytes, zip bytes, problems) for dist/<action>.zip."""
    path = os.path.join(dist, action + ".zip")
    if not os.path.isfile(path):
        return 0, 0, [f"{path} is missing (run deploy/build.sh)"]
    zip_bytes = os.path.getsize(path)
    problems = []
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        if "exec" not in names:
            return 0, zip_bytes, [f"{path} has no top-level exec (entries: {names})"]
        info = z.getinfo("exec")
        data = z.read(info)
    mode = (info.external_attr >> 16) & 0o777
    if mode != 0o755:
        problems.append(f"exec has mode {mode:o}, expected 755")
    why = elf_problem(data)
    if why:
        problems.append(f"exec is {why}")
    if zip_bytes > max_zip:
        problems.append(f"zip is {zip_bytes} bytes, over the limit of {max_zip}")
    if not problems:
        problems.extend(smoke(data))
    return len(data), zip_bytes, problems


def smoke(data):
    """Run the exec as the runtime does, with an EMPTY environment (no PATH), through one
    actionloop activation, and expect one JSON object line on fd 3."""
    import json, subprocess, tempfile
    with tempfile.TemporaryDirectory() as tmp:
        exe = os.path.join(tmp, "exec")
        with open(exe, "wb") as f:
            f.write(data)
        os.chmod(exe, 0o755)
        result = os.path.join(tmp, "fd3")
        line = json.dumps({"value": {}, "activation_id": "smoke", "deadline": "9999999999999"}) + "\n"
        # `env -i` gives the exec an empty environment; the shell makes fd 3 the result file.
        script = 'exec env -i "$0" 3>"$1" >/dev/null 2>&1'
        try:
            proc = subprocess.run(["/bin/sh", "-c", script, exe, result], input=line.encode(), timeout=20)
        except subprocess.TimeoutExpired:
            return ["actionloop smoke test: no exit after stdin closed"]
        with open(result, "rb") as fd3:
            out = fd3.read().decode("utf-8", "replace").splitlines()
    if proc.returncode != 0 or len(out) != 1:
        return [f"actionloop smoke test: exit {proc.returncode}, fd-3 lines {out!r}"]
    try:
        if not isinstance(json.loads(out[0]), dict):
            return [f"actionloop smoke test: result is not a JSON object: {out[0]!r}"]
    except ValueError:
        return [f"actionloop smoke test: result is not JSON: {out[0]!r}"]
    return []


if not check_only:
    for action in actions:
        pack(action)

failed = False
print(f"{'action':<16} {'binary bytes':>13} {'zip bytes':>11}  status")
for action in actions:
    binary_bytes, zip_bytes, problems = check(action)
    status = "ok" if not problems else "FAIL: " + "; ".join(problems)
    failed = failed or bool(problems)
    print(f"{action:<16} {binary_bytes:>13} {zip_bytes:>11}  {status}")
sys.exit(1 if failed else 0)
PY
