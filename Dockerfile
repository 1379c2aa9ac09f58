# Hessian service container image.
#
#   docker build --network host -t hessian-service .
#   docker run --rm -p 3000:3000 hessian-service          # or --network host -e PORT=...
#
# Works with BuildKit and with the legacy builder.
#
# Build arguments:
#   BASE_IMAGE          Node 20 base image for both stages (default node:20-bookworm-slim;
#                       scripts/make-local-base-image.sh builds a local stand-in).
#   EXTRA_CA_CERTS_B64  base64 of one or more PEM CA certificates to trust during the
#                       build (npm behind a TLS-intercepting proxy), e.g.
#                         --build-arg EXTRA_CA_CERTS_B64="$(cat my-ca.crt | base64 -w0)"
#                       Used in the build stage only; nothing of it reaches the runtime image.
#   BUILD_TOOLCHAIN     auto (default): try to apt-get python3/make/g++ so node-gyp can build
#                       @tensorflow/tfjs-node from source if its prebuilt binary is missing;
#                       skipped silently when apt is unreachable. 0: skip.
#   TFJS_NODE_BASE_URI  where libtensorflow comes from when Google's storage is out of reach:
#                       the URL prefix tfjs-node's install appends
#                       "cpu-linux-x86_64-2.9.1.tar.gz" to, e.g. a bundle built by
#                       `npm run native-tf` and served on the build host:
#                         --network host --build-arg TFJS_NODE_BASE_URI=http://127.0.0.1:8000/libtensorflow-
#                       (npm run docker:smoke does exactly that). The addon is then compiled
#                       from source, and a build whose tfjs-node does not load FAILS.
#
# @tensorflow/tfjs-node is an optional dependency: its install downloads libtensorflow (from
# Google's storage, the normal way, or TFJS_NODE_BASE_URI). Without TFJS_NODE_BASE_URI, when that
# download fails, npm drops the package and the service falls back to the WebAssembly backend.
# The build log says which one the image got ("tfjs backend check: ..."). The runtime image keeps
# of libtensorflow only its two shared libraries, stripped of their symbol tables (no headers, no
# build intermediates).

ARG BASE_IMAGE=node:20-bookworm-slim

# ---------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS build
ARG EXTRA_CA_CERTS_B64=""
ARG BUILD_TOOLCHAIN=auto
ARG TFJS_NODE_BASE_URI=""
WORKDIR /src
SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# Optional extra CA certificates. /usr/local/bin/build-env is sourced by the steps
# that reach the network: it points NODE_EXTRA_CA_CERTS at a bundle holding the
# base image's extra CAs (if any) plus the given ones.
RUN set -e; \
    bundle=/usr/local/share/hessian-build-ca.pem; \
    : > "$bundle"; \
    printenv EXTRA_CA_CERTS_B64 | base64 -d > /tmp/extra-ca.pem || true; \
    if [ -s /tmp/extra-ca.pem ]; then \
      given=$(grep -c 'BEGIN CERTIFICATE' /tmp/extra-ca.pem || true); \
      [ "$given" -gt 0 ] || { echo 'EXTRA_CA_CERTS_B64 holds no PEM certificate' >&2; exit 1; }; \
      if [ -n "${NODE_EXTRA_CA_CERTS:-}" ] && [ -r "${NODE_EXTRA_CA_CERTS:-}" ]; then cat "${NODE_EXTRA_CA_CERTS}" >> "$bundle"; fi; \
      cat /tmp/extra-ca.pem >> "$bundle"; \
      if command -v update-ca-certificates >/dev/null 2>&1; then \
        mkdir -p /usr/local/share/ca-certificates; \
        cp /tmp/extra-ca.pem /usr/local/share/ca-certificates/hessian-build-extra.crt; \
        update-ca-certificates >/dev/null 2>&1 || true; \
      fi; \
      echo "build: trusting ${given} extra CA certificate(s) from EXTRA_CA_CERTS_B64 (NODE_EXTRA_CA_CERTS)"; \
    else \
      echo 'build: no EXTRA_CA_CERTS_B64 given'; \
    fi; \
    rm -f /tmp/extra-ca.pem; \
    printf '%s\n' \
      "if [ -s $bundle ]; then export NODE_EXTRA_CA_CERTS=$bundle; fi" \
      'export npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false' \
      > /usr/local/bin/build-env

