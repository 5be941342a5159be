# qworker worker image. Build:  docker build -t qworker .
# Run:    docker run --rm -e QWORKER_BROKER_URL=redis://redis:6379/0 -v "$PWD/tasks:/app/tasks:ro" qworker
# Send:   docker run --rm -e QWORKER_BROKER_URL=redis://redis:6379/0 qworker send demo.add --args '[2,3]'
#
# Configuration comes from the environment (QWORKER_BROKER_URL, QWORKER_CONCURRENCY, QWORKER_QUEUES, …,
# see README.md) or from a file mounted at /app/config/qworker.yaml. Tasks live in /app/tasks: the
# examples are copied in; mount your own over them. TypeScript tasks load as they are (tsx ships as a
# runtime dependency), and `import … from "qworker"` in them resolves to this package.

# ---- build: dependencies (better-sqlite3 is native) and dist/ -----------------------------------------
# Same base as the runtime stage, so the native module is built against the same glibc and Node ABI.
FROM node:20-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app

# Dependencies first, for layer caching. --ignore-scripts because the package's own `prepare` script
# (node scripts/build.mjs) needs src/, which is not copied yet; the native modules' install scripts are
# then run explicitly by `npm rebuild`.
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund \
 && npm rebuild better-sqlite3 esbuild

COPY tsconfig.json tsconfig.build.json ./
COPY scripts ./scripts
COPY src ./src
RUN npm run build \
 && npm prune --omit=dev --no-audit --no-fund

# ---- runtime ------------------------------------------------------------------------------------------
FROM node:20-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app

# No src/ in the image: bin/qworker.js then always runs the compiled dist/.
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY bin ./bin
COPY tasks ./tasks

# The embedded SQLite broker (the default when no broker_url is set) writes .qworker/ under /app: give
# the unprivileged user that directory and nothing else.
RUN mkdir -p /app/.qworker && chown node:node /app/.qworker
USER node

# The worker handles SIGTERM itself: it stops fetching, finishes running tasks (shutdown_timeout, 30 s by
# default) and exits 0. Give `docker stop -t` / stop_grace_period more than that.
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "bin/qworker.js"]
CMD ["worker", "--loglevel=info"]
