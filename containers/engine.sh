#!/usr/bin/env bash
# Container engine set-up and image builds for Loopline (`make images`, `make test-containers`).
#
#   containers/engine.sh install    install podman, buildah, runc and mmdebstrap as root where no
#                                   Docker engine answers and they are missing (apt-get)
#   containers/engine.sh standin    build the stand-in base image (Debian bookworm's python3.11)
#   containers/engine.sh images     build the role images (docker, else podman)
#   containers/engine.sh sizes      print each image's size
#
# With Docker, a plain `docker build` per role. Without it, podman with the settings under
# containers/podman/ (runc, cgroupfs, no default ulimits, overlay storage), the host's pip
# configuration and certificates passed into the build, and BASE_IMAGE as the base: the official
# python image by default, or the stand-in when the official image cannot be pulled
# (BASE_IMAGE=localhost/python-standin:3.11-slim-bookworm, which `make images` picks by itself
# when no registry is reachable).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
STATE="$ROOT/.loopline/containers"
OFFICIAL_BASE="python:3.11.14-slim-bookworm"
STANDIN_BASE="localhost/python-standin:3.11-slim-bookworm"
ROLES="${ROLES:-base trainer deployer serving}"
VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' "$ROOT/pyproject.toml")"
GIT_COMMIT="$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || true)"
REGISTRY="${LOOPLINE_IMAGE_REGISTRY:-ghcr.io/loopline}"
REGISTRY="${REGISTRY%/}"

export CONTAINERS_CONF="${CONTAINERS_CONF:-$HERE/podman/containers.conf}"
export CONTAINERS_STORAGE_CONF="${CONTAINERS_STORAGE_CONF:-$HERE/podman/storage.conf}"

say() { echo "engine: $*" >&2; }
die() { echo "engine: $*" >&2; exit 1; }

docker_answers() { command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; }

engine() {
    if docker_answers; then echo docker
    elif command -v podman >/dev/null 2>&1; then echo podman
    else die "no container engine: install Docker, or podman (apt-get install podman buildah runc), or run 'sudo containers/engine.sh install'"
    fi
}

cmd_install() {
    if docker_answers; then say "a Docker engine answers; nothing to install"; return; fi
    local missing=()
    for tool in podman:podman buildah:buildah runc:runc mmdebstrap:mmdebstrap; do
        command -v "${tool%%:*}" >/dev/null 2>&1 || missing+=("${tool#*:}")
    done
    [ ${#missing[@]} -eq 0 ] && { say "podman, buildah, runc and mmdebstrap are installed"; return; }
    [ "$(id -u)" -eq 0 ] || die "missing ${missing[*]}: run 'sudo containers/engine.sh install' (or apt-get install ${missing[*]})"
    command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]} and no apt-get: install them with this system's package manager"
    say "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" uidmap >/dev/null
}

podman_() { podman "$@"; }

image_exists() {
    if [ "$(engine)" = docker ]; then docker image inspect "$1" >/dev/null 2>&1
    else podman_ image exists "$1"; fi
}

cmd_standin() {
    [ "$(engine)" = podman ] || die "the stand-in base image is built with podman; with Docker use the official $OFFICIAL_BASE"
    command -v mmdebstrap >/dev/null 2>&1 || die "mmdebstrap is missing: run 'sudo containers/engine.sh install'"
    if image_exists "$STANDIN_BASE" && [ -z "${REBUILD:-}" ]; then say "$STANDIN_BASE exists"; return; fi
    mkdir -p "$STATE"
    # the build context is removed by the caller's EXIT trap too, should mmdebstrap or the build fail
    STANDIN_CTX="$(mktemp -d "$STATE/standin.XXXX")"
    trap 'rm -rf "$STANDIN_CTX"' EXIT
    cp "$HERE/standin/Containerfile" "$STANDIN_CTX/"
    say "mmdebstrap: Debian bookworm with python3.11 (a stand-in for $OFFICIAL_BASE)"
    mmdebstrap --quiet --variant=minbase --include=python3.11,python3.11-venv,ca-certificates \
        bookworm "$STANDIN_CTX/rootfs.tar"
    podman_ build --network=host -f "$STANDIN_CTX/Containerfile" -t "$STANDIN_BASE" "$STANDIN_CTX"
    rm -rf "$STANDIN_CTX"
}

