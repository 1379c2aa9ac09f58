#!/usr/bin/env bash
# End-to-end smoke test of the container image (`npm run docker:smoke`).
#
#  1. Finds a docker daemon; if none is reachable, starts Debian's dockerd itself
#     (installing docker.io via apt-get if needed) on a private socket with private
#     data/exec roots under a temp dir, with no bridge, no iptables, no NAT.
#  2. Makes sure the base image exists: pull it, else build a local stand-in with
#     scripts/make-local-base-image.sh.
#  3. Builds the image (BuildKit through Debian's client, falling back to the legacy
#     builder), always with --network host. With the native TensorFlow bundle
#     (`scripts/native-tf.sh --bundle-only`: cached, or built from the tensorflow-cpu wheel)
#     it serves the bundle on 127.0.0.1 during the build and passes
#     --build-arg TFJS_NODE_BASE_URI, and then requires /ready and the answer's meta to say
#     tensorflow.
#  4. Runs it with --network host on 127.0.0.1:$SMOKE_PORT, waits for the HEALTHCHECK
#     to report healthy, prints image size, time to healthy and the backend of /ready.
#  5. POSTs a 2x2 dense-layer example to /v1/hessian and checks loss, gradient and the
#     4x4 Hessian against values computed here independently (tolerance 1e-5).
#  6. Stops and removes the container, stops the dockerd it started (by PID) and
#     removes its temp dirs.
#
# Environment knobs (all optional):
#   SMOKE_PORT=3917             port the container listens on (host network, 127.0.0.1)
#   SMOKE_IMAGE=hessian-service:smoke
#   BASE_IMAGE=node:20-bookworm-slim
#   SMOKE_HEALTH_TIMEOUT=120    seconds to wait for "healthy"
#   SMOKE_BUILD_TIMEOUT=1500    seconds per docker build attempt
#   SMOKE_BUILDER=auto          auto | buildkit | legacy
#   SMOKE_VERBOSE=0             1: stream the whole build log
#   SMOKE_LOG_DIR=/var/tmp/hessian-docker-smoke   build and container logs are kept here
#   SMOKE_DOCKER_DATA_ROOT=     persistent data-root for a dockerd this script starts
#                               (kept between runs, so images and build cache survive)
#   SMOKE_CONTEXT=<repo root>   build context (must hold the Dockerfile)
#   SMOKE_EXTRA_CA_FILE=        extra PEM file to trust inside the build (in addition to
#                               the host's /usr/local/share/ca-certificates)
#   SMOKE_NATIVE_TF=auto        auto: build with the libtensorflow bundle when one can be had
#                               (then expect tensorflow); 0: the normal build (tfjs-node downloads
#                               libtensorflow itself, or the image falls back to wasm)
set -Eeuo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CONTEXT="${SMOKE_CONTEXT:-$ROOT}"
IMAGE="${SMOKE_IMAGE:-hessian-service:smoke}"
BASE_IMAGE="${BASE_IMAGE:-node:20-bookworm-slim}"
PORT="${SMOKE_PORT:-3917}"
HEALTH_TIMEOUT="${SMOKE_HEALTH_TIMEOUT:-120}"
BUILD_TIMEOUT="${SMOKE_BUILD_TIMEOUT:-1500}"
BUILDER="${SMOKE_BUILDER:-auto}"
VERBOSE="${SMOKE_VERBOSE:-0}"
LOG_DIR="${SMOKE_LOG_DIR:-/var/tmp/hessian-docker-smoke}"
TOLERANCE=1e-5
CONTAINER="hessian-smoke-$$"

T_START=$(date +%s)
SMOKE_TMP=""
DOCKERD_PID=""
BUNDLE_SERVER_PID=""
EXPECT_BACKEND=""
STARTED_DAEMON=0
CREATED_POLICY_RC=0
CID=""
STAGE="start"

log() { printf '[docker-smoke %4ss] %s\n' "$(( $(date +%s) - T_START ))" "$*"; }
die() { printf '\n[docker-smoke] FAILED during %s: %s\n' "$STAGE" "$*" >&2; exit 1; }
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
now_ms() { date +%s%3N; }

