#!/usr/bin/env bash
# Build the Dockerfile and test the image for real, the way it is documented to run:
#
#   podman run --rm -d --privileged -p 127.0.0.1:18080:8080 IMAGE
#
# then send real requests to it on loopback and check the answers. Then the same image
# in two short runs with fewer privileges (the privilege matrix, docs/operations.md):
# `--cap-add SYS_ADMIN --security-opt unmask=/proc/*` (healthy; its cgroups mode is
# reported; hello and the memory, fork and output attacks each get their own kind),
# and no extra privileges (/healthz and /execute 503 sandbox_unavailable naming the
# cause: nothing runs). Run as root on
# Debian. Only Debian's mirror and PyPI are needed, so the base image is not pulled
# from a registry: a bookworm minbase (debootstrap) with python3 and python3-venv
# stands in for python:3.12-slim. It is cached as localhost/pyexec-base:bookworm;
# the app image localhost/pyexec:test is kept too (layer cache for the next run).
#
# Prints PASS/FAIL lines and `container: N passed, M failed`; exits non-zero on any
# failure. The container and temp files are always removed.
set -euo pipefail
cd "$(dirname "$0")/.."

BASE_IMAGE=localhost/pyexec-base:bookworm
APP_IMAGE=${PYEXEC_TEST_IMAGE:-localhost/pyexec:test}
HOST_PORT=${PYEXEC_TEST_PORT:-18080}
URL="http://127.0.0.1:${HOST_PORT}"
CA_BUNDLE=${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}
HEALTH_WAIT=120
CONTAINER=""
WORK=""

log() { printf 'container_test: %s\n' "$*" >&2; }

if [ "$(id -u)" != 0 ]; then
    log "run as root (rootful podman, debootstrap)"
    exit 1
fi

