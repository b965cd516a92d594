#!/usr/bin/env bash
# Build the Shoal container image (default tag shoal:dev) from the locally compiled binary,
# with no network access: the image is FROM scratch, so `docker build` pulls nothing.
#
#   docker/build-image.sh              # cargo build --release -p shoal, then the image
#                                      # (reusing ./target or ~/.cache/shoal-target, whichever
#                                      # already holds the build; CARGO_TARGET_DIR wins)
#   docker/build-image.sh --debug      # use the debug build (what the tests use: no 2nd build)
#   SHOAL_BUILD_PROFILE=debug docker/build-image.sh
#   SHOAL_BIN=/path/to/shoal docker/build-image.sh   # package this binary, build nothing
#   docker/build-image.sh --tag shoal:test           # or SHOAL_IMAGE=shoal:test
#
# The image holds /usr/local/bin/shoal, exactly the shared libraries `ldd` lists for it (with
# the dynamic loader), /etc/passwd and /etc/group naming the user `shoal` (uid/gid 10001),
# /etc/nsswitch.conf, an empty /data owned by 10001 and /tmp. It runs as 10001:10001 with
# ENTRYPOINT ["/usr/local/bin/shoal"]. `shoal healthcheck --target 127.0.0.1:PORT` is the
# container health check (see compose.yaml).
#
# compose.yaml runs every node with TLS: when docker/certs has no cluster CA yet (and
# SHOAL_CERTS names no other directory), this also runs docker/make-certs.sh, which makes the
# CA and the certificates of coordinator and worker1..worker4 there.
set -euo pipefail

usage() {
    sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'
}

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
profile="${SHOAL_BUILD_PROFILE:-release}"
image="${SHOAL_IMAGE:-shoal:dev}"

while [ $# -gt 0 ]; do
    case "$1" in
        --debug) profile=debug ;;
        --release) profile=release ;;
        --tag)
            [ $# -ge 2 ] || { echo "build-image: --tag needs a value" >&2; exit 2; }
            image="$2"
            shift
            ;;
        --tag=*) image="${1#--tag=}" ;;
        -h | --help) usage; exit 0 ;;
        *) echo "build-image: unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

case "$profile" in
    release | debug) ;;
    *) echo "build-image: SHOAL_BUILD_PROFILE must be release or debug, not '$profile'" >&2; exit 2 ;;
esac

log() { echo "== build-image: $*" >&2; }

# ---- the binary ------------------------------------------------------------------------------
if [ -n "${SHOAL_BIN:-}" ]; then
    bin="$SHOAL_BIN"
    log "using SHOAL_BIN=$bin (no cargo build)"
else
    # Build where the binary was already built: the README's `cargo run --release` (no
    # CARGO_TARGET_DIR) leaves it in ./target, the tests in ~/.cache/shoal-target. Another
    # target dir would mean a second ~30-minute build of the whole stack.
    if [ -z "${CARGO_TARGET_DIR:-}" ]; then
        CARGO_TARGET_DIR="$HOME/.cache/shoal-target"
        for dir in "$repo/target" "$HOME/.cache/shoal-target"; do
            if [ -x "$dir/$profile/shoal" ]; then
                CARGO_TARGET_DIR="$dir"
                break
            fi
        done
    fi
    export CARGO_TARGET_DIR
    cargo_args=(build -p shoal --bin shoal --manifest-path "$repo/Cargo.toml")
    if [ "$profile" = release ]; then
        cargo_args+=(--release)
    fi
    log "cargo ${cargo_args[*]} (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
    # 2 cores shared with other builds: stay out of their way.
    nice -n 19 cargo "${cargo_args[@]}"
    bin="$CARGO_TARGET_DIR/$profile/shoal"
fi
if [ ! -x "$bin" ]; then
    echo "build-image: $bin is not an executable" >&2
    exit 1
fi