command -v node >/dev/null 2>&1 || { echo "[docker-smoke] node is required on the host" >&2; exit 1; }
[ "$(id -u)" = 0 ] || [ -n "${DOCKER_HOST:-}" ] || [ -w /var/run/docker.sock ] \
  || echo "[docker-smoke] note: not root; starting a private dockerd will not be possible" >&2

mkdir -p "$LOG_DIR"
rm -f "$LOG_DIR"/build-*.log "$LOG_DIR"/response.json "$LOG_DIR"/container.log
SMOKE_TMP="$(mktemp -d /var/tmp/hessian-smoke.XXXXXX)"

# ----------------------------------------------------------------------------- cleanup
stop_dockerd() {
  [ -n "$DOCKERD_PID" ] || return 0
  local containerd_pid="" f
  f="$SMOKE_TMP/exec/containerd/containerd.pid"
  [ -r "$f" ] && containerd_pid="$(cat "$f" 2>/dev/null || true)"
  if kill -0 "$DOCKERD_PID" 2>/dev/null; then
    log "stopping the dockerd this script started (pid $DOCKERD_PID)"
    kill -TERM "$DOCKERD_PID" 2>/dev/null || true
    for _ in $(seq 1 60); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.5; done
    if kill -0 "$DOCKERD_PID" 2>/dev/null; then
      log "dockerd did not stop in 30 s; killing pid $DOCKERD_PID"
      kill -KILL "$DOCKERD_PID" 2>/dev/null || true
    fi
    wait "$DOCKERD_PID" 2>/dev/null || true
  fi
  # dockerd normally stops the containerd it manages; make sure (by its pid).
  if [ -n "$containerd_pid" ] && kill -0 "$containerd_pid" 2>/dev/null \
     && grep -q containerd "/proc/$containerd_pid/comm" 2>/dev/null; then
    kill -TERM "$containerd_pid" 2>/dev/null || true
    for _ in $(seq 1 20); do kill -0 "$containerd_pid" 2>/dev/null || break; sleep 0.5; done
    kill -KILL "$containerd_pid" 2>/dev/null || true
  fi
  DOCKERD_PID=""
}

