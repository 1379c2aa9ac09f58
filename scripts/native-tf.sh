#!/usr/bin/env bash
# `npm run native-tf`: installs the native TensorFlow backend (@tensorflow/tfjs-node) where its own
# install cannot download libtensorflow (no access to storage.googleapis.com).
#
#  1. If tfjs-node is already installed and works (e.g. `npm ci` with normal internet access), says so
#     and stops: nothing to do.
#  2. Gets a libtensorflow bundle laid out like Google's libtensorflow tarball
#     (libtensorflow-cpu-linux-x86_64-2.9.1.tar.gz, the name and version tfjs-node 4.22 asks for):
#     a given bundle (--bundle), the cached one, or one built from a tensorflow-cpu wheel
#     (--wheel PATH, else `pip download tensorflow-cpu`): the wheel's libtensorflow_cc.so.2 exports
#     the whole C and eager C API, libtensorflow_framework.so.2 the rest, and it ships the C headers.
#  3. Serves the bundle on 127.0.0.1 for the install only, installs tfjs-node (the version the
#     lockfile pins, package.json/package-lock.json untouched) with TFJS_NODE_BASE_URI pointing there,
#     and has node-gyp build the addon from source (the prebuilt addon is not reachable either).
#  4. Stops the server, then verifies: the addon exists, require() works, the backend is
#     'tensorflow', a matMul is right; prints the TensorFlow version the backend reports.
#
# Options (or the environment variable beside each):
#   --wheel PATH     a tensorflow-cpu wheel to build the bundle from           (NATIVE_TF_WHEEL)
#   --bundle PATH    a ready libtensorflow-cpu-linux-x86_64-2.9.1.tar.gz         (NATIVE_TF_BUNDLE)
#   --force          reinstall even if tfjs-node already works
#   --bundle-only    only make sure the bundle exists (cached) and print its path on the last line
#                    (scripts/docker-smoke.sh builds the image with it)
#   cache directory  ${XDG_CACHE_HOME:-~/.cache}/hessian-native-tf               (NATIVE_TF_CACHE)
#
# Exit codes: 0 installed and verified; 3 no wheel or bundle could be had (nothing changed);
# 1 anything else (build or verification failed).
set -Eeuo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
T0=$(date +%s)
log() { printf '[native-tf %4ss] %s\n' "$(( $(date +%s) - T0 ))" "$*"; }
die() { printf '[native-tf] FAILED: %s\n' "$*" >&2; exit 1; }

WHEEL="${NATIVE_TF_WHEEL:-}"
BUNDLE="${NATIVE_TF_BUNDLE:-}"
FORCE=0
BUNDLE_ONLY=0
while [ $# -gt 0 ]; do
  case "$1" in
    --wheel) WHEEL="${2:?--wheel needs a path}"; shift 2;;
    --bundle) BUNDLE="${2:?--bundle needs a path}"; shift 2;;
    --force) FORCE=1; shift;;
    --bundle-only) BUNDLE_ONLY=1; shift;;
    -h|--help) sed -n '2,29p' "$0"; exit 0;;
    *) die "unknown argument '$1' (accepted: --wheel PATH, --bundle PATH, --force, --bundle-only)";;
  esac
done

CACHE="${NATIVE_TF_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hessian-native-tf}"
# The version the lockfile pins (package.json's optionalDependencies).
TFJS_NODE_VERSION="$(node -p "require('./package.json').optionalDependencies['@tensorflow/tfjs-node']")"
# tfjs-node 4.22's install script asks for this file name (LIBTENSORFLOW_VERSION in its deps-constants.js).
BUNDLE_NAME="libtensorflow-cpu-linux-x86_64-2.9.1.tar.gz"
[ "$(uname -s)-$(uname -m)" = "Linux-x86_64" ] || die "only linux x86_64 is supported, not $(uname -s)-$(uname -m)"

# Verifies the installed backend; prints "tensorflow <TF version>" or the reason it does not work.
verify() {
  node -e '
    const fs = require("fs"), path = require("path");
    const dir = path.dirname(require.resolve("@tensorflow/tfjs-node/package.json"));
    const lib = path.join(dir, "lib");
    const addon = fs.existsSync(lib) && fs.readdirSync(lib).map((d) => path.join(lib, d, "tfjs_binding.node")).find(fs.existsSync);
    if (!addon) throw new Error("the addon (lib/napi-v*/tfjs_binding.node) was not built");
    const tf = require("@tensorflow/tfjs-node");
    if (tf.getBackend() !== "tensorflow") throw new Error(`backend is ${tf.getBackend()}, not tensorflow`);
    const product = tf.matMul(tf.tensor2d([[1, 2], [3, 4]]), tf.tensor2d([[5, 6], [7, 8]])).arraySync();
    if (JSON.stringify(product) !== "[[19,22],[43,50]]") throw new Error(`matMul gave ${JSON.stringify(product)}`);
    console.log(`tensorflow ${tf.backend().binding.TF_Version}`);
  ' 2>&1 | grep -v -E '^[0-9-]+ [0-9:.]+: I |^WARNING: All log messages before absl|^I0000 ' | tail -n 1
}