cleanup() {
    local rc=$?
    if [ -n "$CONTAINER" ]; then
        if [ "$rc" != 0 ] || [ -n "${PYEXEC_TEST_LOGS:-}" ]; then
            log "last lines of the container's log:"
            podman logs --tail 40 "$CONTAINER" >&2 2>&1 || true
        fi
        podman rm -f -t 5 "$CONTAINER" > /dev/null 2>&1 || true
    fi
    if [ -n "$WORK" ]; then
        # The rootfs may hold mounts if debootstrap was interrupted.
        for mnt in proc sys dev/pts dev; do
            umount -l "$WORK/rootfs/$mnt" 2> /dev/null || true
        done
        rm -rf --one-file-system "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

missing=()
for tool in podman runc debootstrap curl python3; do
    command -v "$tool" > /dev/null || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" > /dev/null
fi

WORK=$(mktemp -d /tmp/pyexec-container-test.XXXXXX)
cat > "$WORK/containers.conf" << 'EOF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "runc"
EOF
export CONTAINERS_CONF="$WORK/containers.conf"

# The Debian mirror apt already uses (deb822 .sources or one-line .list files).
debian_mirror() {
    local uri
    uri=$(grep -hsE '^URIs:' /etc/apt/sources.list.d/*.sources 2> /dev/null \
        | awk '{print $2}' | grep -vE 'security|nodesource|google' | head -n1 || true)
    if [ -z "$uri" ]; then
        uri=$(grep -hsE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2> /dev/null \
            | grep -v security | awk '{for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) {print $i; exit}}' \
            | head -n1 || true)
    fi
    echo "${uri:-http://deb.debian.org/debian}"
}

start=$SECONDS
if podman image exists "$BASE_IMAGE"; then
    log "base image $BASE_IMAGE is cached"
else
    mirror=$(debian_mirror)
    log "building $BASE_IMAGE with debootstrap from $mirror"
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
        bookworm "$WORK/rootfs" "$mirror" > "$WORK/debootstrap.log" 2>&1 || {
        tail -n 30 "$WORK/debootstrap.log" >&2
        exit 1
    }
    rm -rf "$WORK"/rootfs/var/lib/apt/lists/* "$WORK"/rootfs/var/cache/apt/* \
        "$WORK"/rootfs/var/log/* "$WORK"/rootfs/usr/share/doc/* "$WORK"/rootfs/usr/share/man/*
    tar --numeric-owner -C "$WORK/rootfs" -c . | podman import -q \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change 'CMD ["python3"]' \
        - "$BASE_IMAGE" > /dev/null
    rm -rf --one-file-system "$WORK/rootfs"
    log "base image built in $((SECONDS - start)) s"
fi

old_id=$(podman image inspect --format '{{.Id}}' "$APP_IMAGE" 2> /dev/null || true)
start=$SECONDS
log "building $APP_IMAGE"
secret=()
[ -s "$CA_BUNDLE" ] && secret=(--secret "id=pip_cert,src=$CA_BUNDLE")
podman build -q "${secret[@]}" --build-arg "BASE_IMAGE=$BASE_IMAGE" -t "$APP_IMAGE" . > /dev/null
new_id=$(podman image inspect --format '{{.Id}}' "$APP_IMAGE")
if [ -n "$old_id" ] && [ "$old_id" != "$new_id" ]; then
    podman rmi "$old_id" > /dev/null 2>&1 || true
fi
size=$(podman image inspect --format '{{.Size}}' "$APP_IMAGE")
log "image built in $((SECONDS - start)) s, $((size / 1000000)) MB"

# run_container PODMAN_RUN_FLAGS...: start the image (replacing any earlier container)
# and wait until /healthz answers something other than 503 starting (its body in
# $WORK/health, its status in $code). Sets $healthy when that is a 200.
run_container() {
    if [ -n "$CONTAINER" ]; then
        podman rm -f -t 5 "$CONTAINER" > /dev/null 2>&1 || true
        CONTAINER=""
    fi
    start=$SECONDS
    CONTAINER=$(podman run --rm -d "$@" -p "127.0.0.1:${HOST_PORT}:8080" "$APP_IMAGE")
    log "started container ${CONTAINER:0:12} ($*); waiting for /healthz"
    healthy=""
    code=""
    local deadline=$((SECONDS + HEALTH_WAIT))
    while [ "$SECONDS" -lt "$deadline" ]; do
        code=$(curl -s -o "$WORK/health" -w '%{http_code}' --max-time 3 "$URL/healthz" || true)
        if [ "$code" = 200 ]; then
            healthy=1
            break
        fi
        if [ "$code" = 503 ] && ! grep -q '"starting"' "$WORK/health"; then
            break
        fi
        if [ "$(podman inspect --format '{{.State.Running}}' "$CONTAINER" 2> /dev/null)" != true ]; then
            log "the container stopped (it was started with --rm, so its log is gone)"
            break
        fi
        sleep 1
    done
}

run_container --privileged

passed=0
failed=0
pass() { passed=$((passed + 1)); echo "PASS $1"; }
fail() { failed=$((failed + 1)); echo "FAIL $1: $2"; }

if [ -n "$healthy" ]; then
    pass "healthz ($(cat "$WORK/health"), after $((SECONDS - start)) s)"
else
    fail healthz "no 200 within ${HEALTH_WAIT} s (last: ${code:-none} $(cat "$WORK/health" 2> /dev/null))"
fi

# check NAME EXPECTED_STATUS PYTHON_CONDITION SCRIPT [EXTRA_FIELDS_JSON]
# POSTs SCRIPT (and the extra request fields) to /execute; PYTHON_CONDITION is
# evaluated with the parsed body as `b`.
check() {
    local name=$1 want=$2 cond=$3 script=$4 extra=${5:-"{}"} body status
    body=$(python3 -c 'import json, sys; print(json.dumps({"script": sys.argv[1], **json.loads(sys.argv[2])}))' \
        "$script" "$extra")
    status=$(curl -s -o "$WORK/out" -w '%{http_code}' --max-time 60 -X POST "$URL/execute" \
        -H 'Content-Type: application/json' --data-binary "$body" || true)
    if [ "$status" != "$want" ]; then
        fail "$name" "status ${status:-none}, want $want: $(head -c 400 "$WORK/out" 2> /dev/null)"
    elif python3 -c 'import json, sys; b = json.load(open(sys.argv[1])); sys.exit(0 if eval(sys.argv[2]) else 1)' \
        "$WORK/out" "$cond" 2> /dev/null; then
        pass "$name"
    else
        fail "$name" "unexpected body: $(head -c 400 "$WORK/out")"
    fi
}

if [ -n "$healthy" ]; then
    check hello 200 'b["result"] == {"hello": "world"} and b["stdout"] == "" and b["stderr"] == ""' \
        $'def main():\n    return {"hello": "world"}\n'
    check numpy 200 'b["result"] == 45' \
        $'import numpy as np\ndef main():\n    return np.arange(10).sum()\n'
    check pandas 200 'b["result"] == 6 and b["stdout"] == "summing\n"' \
        $'import pandas as pd\ndef main():\n    print("summing")\n    return int(pd.Series([1, 2, 3]).sum())\n'
    # The jail must refuse to even create an internet socket, so nothing is ever sent:
    # if socket() succeeded this reports it without connecting anywhere.
    check network 200 'b["result"]["inet"] == "PermissionError" and b["result"]["inet6"] == "PermissionError"' \
        $'import socket\ndef attempt(family):\n    try:\n        socket.socket(family, socket.SOCK_STREAM).close()\n    except OSError as exc:\n        return type(exc).__name__\n    return "CREATED"\ndef main():\n    return {"inet": attempt(socket.AF_INET), "inet6": attempt(socket.AF_INET6)}\n'
    check loopback 200 'b["result"] != "CONNECTED"' \
        $'import socket\ndef main():\n    try:\n        socket.create_connection(("127.0.0.1", 8080), timeout=2).close()\n    except OSError as exc:\n        return type(exc).__name__\n    return "CONNECTED"\n'
    check timeout 400 'b["kind"] == "timeout" and b["stdout"] == "sleeping\n"' \
        $'import time\ndef main():\n    print("sleeping", flush=True)\n    time.sleep(3600)\n'
    check memory 400 'b["kind"] == "memory_limit"' \
        $'def main():\n    hog = []\n    while True:\n        hog.append(bytearray(16 * 1024 * 1024))\n'
    check exception 400 'b["kind"] == "exception" and b["exception"]["type"] == "ZeroDivisionError"' \
        $'def main():\n    return 1 / 0\n'
    check input 200 'b["result"] == {"doubled": [2, 4]}' \
        $'def main(data):\n    return {"doubled": [2 * n for n in data["numbers"]]}\n' \
        '{"input": {"numbers": [1, 2]}}'
    check files 200 'b["result"] == 3 and b["files_collected"] and [(f["path"], f["mime_type"], f["content"]) for f in b["files"]] == [("out/total.csv", "text/csv", "total\n6\n")]' \
        $'import os\nimport pandas as pd\ndef main():\n    frame = pd.read_csv("in.csv")\n    os.makedirs("out")\n    pd.DataFrame({"total": [int(frame["n"].sum())]}).to_csv("out/total.csv", index=False)\n    return len(frame)\n' \
        '{"files": [{"path": "in.csv", "content": "n\n1\n2\n3\n"}], "output_files": ["out/*"]}'
    # A chart: the Agg backend, the font cache the image built bound read-only as the
    # only file in MPLCONFIGDIR (/tmp), nothing on stderr, and a PNG of the right size.
    check chart 200 'b["result"] == {"backend": "agg", "tmp": ["bound"]} and b["stderr"] == "" and [(f["path"], f["mime_type"]) for f in b["files"]] == [("chart.png", "image/png")] and (lambda d: d[:8] == b"\x89PNG\r\n\x1a\n" and d[12:16] == b"IHDR" and (int.from_bytes(d[16:20], "big"), int.from_bytes(d[20:24], "big")) == (300, 200))(__import__("base64").b64decode(b["files"][0]["content"]))' \
        $'import os\nimport matplotlib\nimport matplotlib.pyplot as plt\ndef main():\n    fig, ax = plt.subplots(figsize=(3, 2))\n    ax.plot([0, 1, 2], [0, 1, 4])\n    fig.savefig("chart.png", dpi=100)\n    tmp = os.stat("/tmp").st_dev\n    return {"backend": matplotlib.get_backend().lower(), "tmp": ["bound" if os.stat("/tmp/" + name).st_dev != tmp else name for name in os.listdir("/tmp")]}\n' \
        '{"output_files": ["*.png"]}'
    check after-failures 200 'b["result"] == "still fine"' \
        $'def main():\n    return "still fine"\n'
    # The try-it page (issue 19): in the image, with its CSP naming its script's hash.
    page=$(curl -s -D "$WORK/page-headers" -o "$WORK/page" -w '%{http_code}' --max-time 10 \
        "$URL/" || true)
    if [ "$page" = 200 ] && grep -q '<script>' "$WORK/page" &&
        grep -qi "^content-security-policy: default-src 'none'; script-src 'sha256-" \
            "$WORK/page-headers"; then
        pass page
    else
        fail page "status ${page:-none}: $(head -c 300 "$WORK/page-headers" 2> /dev/null)"
    fi
fi

# The privilege matrix (docs/operations.md#the-container): the least that works.
LEAST=(--cap-add SYS_ADMIN --security-opt 'unmask=/proc/*')
run_container "${LEAST[@]}"
if [ -n "$healthy" ]; then
    pass "least privilege: healthz ($(python3 -c 'import json, sys; b = json.load(open(sys.argv[1])); print("cgroups", b["cgroups"], "via", b["cgroup_source"], "limits", b["limits"])' "$WORK/health"), after $((SECONDS - start)) s)"
    check "least privilege: hello" 200 'b["result"] == {"hello": "world"}' \
        $'def main():\n    return {"hello": "world"}\n'
    check "least privilege: memory bomb" 400 'b["kind"] == "memory_limit"' \
        $'def main():\n    hog = []\n    while True:\n        hog.append(bytearray(16 * 1024 * 1024))\n'
    check "least privilege: fork bomb" 400 'b["kind"] in ("timeout", "cpu_limit")' \
        $'import os\ndef main():\n    while True:\n        try:\n            os.fork()\n        except OSError:\n            pass\n' \
        '{"timeout_seconds": 2}'
    check "least privilege: stdout flood" 400 'b["kind"] == "output_limit"' \
        $'import sys\ndef main():\n    while True:\n        sys.stdout.write("flood " * 1000)\n'
else
    fail "least privilege: healthz" "no 200 within ${HEALTH_WAIT} s (last: ${code:-none} $(cat "$WORK/health" 2> /dev/null))"
fi

# No extra privileges: no jail can start, so nothing runs, and both endpoints say why.
run_container
if [ "$code" = 503 ] && python3 -c 'import json, sys; b = json.load(open(sys.argv[1])); sys.exit(0 if b["kind"] == "sandbox_unavailable" and "namespace" in b["error"].lower() else 1)' "$WORK/health" 2> /dev/null; then
    pass "no privileges: healthz 503 ($(head -c 300 "$WORK/health"))"
else
    fail "no privileges: healthz" "status ${code:-none}, want 503 sandbox_unavailable naming the cause: $(head -c 400 "$WORK/health" 2> /dev/null)"
fi
check "no privileges: nothing runs" 503 'b["kind"] == "sandbox_unavailable"' \
    $'def main():\n    return "ran"\n'

echo "container: $passed passed, $failed failed"
[ "$failed" = 0 ]