stop_bundle_server() {
  [ -n "$BUNDLE_SERVER_PID" ] || return 0
  kill "$BUNDLE_SERVER_PID" 2>/dev/null || true
  wait "$BUNDLE_SERVER_PID" 2>/dev/null || true
  BUNDLE_SERVER_PID=""
  log "stopped the loopback server of the libtensorflow bundle"
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  set +e
  stop_bundle_server
  if [ -n "$CID" ]; then
    if [ "$rc" != 0 ]; then
      echo "----- last container logs -----" >&2
      timeout 20 "$DOCKER" logs --tail 40 "$CID" >&2 2>&1
      echo "-------------------------------" >&2
    fi
    timeout 60 "$DOCKER" rm -f -v "$CID" >/dev/null 2>&1
  fi
  if [ "$STARTED_DAEMON" = 1 ]; then
    stop_dockerd
    unmount_under "$SMOKE_TMP"
    [ -n "${SMOKE_DOCKER_DATA_ROOT:-}" ] && unmount_under "$SMOKE_DOCKER_DATA_ROOT"
  fi
  if [ "$CREATED_POLICY_RC" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
  if [ -n "$SMOKE_TMP" ] && [ -d "$SMOKE_TMP" ]; then
    [ -f "$SMOKE_TMP/dockerd.log" ] && cp "$SMOKE_TMP/dockerd.log" "$LOG_DIR/dockerd.log" 2>/dev/null
    rm -rf --one-file-system "$SMOKE_TMP"
  fi
  if [ "$rc" = 0 ]; then
    log "cleanup done"
  else
    printf '[docker-smoke] exit %s after %ss (logs in %s)\n' "$rc" "$(( $(date +%s) - T_START ))" "$LOG_DIR" >&2
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'die "interrupted"' INT TERM
trap 'rc=$?; [ "$rc" = 0 ] || printf "[docker-smoke] command failed (exit %s) at line %s: %s\n" "$rc" "$LINENO" "$BASH_COMMAND" >&2' ERR

# ----------------------------------------------------------------------------- apt

# Like apt_install, but package scripts may not start services (a system dockerd would create a bridge).
apt_install_no_services() {
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d
    CREATED_POLICY_RC=1
  fi
  apt_install "$@"
  if [ "$CREATED_POLICY_RC" = 1 ]; then rm -f /usr/sbin/policy-rc.d; CREATED_POLICY_RC=0; fi
}

# ----------------------------------------------------------------------------- daemon
pick_client() {
  # Debian's client (/usr/bin/docker) can do BuildKit without buildx; prefer it.
  if [ -x /usr/bin/docker ]; then DOCKER=/usr/bin/docker
  elif command -v docker >/dev/null 2>&1; then DOCKER="$(command -v docker)"
  else DOCKER=""; fi
}
daemon_ok() { [ -n "$DOCKER" ] && timeout 20 "$DOCKER" info >/dev/null 2>&1; }

start_private_dockerd() {
  local driver=$1
  DATA_ROOT="${SMOKE_DOCKER_DATA_ROOT:-$SMOKE_TMP/data}"
  mkdir -p "$DATA_ROOT" "$SMOKE_TMP/exec"
  echo '{}' >"$SMOKE_TMP/daemon.json"
  export DOCKER_HOST="unix://$SMOKE_TMP/docker.sock"
  log "starting private dockerd (storage driver $driver, socket $SMOKE_TMP/docker.sock)"
  dockerd \
    --host="$DOCKER_HOST" \
    --data-root="$DATA_ROOT" \
    --exec-root="$SMOKE_TMP/exec" \
    --pidfile="$SMOKE_TMP/docker.pid" \
    --config-file="$SMOKE_TMP/daemon.json" \
    --bridge=none --iptables=false --ip6tables=false \
    --ip-forward=false --ip-masq=false \
    --storage-driver="$driver" \
    >"$SMOKE_TMP/dockerd.log" 2>&1 &
  DOCKERD_PID=$!
  STARTED_DAEMON=1

  for _ in $(seq 1 120); do
    if ! kill -0 "$DOCKERD_PID" 2>/dev/null; then
      wait "$DOCKERD_PID" 2>/dev/null || true
      DOCKERD_PID=""
      return 1
    fi
    daemon_ok && return 0
    sleep 0.5
  done
  log "dockerd did not answer within 60 s"
  stop_dockerd
  return 1
}

STAGE="docker daemon"
pick_client
DOCKER_INFO_NOTE=""
if daemon_ok; then
  log "using the reachable docker daemon (${DOCKER_HOST:-default socket}); it is left running"
else
  command -v dockerd >/dev/null 2>&1 || { log "dockerd not installed: installing Debian's docker.io"; apt_install_no_services docker.io; }
  pick_client
  [ -n "$DOCKER" ] || die "no docker client after installing docker.io"
  if ! start_private_dockerd overlay2; then
    tail -n 5 "$SMOKE_TMP/dockerd.log" | sed 's/^/  dockerd: /'
    log "overlay2 failed here; retrying with the vfs storage driver"
    unmount_under "$SMOKE_TMP"
    [ -z "${SMOKE_DOCKER_DATA_ROOT:-}" ] && rm -rf --one-file-system "$SMOKE_TMP/data" "$SMOKE_TMP/exec"
    start_private_dockerd vfs || { tail -n 20 "$SMOKE_TMP/dockerd.log" >&2; die "could not start dockerd"; }
  fi
  DOCKER_INFO_NOTE=" (private, pid $DOCKERD_PID)"
fi
log "docker: client $DOCKER, server $("$DOCKER" version -f '{{.Server.Version}}' 2>/dev/null)$DOCKER_INFO_NOTE, storage $("$DOCKER" info -f '{{.Driver}}' 2>/dev/null)"

# ----------------------------------------------------------------------------- base image
STAGE="base image"
if "$DOCKER" image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  log "base image $BASE_IMAGE present"
elif timeout 90 "$DOCKER" pull -q "$BASE_IMAGE" >"$LOG_DIR/pull.log" 2>&1; then
  log "pulled $BASE_IMAGE"
else
  log "cannot pull $BASE_IMAGE ($(tail -n 1 "$LOG_DIR/pull.log" | cut -c1-120)); building a local stand-in"
  t=$(date +%s)
  DOCKER="$DOCKER" timeout 1800 bash "$ROOT/scripts/make-local-base-image.sh" "$BASE_IMAGE" \
    || die "scripts/make-local-base-image.sh failed"
  log "local base image ready in $(( $(date +%s) - t )) s"
fi

# ----------------------------------------------------------------------------- build
STAGE="docker build"
CA_FILES=()
while IFS= read -r -d '' f; do CA_FILES+=("$f"); done \
  < <(find /usr/local/share/ca-certificates -type f -name '*.crt' -print0 2>/dev/null | sort -z)
[ -n "${SMOKE_EXTRA_CA_FILE:-}" ] && CA_FILES+=("$SMOKE_EXTRA_CA_FILE")
BUILD_ARGS=(--network host -t "$IMAGE" --build-arg "BASE_IMAGE=$BASE_IMAGE")
if [ "${#CA_FILES[@]}" -gt 0 ]; then
  BUILD_ARGS+=(--build-arg "EXTRA_CA_CERTS_B64=$(cat "${CA_FILES[@]}" | base64 -w0)")
  log "passing ${#CA_FILES[@]} local CA certificate file(s) to the build"
fi

# The native TensorFlow backend: the libtensorflow bundle, served on loopback for the build only.
if [ "${SMOKE_NATIVE_TF:-auto}" != 0 ]; then
  set +e
  BUNDLE_PATH="$(bash "$ROOT/scripts/native-tf.sh" --bundle-only | tail -n 1)"; bundle_rc=$?
  set -e
  if [ "$bundle_rc" = 0 ] && [ -s "$BUNDLE_PATH" ]; then
    node "$ROOT/scripts/serve-file.mjs" "$BUNDLE_PATH" >"$SMOKE_TMP/bundle-port" &
    BUNDLE_SERVER_PID=$!
    for _ in $(seq 1 100); do [ -s "$SMOKE_TMP/bundle-port" ] && break; sleep 0.1; done
    [ -s "$SMOKE_TMP/bundle-port" ] || die "the loopback server of the libtensorflow bundle did not start"
    BUILD_ARGS+=(--build-arg "TFJS_NODE_BASE_URI=http://127.0.0.1:$(cat "$SMOKE_TMP/bundle-port")/libtensorflow-")
    EXPECT_BACKEND=tensorflow
    log "libtensorflow bundle $BUNDLE_PATH served on 127.0.0.1:$(cat "$SMOKE_TMP/bundle-port") for the build (pid $BUNDLE_SERVER_PID); expecting backend tensorflow"
  elif [ "$bundle_rc" = 3 ]; then
    log "no libtensorflow bundle can be had here (no tensorflow-cpu wheel); the normal build decides the backend"
  else
    die "scripts/native-tf.sh --bundle-only failed (exit $bundle_rc)"
  fi
fi

run_build() {  # $1 = buildkit | legacy
  local mode=$1 logf="$LOG_DIR/build-$1.log" rc
  local -a cmd
  if [ "$mode" = buildkit ]; then
    cmd=(env DOCKER_BUILDKIT=1 "$DOCKER" build --progress=plain "${BUILD_ARGS[@]}" "$CONTEXT")
  else
    cmd=(env DOCKER_BUILDKIT=0 "$DOCKER" build "${BUILD_ARGS[@]}" "$CONTEXT")
  fi
  log "docker build ($mode builder, --network host); log: $logf"
  set +e
  if [ "$VERBOSE" = 1 ]; then
    timeout "$BUILD_TIMEOUT" "${cmd[@]}" 2>&1 | tee "$logf"; rc=${PIPESTATUS[0]}
  else
    timeout "$BUILD_TIMEOUT" "${cmd[@]}" >"$logf" 2>&1; rc=$?
  fi
  set -e
  # The lines the Dockerfile prints about itself (CA certs, toolchain, backend).
  grep -E 'build: |tfjs backend check|\(node\) ' "$logf" | grep -v -E 'RUN |echo ' \
    | sed -E 's/^#[0-9]+ [0-9.]+ //; s/^/  | /' | awk '!seen[$0]++' || true
  if [ "$rc" = 124 ]; then log "$mode build timed out after ${BUILD_TIMEOUT}s"; fi
  if [ "$rc" != 0 ]; then
    log "$mode build failed (exit $rc); last lines:"
    tail -n 40 "$logf" | sed 's/^/  ! /'
  fi
  return "$rc"
}

T_BUILD=$(date +%s)
case "$BUILDER" in
  buildkit) run_build buildkit || die "docker build failed (BuildKit)";;
  legacy)   run_build legacy || die "docker build failed (legacy builder)";;
  *)        run_build buildkit || { log "falling back to the legacy builder"; run_build legacy; } \
              || die "docker build failed with both builders";;