if [ "$BUNDLE_ONLY" = 0 ] && [ "$FORCE" = 0 ] && result="$(TF_CPP_MIN_LOG_LEVEL=2 verify)" && [ "${result%% *}" = tensorflow ]; then
  log "@tensorflow/tfjs-node is already installed and works: backend ${result} (use --force to reinstall)"
  exit 0
fi

# ----------------------------------------------------------------------------- the bundle
mkdir -p "$CACHE"
if [ -n "$BUNDLE" ]; then
  [ -s "$BUNDLE" ] || die "--bundle $BUNDLE: no such file"
  BUNDLE_SOURCE="the given bundle $BUNDLE"
elif [ -s "$CACHE/$BUNDLE_NAME" ] && [ -z "$WHEEL" ]; then
  BUNDLE="$CACHE/$BUNDLE_NAME"
  BUNDLE_SOURCE="the cached bundle $BUNDLE ($(cat "$CACHE/$BUNDLE_NAME.source" 2>/dev/null || echo 'source unknown'))"
else
  if [ -z "$WHEEL" ]; then
    log "fetching the tensorflow-cpu wheel with pip (python3 -m pip download --no-deps --only-binary=:all: tensorflow-cpu)"
    mkdir -p "$CACHE/wheel"
    if ! command -v python3 >/dev/null 2>&1 \
       || ! python3 -m pip download --no-deps --only-binary=:all: tensorflow-cpu -d "$CACHE/wheel" >"$CACHE/pip.log" 2>&1; then
      echo "[native-tf] no tensorflow-cpu wheel available (pip download failed: $(tail -n 1 "$CACHE/pip.log" 2>/dev/null || echo 'no python3')); native backend not installed"
      exit 3
    fi
    WHEEL="$(ls -t "$CACHE"/wheel/tensorflow_cpu-*.whl | head -n 1)"
  fi
  [ -s "$WHEEL" ] || die "--wheel $WHEEL: no such file"
  log "building $BUNDLE_NAME from $(basename "$WHEEL")"
  LAYOUT="$(mktemp -d "$CACHE/layout.XXXXXX")"
  trap 'rm -rf "$LAYOUT"' EXIT
  # The two libraries and the C API headers (c_api.h, eager/c_api.h and what they include).
  python3 - "$WHEEL" "$LAYOUT" <<'EOF'
import re, shutil, sys, zipfile
wheel, out = sys.argv[1], sys.argv[2]
wanted = re.compile(r'tensorflow/(libtensorflow_cc\.so\.2|libtensorflow_framework\.so\.2'
                    r'|include/(tensorflow/c/.*|xla/tsl/c/.*|(tensorflow/core|tsl)/platform/ctstring(_internal)?\.h))$')
with zipfile.ZipFile(wheel) as z:
    names = [n for n in z.namelist() if wanted.match(n) and not n.endswith('/')]
    for lib in ('libtensorflow_cc.so.2', 'libtensorflow_framework.so.2'):
        if 'tensorflow/' + lib not in names:
            sys.exit(f'{wheel} has no tensorflow/{lib}')
    for name in names:
        rel = name[len('tensorflow/'):]
        dest = f'{out}/lib/{rel}' if rel.startswith('lib') else f'{out}/{rel}'
        import os; os.makedirs(os.path.dirname(dest), exist_ok=True)
        with z.open(name) as src, open(dest, 'wb') as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
