#!/usr/bin/env bash
# Builds the runtime container images with podman (no Docker engine, no registry pulls) and prepares the
# local builder: tools, project-local podman configuration, a Debian-built base image and host-side wheels.
#
#   .ci/images.sh [all]          everything below, in order (the base image is cached)
#   .ci/images.sh deps           apt-get install podman buildah runc mmdebstrap when missing (root)
#   .ci/images.sh config         write .build/containers/{containers,storage}.conf
#   .ci/images.sh base           build localhost/python-base:local with mmdebstrap (skipped when it exists)
#   .ci/images.sh wheels         download the runtime's wheels on the host into .build/wheels
#   .ci/images.sh template       synthesize the local stateful template for the emulator image (dev overlay)
#   .ci/images.sh build [T...]   podman build each target (default: api worker lambda)
#   .ci/images.sh names          print "target image" for every target (the names k8s/ uses)
#   .ci/images.sh env            print the exports that point podman at the project-local configuration
#
# On a machine with a normal Docker and network, none of this is needed; see the README:
#   docker build --target api -t localhost/job-tickets-api:local .
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="$ROOT/.build"
CONTAINERS_DIR="$BUILD_DIR/containers"
WHEELS_DIR="$BUILD_DIR/wheels"
TEMPLATES_DIR="$BUILD_DIR/templates"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"

# The one place the image names are defined; k8s/ and the tests read them through `names`.
IMAGE_TAG="${IMAGE_TAG:-local}"
BASE_IMAGE="${BASE_IMAGE:-localhost/python-base:local}"
DEBIAN_SUITE="${DEBIAN_SUITE:-bookworm}"
ALL_TARGETS=(api worker lambda emulator)
DEFAULT_TARGETS=(api worker lambda)

image_name() { echo "localhost/job-tickets-$1:$IMAGE_TAG"; }

log() { echo "images: $*" >&2; }

export CONTAINERS_CONF="$CONTAINERS_DIR/containers.conf"
export CONTAINERS_STORAGE_CONF="$CONTAINERS_DIR/storage.conf"