esac
BUILD_SECS=$(( $(date +%s) - T_BUILD ))
stop_bundle_server
# Which backend the image can offer, asked of the image itself (the build step's
# message is missing from the log when that step came from the build cache).
if timeout 120 "$DOCKER" run --rm --network host --entrypoint node "$IMAGE" \
     -e "require('@tensorflow/tfjs-node')" >/dev/null 2>&1; then
  BUILD_BACKEND="@tensorflow/tfjs-node loads in the image (native tensorflow available)"
else
  BUILD_BACKEND="@tensorflow/tfjs-node absent in the image (wasm fallback expected)"
fi
IMAGE_BYTES="$("$DOCKER" image inspect -f '{{.Size}}' "$IMAGE")"
IMAGE_MB="$(awk -v b="$IMAGE_BYTES" 'BEGIN { printf "%.1f", b / 1000 / 1000 }')"
log "built $IMAGE in ${BUILD_SECS}s; image size ${IMAGE_MB} MB (${IMAGE_BYTES} bytes)"

# ----------------------------------------------------------------------------- run
STAGE="container start"
# HTTP helper (node): GET prints the body; exit 2 on connection error.
cat >"$SMOKE_TMP/http.mjs" <<'EOF'
import http from 'node:http';
const [method, url, bodyFile] = process.argv.slice(2);
const body = bodyFile ? (await import('node:fs')).readFileSync(bodyFile) : undefined;
const req = http.request(url, {
  method, timeout: 60000,
  headers: body ? { 'content-type': 'application/json', 'content-length': body.length } : {},
}, (res) => {
  let data = '';
  res.setEncoding('utf8');
  res.on('data', (c) => { data += c; });
  res.on('end', () => {
    process.stdout.write(data);
    process.exit(res.statusCode >= 200 && res.statusCode < 300 ? 0 : 1);
  });
});
req.on('timeout', () => req.destroy(new Error('timeout')));
req.on('error', (e) => { process.stderr.write(`${e.message}\n`); process.exit(2); });
if (body) req.write(body);
req.end();
EOF
http() { timeout 90 node "$SMOKE_TMP/http.mjs" "$@"; }