# The host's pip settings (config files and PIP_* variables, merged by pip itself) as one
# pip.conf, and every local path they name, so that pip inside the build reaches the same index
# with the same certificates as on the host.
pip_mounts() {
    mkdir -p "$STATE"
    local conf="$STATE/pip.conf"
    python3 - "$conf" <<'PY'
import configparser, os, re, subprocess, sys
out = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True).stdout
cfg = configparser.ConfigParser()
cfg["global"] = {}
paths = set()
for line in out.splitlines():
    m = re.match(r"^(:env:|[\w-]+)\.([\w-]+)='(.*)'$", line)
    if not m:
        continue
    section, key, value = m.groups()
    section = "global" if section in (":env:", "global") else section
    cfg.setdefault(section, {})
    cfg[section][key] = value
    for word in value.split():
        path = word[len("file://"):] if word.startswith("file://") else word
        if path.startswith("/") and os.path.exists(path):
            # a local index's pages link to files beside its simple/ folder: mount the index root
            paths.add(os.path.dirname(path.rstrip("/")) if os.path.basename(path.rstrip("/")) == "simple" else path)
with open(sys.argv[1], "w") as f:
    cfg.write(f)
for p in sorted(paths):
    print(p)
PY
}

build_args() {
    local role="$1"
    printf '%s\n' --target "$role" \
        --build-arg "BASE_IMAGE=$BASE_IMAGE" \
        --build-arg "LOOPLINE_VERSION=$VERSION" \
        --build-arg "LOOPLINE_GIT_COMMIT=$GIT_COMMIT" \
        -t "$REGISTRY/loopline-$role:$VERSION"
}

pick_base() {
    if [ -n "${BASE_IMAGE:-}" ]; then return; fi
    BASE_IMAGE="$OFFICIAL_BASE"
    if [ "$(engine)" = podman ] && ! podman_ image exists "$OFFICIAL_BASE" \
        && ! timeout 180 podman pull -q "docker.io/library/$OFFICIAL_BASE" >/dev/null 2>&1; then
        say "$OFFICIAL_BASE cannot be pulled here; using the stand-in $STANDIN_BASE"
        cmd_standin
        BASE_IMAGE="$STANDIN_BASE"
    fi
}

cmd_images() {
    local eng; eng="$(engine)"
    pick_base
    export BASE_IMAGE
    for role in $ROLES; do
        local t0=$SECONDS
        say "building $REGISTRY/loopline-$role:$VERSION on $BASE_IMAGE ($eng)"
        if [ "$eng" = docker ]; then
            mapfile -t args < <(build_args "$role")
            [ -n "${NO_CACHE:-}" ] && args+=(--no-cache)
            docker build -f "$HERE/Dockerfile" "${args[@]}" "$ROOT"
        else
            mapfile -t args < <(build_args "$role")
            local mounts=()
            mapfile -t paths < <(pip_mounts)
            mounts+=(-v "$STATE/pip.conf:/etc/pip.conf:ro")
            for p in "${paths[@]}"; do mounts+=(-v "$p:$p:ro"); done
            [ -d /etc/ssl/certs ] && mounts+=(-v /etc/ssl/certs:/etc/ssl/certs:ro)
            [ -n "${NO_CACHE:-}" ] && args+=(--no-cache)
            podman_ build --network=host --layers "${mounts[@]}" -f "$HERE/Dockerfile" "${args[@]}" "$ROOT"
        fi
        say "built loopline-$role in $((SECONDS - t0)) s"
    done
    cmd_sizes
}

cmd_sizes() {
    local eng; eng="$(engine)"
    for role in $ROLES; do
        local ref="$REGISTRY/loopline-$role:$VERSION" size
        if [ "$eng" = docker ]; then size="$(docker image inspect -f '{{.Size}}' "$ref" 2>/dev/null || true)"
        else size="$(podman_ image inspect -f '{{.Size}}' "$ref" 2>/dev/null || true)"; fi
        if [ -z "$size" ]; then echo "$ref: missing (run make images)"
        else awk -v r="$ref" -v s="$size" 'BEGIN{printf "%s: %.2f GB\n", r, s/1e9}'; fi
    done
}

case "${1:-}" in
    install) cmd_install ;;
    standin) cmd_standin ;;
    images) cmd_images ;;
    sizes) cmd_sizes ;;
    engine) engine ;;
    *) die "usage: containers/engine.sh install|standin|images|sizes|engine" ;;
esac