# ---- the root filesystem ---------------------------------------------------------------------
ctx="$(mktemp -d "${TMPDIR:-/tmp}/shoal-image.XXXXXX")"
trap 'rm -rf "$ctx"' EXIT
root="$ctx/rootfs"
mkdir -p "$root/usr/local/bin" "$root/etc" "$root/data" "$root/tmp"
chmod 0755 "$root" "$root/usr" "$root/usr/local" "$root/usr/local/bin" "$root/etc" "$root/data"
chmod 1777 "$root/tmp"
cp "$bin" "$root/usr/local/bin/shoal"
chmod 0755 "$root/usr/local/bin/shoal"

# Shared libraries: every path ldd resolves, plus the loader (the ELF interpreter), each copied
# (dereferenced) to the path the binary will look for it at.
libs=()
if ldd_out="$(ldd "$bin" 2>&1)"; then
    if grep -q 'not found' <<<"$ldd_out"; then
        echo "build-image: ldd cannot resolve every library of $bin:" >&2
        echo "$ldd_out" >&2
        exit 1
    fi
    while read -r path; do
        libs+=("$path")
    done < <(awk '
        $2 == "=>" && $3 ~ /^\// { print $3; next }
        $1 ~ /^\// { print $1 }
    ' <<<"$ldd_out" | sort -u)
else
    case "$ldd_out" in
        *"not a dynamic executable"* | *"statically linked"*) log "static binary: no libraries" ;;
        *) echo "build-image: ldd $bin failed: $ldd_out" >&2; exit 1 ;;
    esac
fi
for lib in "${libs[@]}"; do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
    chmod 0755 "$root$lib"
done
# usrmerge hosts list /lib/...; keep /usr/lib/... working too for anything resolved there.
if [ -d "$root/lib" ] && [ ! -e "$root/usr/lib" ]; then
    ln -s ../lib "$root/usr/lib"
fi

cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/sbin/nologin
shoal:x:10001:10001:Shoal:/data:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
EOF
cat >"$root/etc/group" <<'EOF'
root:x:0:
shoal:x:10001:
nogroup:x:65534:
EOF
# glibc's resolver: /etc/hosts first, then DNS (Docker's embedded DNS resolves service names).
cat >"$root/etc/nsswitch.conf" <<'EOF'
passwd: files
group: files
hosts: files dns
EOF
chmod 0644 "$root/etc/passwd" "$root/etc/group" "$root/etc/nsswitch.conf"

# One tarball with numeric owners (root everywhere, 10001 for /data), so the image's ownership
# does not depend on who runs this script; the Dockerfile's ADD unpacks it as is.
tar --numeric-owner --owner=0 --group=0 --sort=name --mtime='2000-01-01 00:00:00Z' \
    -C "$root" --exclude=./data -cf "$ctx/rootfs.tar" .
tar --numeric-owner --owner=10001 --group=10001 --mtime='2000-01-01 00:00:00Z' \
    -C "$root" -rf "$ctx/rootfs.tar" ./data
rm -rf "$root"
cp "$repo/docker/Dockerfile" "$ctx/Dockerfile"

# ---- the image -------------------------------------------------------------------------------
labels=(--label "org.opencontainers.image.title=shoal" --label "dev.shoal.build-profile=$profile")
if rev="$(git -C "$repo" rev-parse --short HEAD 2>/dev/null)"; then
    labels+=(--label "org.opencontainers.image.revision=$rev")
fi
# Without the buildx plugin the docker CLI uses the classic builder only when BuildKit is not
# asked for; with it, BuildKit is fine (FROM scratch pulls nothing either way).
if ! docker buildx version >/dev/null 2>&1; then
    export DOCKER_BUILDKIT=0
fi
log "docker build -t $image ($(du -sh "$ctx/rootfs.tar" | cut -f1) rootfs, ${#libs[@]} libraries)"
docker build --quiet -t "$image" "${labels[@]}" "$ctx" >/dev/null

size="$(docker image inspect -f '{{.Size}}' "$image")"
human="$(numfmt --to=iec-i --suffix=B "$size" 2>/dev/null || echo "$size bytes")"
echo "built image $image ($profile, $human)"

if [ -z "${SHOAL_CERTS:-}" ] && [ ! -f "$repo/docker/certs/ca.pem" ]; then
    log "no certificates for compose.yaml yet: docker/make-certs.sh"
    "$repo/docker/make-certs.sh"
fi
