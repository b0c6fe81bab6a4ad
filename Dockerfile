# syntax=docker/dockerfile:1
# The lopper operator image: build with cargo, run from a distroless image as non-root.
#
#   docker build -t lopper:dev .
#   docker run --rm lopper:dev --help
#
# TLS is rustls (no OpenSSL); the binary links glibc dynamically, hence distroless/cc.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS builder
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin lopper \
 && cp target/release/lopper /lopper

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /lopper /usr/local/bin/lopper
# 65532:65532 is distroless' "nonroot"; the chart also sets runAsNonRoot and a read-only root fs.
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/lopper"]
CMD ["controller"]
