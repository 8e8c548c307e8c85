# syntax=docker/dockerfile:1
#
# The app binary in a small image, with no shell and a non-root user.
#
#   docker build -t app .
#   docker run -p 127.0.0.1:8080:8080 -v app-data:/var/lib/app -e APP_DEV_KEYS=true app
#              # every module, SQLite, development keys
#   docker run -p 8080:8080 --env-file app.env -e APP_JWT_JWKS_URL=https://... \
#              app serve --module laptops   # APP_DATABASE_URL=postgres://... in app.env
#
# Listening on every address, it refuses development keys unless
# APP_DEV_KEYS=true says so: production gives its identity provider's keys.
#
# Dependencies are built in a layer of their own (cargo-chef), so changing
# the code rebuilds only the workspace's crates.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-slim-trixie AS chef
RUN cargo install cargo-chef --locked --version 0.1.78
WORKDIR /src

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /src/recipe.json recipe.json
RUN cargo chef cook --release --locked --recipe-path recipe.json --bin app
COPY . .
RUN cargo build --release --locked --bin app \
    && mkdir -p /empty/var/lib/app

# glibc and libgcc, nothing else; the nonroot user is 65532. Debian 13 here
# and in the build stage alike: a binary linked against a newer glibc than
# the one it runs on does not start.
FROM gcr.io/distroless/cc-debian13:nonroot
COPY --from=builder /src/target/release/app /app
# SQLite's files, when no --database-url says otherwise: mount a volume here.
COPY --from=builder --chown=65532:65532 /empty/var/lib/app /var/lib/app
ENV APP_BIND=0.0.0.0:8080 \
    APP_DATABASE_URL=sqlite:/var/lib/app \
    APP_LOG_FORMAT=json
VOLUME ["/var/lib/app"]
EXPOSE 8080
USER 65532:65532
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["/app", "healthcheck"]
ENTRYPOINT ["/app"]
CMD ["serve", "--all"]
