# syntax=docker/dockerfile:1
# isobar's image: the release binary on distroless (glibc, CA certificates, uid 65532 `nonroot`).
#   docker build -t ghcr.io/isobar-dev/isobar:0.1.0 .
# The same image runs `serve`, `certgen --kube` and `bootstrap` (see deploy/base).

FROM rust:1-bookworm AS builder
WORKDIR /src
COPY . .
# --locked: build exactly Cargo.lock. The cache mounts keep the registry and target dir across builds.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin isobar \
    && install -D -m 0755 target/release/isobar /out/isobar

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /out/isobar /usr/local/bin/isobar
USER nonroot
ENTRYPOINT ["isobar"]
