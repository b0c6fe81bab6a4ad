# syntax=docker/dockerfile:1
# The lopper operator image: build with cargo, run from a distroless image as non-root.
#
#   docker build -t lopper:dev .
#   docker run --rm lopper:dev --help
#
# TLS is rustls (no OpenSSL). The binary links glibc and, through the plotting code
# (`lopper plot`), fontconfig/freetype; those few libraries are copied next to distroless/cc.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS builder
RUN apt-get update \
 && apt-get install -y --no-install-recommends libfontconfig1-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin lopper \
 && cp target/release/lopper /lopper
# The shared libraries distroless/cc lacks (it has glibc, libm and libgcc_s).
RUN mkdir -p /runtime-libs \
 && ldd /lopper | awk '/=> \// {print $3}' \
    | grep -Ev '/(libc|libm|libgcc_s|libpthread|libdl|librt)\.so' \
    | xargs -r -I{} cp --parents -L {} /runtime-libs/

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /runtime-libs/ /
COPY --from=builder /lopper /usr/local/bin/lopper
# 65532:65532 is distroless' "nonroot"; the chart also sets runAsNonRoot and a read-only root fs.
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/lopper"]
CMD ["controller"]