cmd_deps() {
    local missing=()
    for tool in podman buildah runc mmdebstrap; do
        command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        return 0
    fi
    log "installing ${missing[*]}"
    local sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        podman buildah runc mmdebstrap uidmap fuse-overlayfs slirp4netns containernetworking-plugins \
        || { "${sudo[@]}" apt-get update -q && "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -q --no-install-recommends podman buildah runc mmdebstrap uidmap \
            fuse-overlayfs slirp4netns containernetworking-plugins; }
}

cmd_config() {
    mkdir -p "$CONTAINERS_DIR/storage" "$CONTAINERS_DIR/run" "$CONTAINERS_DIR/tmp"
    # crun fails on this kind of machine (cgroups); runc works once the default rlimits are dropped.
    cat >"$CONTAINERS_CONF" <<EOF
[containers]
default_ulimits = []

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
image_copy_tmp_dir = "$CONTAINERS_DIR/tmp"
EOF
    cat >"$CONTAINERS_STORAGE_CONF" <<EOF
[storage]
driver = "${STORAGE_DRIVER:-overlay}"
graphroot = "$CONTAINERS_DIR/storage"
runroot = "$CONTAINERS_DIR/run"
EOF
}

# The machine's own Debian apt source (deb822 .sources or one-line .list), so the base image is built
# from the same mirror the machine already trusts; DEBIAN_MIRROR overrides it.
apt_source() {
    if [ -n "${DEBIAN_MIRROR:-}" ]; then
        echo "deb $DEBIAN_MIRROR $DEBIAN_SUITE main"
        return 0
    fi
    local file
    for file in /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list /etc/apt/sources.list; do
        [ -f "$file" ] || continue
        if grep -v '^\s*#' "$file" | grep -q "$DEBIAN_SUITE" && grep -v '^\s*#' "$file" | grep -qi 'debian'; then
            echo "$file"
            return 0
        fi
    done
    echo "no debian apt source for $DEBIAN_SUITE in /etc/apt; set DEBIAN_MIRROR" >&2
    return 1
}

# Everything that decides the base image's content; its hash is a label, so a changed recipe rebuilds it.
BASE_PACKAGES="python3,python3-venv,ca-certificates,passwd"
BASE_DPKG_OPTS=(
    # No manuals, translations or docs in a server image (~50 MB), but keep the license files.
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*'
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright'
)

base_recipe() {
    echo "$DEBIAN_SUITE $BASE_PACKAGES ${BASE_DPKG_OPTS[*]}" | sha256sum | cut -c1-16
}

cmd_base() {
    local recipe
    recipe="$(base_recipe)"
    if podman image exists "$BASE_IMAGE" &&
        [ "$(podman image inspect --format '{{index .Labels "recipe"}}' "$BASE_IMAGE")" = "$recipe" ]; then
        log "base image $BASE_IMAGE exists"
        return 0
    fi
    local source started
    source="$(apt_source)"
    started=$(date +%s)
    log "building $BASE_IMAGE from $source"
    # passwd: useradd for the non-root user; python3-venv: a venv with pip for the wheel install.
    # shellcheck disable=SC2016 # "$1" in the hook is mmdebstrap's to expand (the chroot), not this shell's
    mmdebstrap --quiet --variant=minbase --include="$BASE_PACKAGES" "${BASE_DPKG_OPTS[@]}" \
        --aptopt='Acquire::Retries "3"' --customize-hook='rm -rf "$1"/var/cache/apt/* "$1"/var/lib/apt/lists/*' \
        "$DEBIAN_SUITE" - "$source" \
        | podman import --quiet --change 'CMD ["python3"]' --change 'ENV LANG=C.UTF-8' \
            --change "LABEL recipe=$recipe" - "$BASE_IMAGE" >/dev/null
    log "base image built in $(($(date +%s) - started)) s, $(podman image inspect --format '{{.Size}}' "$BASE_IMAGE" \
        | awk '{printf "%.0f MB", $1/1e6}')"
}

# The lock files that decide every Python package in the images (make lock writes them).
LOCKS=(runtime/requirements.lock .ci/requirements-lambda.lock .ci/requirements-emulator.lock)

cmd_wheels() {
    mkdir -p "$WHEELS_DIR"
    local wanted lock stamp="$WHEELS_DIR/.requirements"
    wanted="$(cd "$ROOT" && cat "${LOCKS[@]}")"
    # pip download asks the index even when every wheel is here (~30 s): skip it if nothing changed.
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$wanted" ]; then
        log "wheels up to date in $WHEELS_DIR"
        return 0
    fi
    # Binary wheels for the image's platform, whatever the host is, checked against the locks' hashes; the build
    # installs them with --no-index. One lock at a time: the emulator's may pin other versions than the runtime's.
    for lock in "${LOCKS[@]}"; do
        "$PYTHON" -m pip download --quiet --only-binary :all: --platform manylinux2014_x86_64 \
            --python-version 3.11 --implementation cp --no-deps --require-hashes -d "$WHEELS_DIR" \
            -r "$ROOT/$lock" 2> >(grep -v "is ignored: it is neither" >&2)
    done
    printf '%s' "$wanted" >"$stamp"
}

cmd_template() {
    mkdir -p "$TEMPLATES_DIR"
    # The local all-in-one's own synthesis and cache (runtime.local.provision), so both use one template.
    "$PYTHON" -c 'import json, sys; from runtime.local.provision import stateful_template
json.dump(stateful_template("local"), sys.stdout)' >"$TEMPLATES_DIR/stateful-local.json.$$"
    mv "$TEMPLATES_DIR/stateful-local.json.$$" "$TEMPLATES_DIR/stateful-local.json"
}

# A digest of everything the build reads (the .dockerignore allow-list, the base image): an unchanged image is
# not rebuilt, which saves ~10 s per target even when every layer would come from the cache.
context_hash() {
    (
        cd "$ROOT"
        find Dockerfile .dockerignore "${LOCKS[@]}" runtime .build/wheels \
            .build/templates -type f -not -path '*/__pycache__/*' -not -name '*.pyc' -print0 2>/dev/null \
            | sort -z | xargs -0 sha256sum
        podman image inspect --format '{{.Id}}' "$BASE_IMAGE"
    ) | sha256sum | cut -c1-16
}

cmd_build() {
    local targets=("$@")
    [ "${#targets[@]}" -gt 0 ] || targets=("${DEFAULT_TARGETS[@]}")
    local target started
    if [[ " ${targets[*]} " == *" emulator "* ]]; then
        (cd "$ROOT" && cmd_template)
    fi
    local inputs current
    inputs="$(context_hash)"
    for target in "${targets[@]}"; do
        # The stamp names the inputs and the image they produced (a label would not do: buildah drops it when
        # the final image comes from its layer cache).
        current="$inputs $(podman image inspect --format '{{.Id}}' "$(image_name "$target")" 2>/dev/null || true)"
        if [ "$current" = "$(cat "$CONTAINERS_DIR/built-$target" 2>/dev/null)" ]; then
            log "$(image_name "$target") is up to date"
            continue
        fi
        started=$(date +%s%N)
        podman build --isolation chroot --pull=never --layers \
            --build-arg "BASE_IMAGE=$BASE_IMAGE" --build-arg PIP_OFFLINE=1 \
            --target "$target" -t "$(image_name "$target")" -f "$ROOT/Dockerfile" "$ROOT" >&2
        log "$(image_name "$target") built in $(( ($(date +%s%N) - started) / 1000000 )) ms," \
            "$(podman image inspect --format '{{.Size}}' "$(image_name "$target")" | awk '{printf "%.0f MB", $1/1e6}')"
        echo "$inputs $(podman image inspect --format '{{.Id}}' "$(image_name "$target")")" >"$CONTAINERS_DIR/built-$target"
    done
}

cmd_names() {
    local target
    for target in "${ALL_TARGETS[@]}"; do
        echo "$target $(image_name "$target")"
    done
}

cmd_env() {
    echo "export CONTAINERS_CONF=$CONTAINERS_CONF"
    echo "export CONTAINERS_STORAGE_CONF=$CONTAINERS_STORAGE_CONF"
}

# One build at a time per checkout (parallel test sessions share .build/): the others wait, then find the
# base image, the wheels and the layers already there.
lock() {
    mkdir -p "$BUILD_DIR"
    exec 9>"$BUILD_DIR/images.lock"
    flock 9
}

main() {
    local command="${1:-all}"
    [ "$#" -eq 0 ] || shift
    case "$command" in
        names | env) ;;
        *) lock ;;
    esac
    case "$command" in
        deps) cmd_deps ;;
        config) cmd_config ;;
        base) cmd_config && cmd_base ;;
        wheels) cmd_wheels ;;
        template) cd "$ROOT" && cmd_template ;;
        build) cmd_config && cmd_build "$@" ;;
        names) cmd_names ;;
        env) cmd_env ;;
        all) cmd_deps && cmd_config && cmd_base && cmd_wheels && cmd_build "$@" ;;
        *) echo "unknown command: $command (deps, config, base, wheels, template, build, names, env, all)" >&2; return 2 ;;
    esac
}

main "$@"