if node -e "const s=require('net').createServer();s.once('error',()=>process.exit(1));s.listen($PORT,'127.0.0.1',()=>s.close())"; then :; else
  die "port $PORT on 127.0.0.1 is already in use; set SMOKE_PORT"
fi

T_RUN_MS=$(now_ms)
CID="$("$DOCKER" run -d --name "$CONTAINER" --network host \
        -e PORT="$PORT" -e HOST=127.0.0.1 "$IMAGE")" || die "docker run failed"
log "started container ${CID:0:12} (--network host, 127.0.0.1:$PORT)"

STAGE="waiting for healthy"
FIRST_200_MS=""
HEALTHY_MS=""
DEADLINE=$(( $(date +%s) + HEALTH_TIMEOUT ))
while [ "$(date +%s)" -lt "$DEADLINE" ]; do
  state="$("$DOCKER" inspect -f '{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}nohealth{{end}}' "$CID" 2>/dev/null || echo 'gone gone')"
  case "$state" in
    "running healthy") HEALTHY_MS=$(( $(now_ms) - T_RUN_MS )); break;;
    "running nohealth") die "image has no HEALTHCHECK";;
    running*) ;;
    *) die "container is not running (state: $state, exit code $("$DOCKER" inspect -f '{{.State.ExitCode}}' "$CID" 2>/dev/null))";;
  esac
  if [ -z "$FIRST_200_MS" ] && http GET "http://127.0.0.1:$PORT/health" >/dev/null 2>&1; then
    FIRST_200_MS=$(( $(now_ms) - T_RUN_MS ))
  fi
  sleep 0.5
