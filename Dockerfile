# syntax=docker/dockerfile:1

# ---- builder -----------------------------------------------------------------------------------------
FROM rust:1.95-bookworm AS builder
WORKDIR /src

# The adapter uses no compile-time-checked `query!` macros; SQLX_OFFLINE makes sure that none added later
# could try to reach a database while the image builds.
ENV SQLX_OFFLINE=true \
    CARGO_TERM_COLOR=never

# The whole workspace: every member the manifest lists (domain, application, adapters-memory,
# adapters-postgres, adapters-http, app, testkit), Cargo.lock, and migrations/, which
# `sqlx::migrate!("../migrations")` embeds at compile time. .dockerignore keeps target/ and .git/ out.
COPY . .

# The registry and target dir live in BuildKit cache mounts, so a rebuild after a source change only
# recompiles what changed. The target dir is a cache mount and not part of the image, so the binary is
# copied out of it in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked -p app --bin bitburst \
    && install -D -m 0755 target/release/bitburst /out/bitburst

# ---- runtime -----------------------------------------------------------------------------------------
FROM debian:bookworm-slim AS runtime

# ca-certificates for TLS to a managed PostgreSQL; curl only for the HEALTHCHECK below.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 bitburst \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin bitburst

COPY --from=builder /out/bitburst /usr/local/bin/bitburst

USER bitburst:bitburst
ENV BITBURST_ADDR=0.0.0.0:8080
EXPOSE 8080

# /readyz: 200 when the store answers and the instance is not draining. After SIGTERM it answers 503,
# so the container turns unhealthy while it drains; that is intended.
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8080/readyz || exit 1

# The binary handles SIGTERM itself: /readyz turns 503, it waits BITBURST_DRAIN_GRACE_MS, stops
# accepting, finishes requests in flight and exits 0. Give it a stop timeout above the grace period.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/bitburst"]
