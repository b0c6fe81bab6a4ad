# syntax=docker/dockerfile:1
# The lopper operator image, for those with Docker:
#
#   docker build -t lopper:dev .
#   docker run --rm --read-only lopper:dev --help
#
# Without Docker, `bash e2e/image.sh` builds the same image with buildah (see docs/install.md).
# Both are `FROM scratch` with the tree `e2e/image.sh rootfs` makes: the release binary, exactly the
# shared libraries it loads (glibc, and fontconfig/freetype for `lopper plot`), CA certificates,
# /etc/passwd naming user 65532, an empty /tmp; and the same config below (tests/image.rs checks
# it). TLS is rustls (no OpenSSL). No shell, no package manager.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS builder
RUN apt-get update \
 && apt-get install -y --no-install-recommends libfontconfig1-dev ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin lopper \
 && bash e2e/image.sh rootfs target/release/lopper /rootfs

FROM scratch
COPY --from=builder /rootfs/ /
# 65532 is "nonroot" in the image's /etc/passwd; the chart also sets runAsNonRoot, runAsUser 65532
# and a read-only root filesystem (with an emptyDir on /tmp).
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/lopper"]
CMD ["controller"]