done
[ -n "$HEALTHY_MS" ] || die "container not healthy after ${HEALTH_TIMEOUT}s (health: $("$DOCKER" inspect -f '{{json .State.Health}}' "$CID" 2>/dev/null | cut -c1-400))"
[ -n "$FIRST_200_MS" ] || FIRST_200_MS=$HEALTHY_MS
fmt_s() { awk -v ms="$1" 'BEGIN { printf "%.1f", ms / 1000 }'; }
# (a Go duration such as "5s"; empty means docker's default of 30s)
HC_INTERVAL="$("$DOCKER" image inspect -f '{{if .Config.Healthcheck}}{{.Config.Healthcheck.Interval}}{{end}}' "$IMAGE" 2>/dev/null || true)"
[ -n "$HC_INTERVAL" ] && [ "$HC_INTERVAL" != 0s ] || HC_INTERVAL="30s (default)"
log "healthy after $(fmt_s "$HEALTHY_MS") s (first /health 200 after $(fmt_s "$FIRST_200_MS") s; HEALTHCHECK interval $HC_INTERVAL)"

STAGE="GET /health"
HEALTH_BODY="$(http GET "http://127.0.0.1:$PORT/health")" || die "GET /health failed: $HEALTH_BODY"
log "GET /health -> $HEALTH_BODY"

STAGE="GET /ready"
# /health answers before the workers have loaded their backend (native TensorFlow takes a few
# seconds more than wasm): /ready is 503 "starting" until then.
READY_DEADLINE=$(( $(date +%s) + HEALTH_TIMEOUT ))
until READY_BODY="$(http GET "http://127.0.0.1:$PORT/ready")"; do
  [ "$(date +%s)" -lt "$READY_DEADLINE" ] || die "GET /ready not 200 after ${HEALTH_TIMEOUT}s: $READY_BODY"
  sleep 0.5
done
BACKEND="$(printf '%s' "$READY_BODY" | node -e "let s='';process.stdin.on('data',d=>s+=d).on('end',()=>{const j=JSON.parse(s);if(!['tensorflow','wasm','cpu'].includes(j.backend)){console.error('bad backend: '+j.backend);process.exit(1)}process.stdout.write(j.backend)})")" \
  || die "/ready has no valid \"backend\": $READY_BODY"
log "GET /ready -> $READY_BODY"
log "backend: $BACKEND (image: ${BUILD_BACKEND:-unknown})"
[ -z "$EXPECT_BACKEND" ] || [ "$BACKEND" = "$EXPECT_BACKEND" ] \
  || die "/ready says backend $BACKEND, but the image was built with libtensorflow: expected $EXPECT_BACKEND"

# ----------------------------------------------------------------------------- hessian
STAGE="POST /v1/hessian"
cat >"$SMOKE_TMP/request.json" <<'EOF'
{"model":{"inputShape":[2],"layers":[{"type":"dense","units":2,"activation":"linear","useBias":false,"kernel":[[1,2],[3,4]]}]},"loss":"meanSquaredError","data":{"x":[[1,2],[3,-1],[0.5,0.5]],"y":[[1,0],[0,1],[1,1]]}}
EOF
RESP_FILE="$SMOKE_TMP/response.json"
T_POST=$(now_ms)
if ! http POST "http://127.0.0.1:$PORT/v1/hessian" "$SMOKE_TMP/request.json" >"$RESP_FILE"; then
  cp "$RESP_FILE" "$LOG_DIR/response.json" 2>/dev/null || true
  die "POST /v1/hessian failed: $(cut -c1-2000 "$RESP_FILE")"
