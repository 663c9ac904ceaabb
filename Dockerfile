# syntax=docker/dockerfile:1
# The ledger server image: one replica per container (see docker-compose.yml for the three-node topology).
# Both stages use the same base so that better-sqlite3's native module is built for the glibc and
# Node ABI it runs on.
ARG NODE_IMAGE=node:24-bookworm-slim

# --- deps: production dependencies, with the tool chain better-sqlite3 needs when no prebuilt binary fits.
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
# tsx is a runtime dependency (the server runs from TypeScript source), so --omit=dev keeps it.
RUN npm ci --omit=dev --no-audit --no-fund

# --- runtime: no compilers, no npm in the start path, a non-root user.
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    PORT=4000 \
    LEDGER_DATA_DIR=/data
WORKDIR /app
# A dedicated user with a fixed uid, so that volume ownership is predictable across rebuilds.
RUN groupadd --system --gid 10001 ledger \
 && useradd --system --uid 10001 --gid ledger --no-create-home --shell /usr/sbin/nologin ledger \
 && mkdir -p /data \
 && chown ledger:ledger /data
# Code and dependencies stay owned by root: the server can read them but not rewrite them.
COPY --from=deps /app/node_modules ./node_modules
COPY package.json tsconfig.json ./
COPY src ./src
# A named volume mounted here starts with the ownership of this folder (the ledger user).
VOLUME ["/data"]
USER ledger
# 4000: HTTP (GraphQL at /graphql, health at /health). 7000: the Raft transport when LEDGER_PEERS is set.
EXPOSE 4000 7000
# /health answers 200 while the node serves and 503 once it is closing; no curl in a slim image, so node's fetch.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 4000) + '/health').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# node itself, not `npm start`: npm does not pass SIGTERM on to its child, so `docker stop` would kill the
# server without its graceful shutdown (finish in-flight commands, close the stores).
STOPSIGNAL SIGTERM
CMD ["node", "--import", "tsx", "src/main.ts"]
