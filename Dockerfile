# sidechat in a container: built from source with Node and npm alone (Bun is a pinned dev
# dependency), then the single compiled binary on distroless (glibc, no shell), as a non-root user.
#   docker build -t sidechat .
#   docker run --rm -p 8080:8080 -e ANTHROPIC_API_KEY sidechat
FROM node:20-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
RUN npx bun run build

FROM gcr.io/distroless/base-debian12:nonroot
COPY --from=build /src/dist/sidechat /usr/local/bin/sidechat
# Listen on every interface inside the container. Docker waits 10 s after SIGTERM before it kills
# (docker stop -t, compose stop_grace_period); draining gets 8 of them. Raise both together.
ENV HOST=0.0.0.0 \
    PORT=8080 \
    SHUTDOWN_GRACE_MS=8000 \
    LOG_FORMAT=json
EXPOSE 8080
USER nonroot
STOPSIGNAL SIGTERM
# No shell or curl in the image: the binary checks its own /health.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 CMD ["/usr/local/bin/sidechat", "--healthcheck"]
ENTRYPOINT ["/usr/local/bin/sidechat"]