fi
POST_MS=$(( $(now_ms) - T_POST ))
cp "$RESP_FILE" "$LOG_DIR/response.json"

# Independent expectation: L = mean over batch b and units k of (x_b W - y_b)_k^2 with
# W = kernel (2x2), parameters flattened as kernel[i][k] -> i*2+k.
#   dL/dW[i,k]      = 2/(B*m) * sum_b x[b,i] * r[b,k],   r = xW - y
#   H[(i,k),(j,l)]  = 2/(B*m) * sum_b x[b,i] * x[b,j] * [k==l]
cat >"$SMOKE_TMP/check.mjs" <<'EOF'
import fs from 'node:fs';
const [reqFile, respFile, tolArg] = process.argv.slice(2);
const tol = Number(tolArg);
const req = JSON.parse(fs.readFileSync(reqFile, 'utf8'));
const raw = fs.readFileSync(respFile, 'utf8');
let res;
try { res = JSON.parse(raw); } catch { console.error(`response is not JSON: ${raw.slice(0, 2000)}`); process.exit(1); }
const W = req.model.layers[0].kernel, X = req.data.x, Y = req.data.y;
const B = X.length, n = W.length, m = W[0].length, P = n * m;
const c = 2 / (B * m);
let loss = 0;
const grad = new Array(P).fill(0);
const H = Array.from({ length: P }, () => new Array(P).fill(0));
for (let b = 0; b < B; b++) {
  for (let k = 0; k < m; k++) {
    let out = 0;
    for (let i = 0; i < n; i++) out += X[b][i] * W[i][k];
    const r = out - Y[b][k];
    loss += (r * r) / (B * m);
    for (let i = 0; i < n; i++) grad[i * m + k] += c * X[b][i] * r;
  }
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) for (let k = 0; k < m; k++)
    H[i * m + k][j * m + k] += c * X[b][i] * X[b][j];
}
const errors = [];
const close = (a, e) => typeof a === 'number' && Number.isFinite(a) && Math.abs(a - e) <= tol * Math.max(1, Math.abs(e));
if (res.size !== P) errors.push(`size: expected ${P}, got ${JSON.stringify(res.size)}`);
if (!Array.isArray(res.parameters)) errors.push('parameters: missing or not an array');
if (!close(res.loss, loss)) errors.push(`loss: expected ${loss}, got ${JSON.stringify(res.loss)}`);
if (!Array.isArray(res.gradient) || res.gradient.length !== P) errors.push(`gradient: expected ${P} numbers, got ${JSON.stringify(res.gradient)}`);
else grad.forEach((g, p) => { if (!close(res.gradient[p], g)) errors.push(`gradient[${p}]: expected ${g}, got ${res.gradient[p]}`); });
let maxErr = 0;
if (!Array.isArray(res.hessian) || res.hessian.length !== P || !res.hessian.every((r) => Array.isArray(r) && r.length === P))
  errors.push(`hessian: expected ${P}x${P} array, got ${JSON.stringify(res.hessian)}`);
else for (let p = 0; p < P; p++) for (let q = 0; q < P; q++) {
  const a = res.hessian[p][q], e = H[p][q];
  if (typeof a === 'number') maxErr = Math.max(maxErr, Math.abs(a - e));
  if (!(typeof a === 'number' && Math.abs(a - e) <= tol)) errors.push(`hessian[${p}][${q}]: expected ${e}, got ${a}`);
}
if (res.meta?.dtype !== 'float32') errors.push(`meta.dtype: expected "float32", got ${JSON.stringify(res.meta?.dtype)}`);
const fmt = (M) => M.map((r) => '    [' + r.map((v) => (typeof v === 'number' ? v.toFixed(6) : String(v)).padStart(10)).join(' ') + ']').join('\n');
console.log(`  parameters: ${JSON.stringify(res.parameters)}`);
console.log(`  size: ${res.size}  loss: ${res.loss} (expected ${loss.toFixed(6)})`);
console.log(`  gradient: ${JSON.stringify(res.gradient)} (expected ${JSON.stringify(grad.map((g) => +g.toFixed(6)))})`);
if (Array.isArray(res.hessian)) console.log(`  hessian (returned):\n${fmt(res.hessian)}`);
console.log(`  hessian (expected):\n${fmt(H)}`);
console.log(`  meta: ${JSON.stringify(res.meta)}`);
if (errors.length) {
  console.error(`MISMATCH (${errors.length}):\n  ${errors.slice(0, 30).join('\n  ')}`);
  console.error(`raw response: ${raw.slice(0, 4000)}`);
  process.exit(1);
}
console.log(`  OK: loss, gradient and 4x4 Hessian match the independent computation (max |dH| = ${maxErr.toExponential(2)}, tol ${tol})`);
EOF
log "POST /v1/hessian (2x2 dense, MSE) answered in ${POST_MS} ms"
node "$SMOKE_TMP/check.mjs" "$SMOKE_TMP/request.json" "$RESP_FILE" "$TOLERANCE" \
  || die "the /v1/hessian answer does not match the expected values (response kept in $LOG_DIR/response.json)"