# Compiler toolchain for node-gyp, only if the Debian mirror is reachable.
RUN if [ "${BUILD_TOOLCHAIN}" = "0" ]; then echo 'build: toolchain install skipped (BUILD_TOOLCHAIN=0)'; exit 0; fi; \
    export DEBIAN_FRONTEND=noninteractive; \
    if timeout 180 apt-get update -o Acquire::Retries=1 >/tmp/apt.log 2>&1 \
       && timeout 600 apt-get install -y --no-install-recommends python3 make g++ >>/tmp/apt.log 2>&1; then \
      echo "build: installed python3/make/g++ for node-gyp"; \
    else \
      tail -n 5 /tmp/apt.log; echo 'build: apt unreachable or failed; continuing without a compiler toolchain'; \
    fi; \
    rm -rf /var/lib/apt/lists/* /tmp/apt.log

# Dependencies first, for layer caching. Optional dependencies are included:
# @tensorflow/tfjs-node tries to install and is dropped by npm if that fails.
# With TFJS_NODE_BASE_URI, libtensorflow comes from there and node-gyp compiles the addon (the
# prebuilt one is on Google's storage too) against the base image's Node headers.
COPY package.json package-lock.json* ./
RUN . /usr/local/bin/build-env; \
    if [ -n "${TFJS_NODE_BASE_URI}" ]; then \
      export TFJS_NODE_BASE_URI npm_config_build_from_source=@tensorflow/tfjs-node \
             npm_config_nodedir="$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")"; \
      echo "build: libtensorflow from ${TFJS_NODE_BASE_URI}cpu-linux-x86_64-2.9.1.tar.gz, addon built from source"; \
    fi; \
    if [ -f package-lock.json ]; then npm ci --foreground-scripts; \
    else echo 'build: no package-lock.json, using npm install'; npm install --foreground-scripts; fi

COPY . .
RUN . /usr/local/bin/build-env; npm run build && npm prune --omit=dev --foreground-scripts \
    && test -f dist/server.js

# Say which TensorFlow.js backend the image will get (a given TFJS_NODE_BASE_URI must give tensorflow),
# and keep of tfjs-node only what runs: the addon and the two shared libraries.
RUN tfjs=node_modules/@tensorflow/tfjs-node; \
    if TF_CPP_MIN_LOG_LEVEL=2 node -e "const tf=require('@tensorflow/tfjs-node');console.log('TensorFlow '+tf.backend().binding.TF_Version)" >/tmp/tfjs-node.log 2>&1; then \
      echo "tfjs backend check: @tensorflow/tfjs-node loaded -> native (tensorflow) backend, $(tail -n 1 /tmp/tfjs-node.log)"; \
      rm -rf "$tfjs/deps/include" "$tfjs/build"; \
      find "$tfjs/deps/lib" -maxdepth 1 -type f ! -name 'libtensorflow_cc.so.2' ! -name 'libtensorflow_framework.so.2' ! -name 'libtensorflow.so.2.9.1' ! -name 'libtensorflow_framework.so.2.9.1' -delete; \
      if command -v strip >/dev/null; then find "$tfjs/deps/lib" -maxdepth 1 -type f -exec strip --strip-unneeded {} +; fi; \
      TF_CPP_MIN_LOG_LEVEL=2 node -e "require('@tensorflow/tfjs-node')" >/dev/null 2>&1 || { echo 'build: tfjs-node no longer loads after slimming' >&2; exit 1; }; \
    else \
      echo 'tfjs backend check: @tensorflow/tfjs-node not available -> falling back to wasm'; \
      grep -m 1 -E 'Error|Cannot' /tmp/tfjs-node.log | sed 's/^/  (node) /'; \
      if [ -n "${TFJS_NODE_BASE_URI}" ]; then echo "build: TFJS_NODE_BASE_URI was given but tfjs-node does not load" >&2; exit 1; fi; \
    fi; rm -f /tmp/tfjs-node.log

# ---------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS runtime
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=3000 \
    RESULTS_DIR=/var/lib/hessian/results

# Unprivileged user; the app files stay root-owned (read-only for the service).
RUN groupadd --system --gid 10001 hessian \
 && useradd --system --uid 10001 --gid hessian --home-dir /nonexistent --no-create-home \
            --shell /usr/sbin/nologin hessian \
 && mkdir -p /var/lib/hessian/results \
 && chown -R hessian:hessian /var/lib/hessian

WORKDIR /app
COPY --from=build /src/package.json ./package.json
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist

USER hessian
VOLUME ["/var/lib/hessian/results"]
EXPOSE 3000

# No curl in slim images: probe /health with node itself. Uses PORT/HOST from the
# environment (a wildcard HOST is probed on 127.0.0.1).
HEALTHCHECK --interval=5s --timeout=4s --start-period=30s --retries=3 \
  CMD ["node", "-e", "const h=process.env.HOST;const host=(!h||h==='0.0.0.0'||h==='::')?'127.0.0.1':h;const r=require('http').get({host,port:Number(process.env.PORT||3000),path:'/health',timeout:3000},s=>{s.resume();process.exit(s.statusCode===200?0:1)});r.on('timeout',()=>r.destroy(new Error('timeout')));r.on('error',()=>process.exit(1))"]

STOPSIGNAL SIGTERM
# Exec form with no entrypoint wrapper: node is PID 1 and receives SIGTERM itself.
ENTRYPOINT []
CMD ["node", "dist/server.js"]