print(f'{len(names)} files taken from the wheel')
EOF
  # The wheel's libraries keep their symbol tables: without them (the exported dynamic symbols stay)
  # they are 215 MB smaller.
  if command -v strip >/dev/null 2>&1; then strip --strip-unneeded "$LAYOUT"/lib/*.so.2; fi
  # The names tfjs-node's binding.gyp links against (-ltensorflow -ltensorflow_framework) and the
  # versioned names its install script checks for.
  (cd "$LAYOUT/lib" && ln -s libtensorflow_cc.so.2 libtensorflow.so && ln -s libtensorflow_cc.so.2 libtensorflow.so.2 \
    && ln -s libtensorflow_cc.so.2 libtensorflow.so.2.9.1 && ln -s libtensorflow_framework.so.2 libtensorflow_framework.so \
    && ln -s libtensorflow_framework.so.2 libtensorflow_framework.so.2.9.1)
  tar -C "$LAYOUT" -cf - include lib | gzip -1 >"$CACHE/$BUNDLE_NAME.tmp"
  mv "$CACHE/$BUNDLE_NAME.tmp" "$CACHE/$BUNDLE_NAME"
  basename "$WHEEL" >"$CACHE/$BUNDLE_NAME.source"
  rm -rf "$LAYOUT"; trap - EXIT
  BUNDLE="$CACHE/$BUNDLE_NAME"
  BUNDLE_SOURCE="built from $(basename "$WHEEL") and cached as $BUNDLE"
fi
log "bundle: $BUNDLE_SOURCE ($(du -m "$BUNDLE" | cut -f1) MB)"
if [ "$BUNDLE_ONLY" = 1 ]; then readlink -f "$BUNDLE"; exit 0; fi

# ----------------------------------------------------------------------------- serve and install
SERVE_DIR="$(mktemp -d)"
ln -s "$(readlink -f "$BUNDLE")" "$SERVE_DIR/$BUNDLE_NAME"
SERVER_PID=""
stop_server() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; fi
  SERVER_PID=""; rm -rf "$SERVE_DIR"
}
trap stop_server EXIT
node "$ROOT/scripts/serve-file.mjs" "$SERVE_DIR/$BUNDLE_NAME" >"$SERVE_DIR/port" &
SERVER_PID=$!
for _ in $(seq 1 100); do [ -s "$SERVE_DIR/port" ] && break; sleep 0.1; done
PORT="$(cat "$SERVE_DIR/port")"
[ -n "$PORT" ] || die "the loopback file server did not start"
log "serving the bundle on http://127.0.0.1:$PORT/ (pid $SERVER_PID) for the install"

# node-gyp compiles the addon against Node's headers; offline it cannot download them.
NODEDIR=""
for d in "$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")" /usr /usr/local; do
  if [ -f "$d/include/node/node_api.h" ]; then NODEDIR="$d"; break; fi
done
[ -n "$NODEDIR" ] || log "warning: no Node headers found (include/node/node_api.h); node-gyp will try to download them"
for tool in make g++ python3; do command -v "$tool" >/dev/null || die "building the addon needs $tool"; done

log "installing @tensorflow/tfjs-node@$TFJS_NODE_VERSION (addon built from source${NODEDIR:+, Node headers from $NODEDIR/include/node})"
T_INSTALL=$(date +%s)
MANIFESTS_BEFORE="$(cat package.json package-lock.json | cksum)"
LOGFILE="$CACHE/install.log"
# --no-save: package.json and package-lock.json stay as they are (tfjs-node remains optional there).
if ! env TFJS_NODE_BASE_URI="http://127.0.0.1:$PORT/libtensorflow-" \
     npm_config_build_from_source=@tensorflow/tfjs-node \
     ${NODEDIR:+npm_config_nodedir="$NODEDIR"} \
     npm install --no-save --no-audit --no-fund --foreground-scripts "@tensorflow/tfjs-node@$TFJS_NODE_VERSION" >"$LOGFILE" 2>&1; then
  tail -n 30 "$LOGFILE" | sed 's/^/  ! /'
  die "npm install failed (log: $LOGFILE)"
fi
stop_server
trap - EXIT
log "install finished in $(( $(date +%s) - T_INSTALL )) s; loopback server stopped"

# ----------------------------------------------------------------------------- verify
# npm drops an optional package whose install script failed and still exits 0: check for real.
result="$(TF_CPP_MIN_LOG_LEVEL=2 verify || true)"
if [ "${result%% *}" != tensorflow ]; then
  grep -E 'gyp ERR|error|Error' "$LOGFILE" | head -n 20 | sed 's/^/  ! /'
  die "@tensorflow/tfjs-node does not work after the install: ${result:-no output} (log: $LOGFILE)"
fi
[ "$(cat package.json package-lock.json | cksum)" = "$MANIFESTS_BEFORE" ] || die "npm changed package.json or package-lock.json"
ADDON="$(ls node_modules/@tensorflow/tfjs-node/lib/napi-v*/tfjs_binding.node | head -n 1)"
log "verified: $ADDON loads, backend 'tensorflow', matMul [[1,2],[3,4]]x[[5,6],[7,8]] = [[19,22],[43,50]]"
echo "[native-tf] done in $(( $(date +%s) - T0 )) s: @tensorflow/tfjs-node@$TFJS_NODE_VERSION on TensorFlow ${result#tensorflow } (bundle: $BUNDLE_SOURCE)"