RESP_BACKEND="$(node -e "const j=JSON.parse(require('fs').readFileSync(process.argv[1],'utf8'));process.stdout.write(String(j.meta&&j.meta.backend))" "$RESP_FILE")"
[ "$RESP_BACKEND" = "$BACKEND" ] || log "WARNING: meta.backend ($RESP_BACKEND) differs from /ready backend ($BACKEND)"
[ -z "$EXPECT_BACKEND" ] || [ "$RESP_BACKEND" = "$EXPECT_BACKEND" ] \
  || die "the answer's meta.backend is $RESP_BACKEND, expected $EXPECT_BACKEND"

# ----------------------------------------------------------------------------- volume
STAGE="results volume"
"$DOCKER" exec "$CID" sh -c 'id -un; test "$(id -u)" != 0 && d="${RESULTS_DIR:?}" && touch "$d/.smoke-write-test" && rm -f "$d/.smoke-write-test"' >"$SMOKE_TMP/vol.txt" 2>&1 \
  || die "RESULTS_DIR not writable by the non-root user: $(cat "$SMOKE_TMP/vol.txt")"
VOLS="$("$DOCKER" inspect -f '{{range .Mounts}}{{.Destination}} {{end}}' "$CID")"
log "runs as user '$(head -n 1 "$SMOKE_TMP/vol.txt")'; RESULTS_DIR writable; volumes: ${VOLS:-none}"

# ----------------------------------------------------------------------------- stop
STAGE="docker stop"
T_STOP=$(now_ms)
timeout 60 "$DOCKER" stop -t 20 "$CID" >/dev/null || die "docker stop failed"
STOP_MS=$(( $(now_ms) - T_STOP ))
EXIT_CODE="$("$DOCKER" inspect -f '{{.State.ExitCode}}' "$CID")"
"$DOCKER" logs "$CID" >"$LOG_DIR/container.log" 2>&1 || true
if [ "$STOP_MS" -ge 19000 ] || [ "$EXIT_CODE" = 137 ]; then
  log "WARNING: the service did not exit on SIGTERM within 20 s (exit code $EXIT_CODE); it was killed"
else
  log "stopped on SIGTERM in $(fmt_s "$STOP_MS") s (exit code $EXIT_CODE)"
fi
timeout 60 "$DOCKER" rm -v "$CID" >/dev/null || die "docker rm failed"
CID=""

STAGE="summary"
echo
echo "================ docker smoke: PASSED ================"
echo "image          $IMAGE (base $BASE_IMAGE)"
echo "image size     ${IMAGE_MB} MB"
echo "build time     ${BUILD_SECS} s"
echo "time to healthy $(fmt_s "$HEALTHY_MS") s (first /health 200: $(fmt_s "$FIRST_200_MS") s)"
echo "backend        $BACKEND in /ready and the answer's meta (image: ${BUILD_BACKEND:-unknown})"
echo "hessian POST   ${POST_MS} ms, matches expectation (tol $TOLERANCE)"
echo "SIGTERM stop   $(fmt_s "$STOP_MS") s, exit code $EXIT_CODE"
echo "total          $(( $(date +%s) - T_START )) s"
echo "======================================================"
