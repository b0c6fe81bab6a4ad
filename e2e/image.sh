#!/usr/bin/env bash
# The operator's OCI image, built without a Docker daemon (buildah, `FROM scratch`), and ways to
# run it here. The base is made locally because base-image registries are out of reach: the
# release binary, exactly the shared libraries `ldd` says it loads (with the dynamic loader), CA
# certificates, /etc/passwd and /etc/group naming the non-root user 65532, an empty /tmp. The
# Dockerfile builds its final stage from the same `rootfs` step, so both images are equivalent.
#
#   bash e2e/image.sh [build]        cargo build --release, then the image (cached): prints
#                                    archive=, ref=, digest=, size= lines on stdout
#   bash e2e/image.sh rootfs BIN DIR the image's file tree for binary BIN into DIR (Dockerfile too)
#   bash e2e/image.sh unpack         unpack the built archive (cached), print the rootfs folder
#   bash e2e/image.sh sandbox [-k KUBECONFIG] [-- ARGS...]
#                                    run the image's entrypoint as the image's user (65532) with a
#                                    read-only root, a tmpfs /tmp and the host network (unshare +
#                                    chroot; root needed); KUBECONFIG is copied to /tmp/kubeconfig
#   bash e2e/image.sh podman [-- ARGS...]
#                                    load the archive into podman and `podman run` it read-only,
#                                    host network (runc with explicit ulimits: see e2e/kind/README.md
#                                    for why); LOPPER_PODMAN_KUBECONFIG=FILE is given to it as a
#                                    podman secret, LOPPER_PODMAN_NAME names the container
#
# Cache: ${LOPPER_IMAGE_CACHE:-~/.cache/lopper-image}/<key>/lopper.oci.tar, <key> hashing the
# image's file tree, the Containerfile below and this script; an unchanged build is not redone.
# Honours CARGO_TARGET_DIR. SOURCE_DATE_EPOCH=0 timestamps make the archive reproducible.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE_ROOT="${LOPPER_IMAGE_CACHE:-$HOME/.cache/lopper-image}"
NAME="localhost/lopper"
USER_ID=65532
TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}"
[[ "$TARGET_DIR" == /* ]] || TARGET_DIR="$REPO/$TARGET_DIR"
BIN="$TARGET_DIR/release/lopper"

log() { printf '[image.sh %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# Same config as the Dockerfile's final stage (tests/image.rs compares the two).
CONTAINERFILE='FROM scratch
COPY rootfs/ /
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/lopper"]
CMD ["controller"]'

# ---------------------------------------------------------------------------------------------
# rootfs BIN DIR: the image's whole file tree.
# ---------------------------------------------------------------------------------------------
cmd_rootfs() {
  local bin="$1" dir="$2" lib
  [[ -x "$bin" ]] || die "no binary at $bin"
  mkdir -p "$dir/usr/local/bin" "$dir/etc/ssl/certs" "$dir/proc" "$dir/dev" "$dir/sys"
  install -m 0755 "$bin" "$dir/usr/local/bin/lopper"
  # Every library the loader maps, and the loader itself, at the path ldd shows (the binary's
  # ELF interpreter path and glibc's default search path), resolved through symlinks. Nothing
  # else: no shell, no package manager.
  while read -r lib; do
    mkdir -p "$dir$(dirname "$lib")"
    cp -L "$lib" "$dir$lib"
  done < <(ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' | sort -u)
  [[ -f /etc/ssl/certs/ca-certificates.crt ]] || die "no /etc/ssl/certs/ca-certificates.crt (apt-get install ca-certificates)"
  install -m 0644 /etc/ssl/certs/ca-certificates.crt "$dir/etc/ssl/certs/ca-certificates.crt"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%d:%d:nonroot:/home/nonroot:/sbin/nologin\n' \
    "$USER_ID" "$USER_ID" >"$dir/etc/passwd"
  printf 'root:x:0:\nnonroot:x:%d:\n' "$USER_ID" >"$dir/etc/group"
  # glibc's resolver: hosts file first, then DNS (what distroless ships).
  printf 'hosts: files dns\n' >"$dir/etc/nsswitch.conf"
  # The chart mounts an emptyDir here; without one (docker run --read-only) it is still a dir.
  mkdir -p "$dir/tmp" "$dir/home/nonroot"
  chmod 1777 "$dir/tmp"
}

# The content key of a file tree: names, modes, owners, link targets and file contents.
tree_hash() {
  (cd "$1" && find . -printf '%p %m %U %G %l\n' | LC_ALL=C sort &&
    find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum) | sha256sum | cut -c1-16
}

archive_size() { stat -c %s "$1"; }

# ---------------------------------------------------------------------------------------------
# build
# ---------------------------------------------------------------------------------------------
cmd_build() {
  command -v buildah >/dev/null || die "buildah is not installed (bash e2e/install-deps.sh)"
  log "cargo build --release --locked --bin lopper (target: $TARGET_DIR)"
  (cd "$REPO" && cargo build --release --locked --bin lopper) >&2

  local work key dir archive ref tag version
  work="$(mktemp -d)"
  WORK="$work"
  trap 'rm -rf "$WORK"' EXIT
  cmd_rootfs "$BIN" "$work/rootfs"
  printf '%s\n' "$CONTAINERFILE" >"$work/Containerfile"
  key="$( (tree_hash "$work/rootfs"; cat "$work/Containerfile" "${BASH_SOURCE[0]}") | sha256sum | cut -c1-16)"
  version="$(sed -n 's/^version = "\(.*\)"$/\1/p' "$REPO/Cargo.toml" | head -n1)"
  tag="$version-$key"
  ref="$NAME:$tag"
  dir="$CACHE_ROOT/$key"
  archive="$dir/lopper.oci.tar"
  mkdir -p "$dir"
  # One builder per key (parallel tests call this too).
  exec 9>"$dir/build.lock"
  flock 9
  if [[ -s "$archive" ]]; then
    log "cached: $archive (inputs unchanged)"
  else
    log "buildah build $ref"
    # --timestamp 0: layer file times and the created date fixed, so equal inputs give equal
    # digests. COPY makes every file root's; the operator writes only to /tmp.
    buildah build --quiet --timestamp 0 --layers=false -f "$work/Containerfile" -t "$ref" "$work" >&2
    buildah push --quiet "$ref" "oci-archive:$archive.tmp:$ref" >&2
    mv -f "$archive.tmp" "$archive"
    printf '%s\n' "$ref" >"$dir/ref"
  fi
  exec 9>&-
  local digest size rootfs_size
  digest="$(tar -xOf "$archive" index.json | jq -r '.manifests[0].digest')"
  size="$(archive_size "$archive")"
  rootfs_size="$(du -sb "$work/rootfs" | cut -f1)"
  printf '%s\n' "$archive" >"$CACHE_ROOT/latest"
  log "image $ref: $(numfmt --to=iec-i --suffix=B "$size") compressed archive, $(numfmt --to=iec-i --suffix=B "$rootfs_size") unpacked"
  printf 'archive=%s\nref=%s\nrepository=%s\ntag=%s\ndigest=%s\nsize=%s\nunpacked_size=%s\n' \
    "$archive" "$ref" "$NAME" "$tag" "$digest" "$size" "$rootfs_size"
}

latest_archive() {
  local a
  a="$(cat "$CACHE_ROOT/latest" 2>/dev/null || true)"
  [[ -s "$a" ]] || die "no image built yet: bash e2e/image.sh build"
  printf '%s\n' "$a"
}

# ---------------------------------------------------------------------------------------------
# unpack: the archive's layers into <cache>/<key>/rootfs (by hand: one OCI index, one manifest)
# ---------------------------------------------------------------------------------------------
cmd_unpack() {
  local archive dir out tmp manifest layer
  archive="$(latest_archive)"
  dir="$(dirname "$archive")"
  out="$dir/rootfs"
  exec 9>"$dir/unpack.lock"
  flock 9
  if [[ ! -d "$out" ]]; then
    tmp="$dir/.unpack.$$"
    rm -rf "$tmp"
    mkdir -p "$tmp/oci" "$tmp/rootfs"
    tar -xf "$archive" -C "$tmp/oci"
    manifest="$(jq -r '.manifests[0].digest' "$tmp/oci/index.json")"
    jq -r '.config.digest' "$tmp/oci/blobs/${manifest/://}" >"$tmp/config.digest"
    cp "$tmp/oci/blobs/$(sed 's#:#/#' "$tmp/config.digest")" "$tmp/config.json"
    for layer in $(jq -r '.layers[].digest' "$tmp/oci/blobs/${manifest/://}"); do
      tar --numeric-owner -xpf "$tmp/oci/blobs/${layer/://}" -C "$tmp/rootfs"
    done
    mv "$tmp/config.json" "$dir/config.json"
    mv "$tmp/rootfs" "$out"
    rm -rf "$tmp"
  fi
  exec 9>&-
  printf '%s\n' "$out"
}

# ---------------------------------------------------------------------------------------------
# sandbox: the entrypoint as the image's user, read-only root, without a container runtime
# ---------------------------------------------------------------------------------------------
cmd_sandbox() {
  local kubeconfig="" root config user entry envs args
  while (($#)); do
    case "$1" in
      -k) kubeconfig="$2"; shift 2 ;;
      --) shift; break ;;
      *) break ;;
    esac
  done
  [[ "$(id -u)" == 0 ]] || die "sandbox needs root (mount namespace, chroot, setuid)"
  root="$(cmd_unpack)"
  config="$(dirname "$root")/config.json"
  user="$(jq -r '.config.User' "$config")"
  mapfile -t entry < <(jq -r '.config.Entrypoint[]' "$config")
  (($#)) || mapfile -t -O 0 args < <(jq -r '.config.Cmd // [] | .[]' "$config")
  (($#)) || set -- "${args[@]}"
  mapfile -t envs < <(jq -r '.config.Env // [] | .[]' "$config")
  envs+=("HOME=/tmp")
  [[ -n "$kubeconfig" ]] && envs+=("KUBECONFIG=/tmp/kubeconfig")
  for v in RUST_LOG LOPPER_LOG_FORMAT; do
    [[ -n "${!v:-}" ]] && envs+=("$v=${!v}")
  done
  # A private mount namespace: the unpacked tree bind-mounted read-only on itself, a tmpfs /tmp
  # (the chart's emptyDir), /proc, and /dev with the four usual nodes; then chroot and drop to
  # the image's user. `exec` all along, so this process becomes the operator (signals reach it).
  # shellcheck disable=SC2016
  exec unshare --mount --propagation private -- bash -euo pipefail -c '
    root="$1" user="$2" kubeconfig="$3"; shift 3
    mount --bind "$root" "$root"
    mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$root/tmp"
    mount -t proc -o nosuid,nodev,noexec proc "$root/proc"
    mount -t tmpfs -o mode=0755,nosuid tmpfs "$root/dev"
    for n in null zero random urandom; do touch "$root/dev/$n"; mount --bind "/dev/$n" "$root/dev/$n"; done
    if [[ -n "$kubeconfig" ]]; then install -m 0444 "$kubeconfig" "$root/tmp/kubeconfig"; fi
    mount -o remount,bind,ro,nosuid,nodev "$root"
    n_env="$1"; shift
    envs=("${@:1:$n_env}"); shift "$n_env"
    exec env -i "${envs[@]}" chroot --userspec="$user" --groups="${user#*:}" "$root" "$@"
  ' sandbox "$root" "$user" "$kubeconfig" "${#envs[@]}" "${envs[@]}" "${entry[@]}" "$@"
}

# ---------------------------------------------------------------------------------------------
# podman: a real container runtime, with the settings this machine needs
# ---------------------------------------------------------------------------------------------
cmd_podman() {
  (($#)) && [[ "$1" == -- ]] && shift
  local archive ref
  archive="$(latest_archive)"
  ref="$(cat "$(dirname "$archive")/ref")"
  podman image exists "$ref" || podman load --quiet -i "$archive" >&2
  local opts=() secret
  if [[ -n "${LOPPER_PODMAN_KUBECONFIG:-}" ]]; then
    # A podman secret (root-only storage), mounted readable by the image's user only: a bind
    # mount of the 0600 file would be unreadable for 65532. Named by content, so runs with
    # different kubeconfigs do not clash and an unchanged one is reused.
    secret="lopper-kubeconfig-$(sha256sum <"$LOPPER_PODMAN_KUBECONFIG" | cut -c1-12)"
    podman secret inspect "$secret" >/dev/null 2>&1 ||
      podman secret create "$secret" "$LOPPER_PODMAN_KUBECONFIG" >/dev/null
    opts+=(--secret "$secret,type=mount,target=/etc/lopper/kubeconfig,uid=$USER_ID,gid=$USER_ID,mode=0400"
      -e KUBECONFIG=/etc/lopper/kubeconfig)
  fi
  # A name to stop it by (killing the podman client leaves the container running).
  [[ -n "${LOPPER_PODMAN_NAME:-}" ]] && opts+=(--name "$LOPPER_PODMAN_NAME" --replace)
  [[ -n "${RUST_LOG:-}" ]] && opts+=(-e "RUST_LOG=$RUST_LOG")
  # runc, not crun: crun refuses this machine's hybrid cgroup v1/v2 layout. Explicit ulimits:
  # podman's defaults raise RLIMIT_NOFILE/NPROC, which needs CAP_SYS_RESOURCE (missing here).
  # --read-only gives a tmpfs /tmp, like the chart's emptyDir.
  exec podman --runtime runc run --rm --read-only --network host --cap-drop ALL \
    --security-opt no-new-privileges --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 \
    "${opts[@]}" "$ref" "$@"
}

cmd="${1:-build}"
(($#)) && shift
case "$cmd" in
  build) cmd_build ;;
  rootfs) cmd_rootfs "$@" ;;
  unpack) cmd_unpack ;;
  sandbox) cmd_sandbox "$@" ;;
  podman) cmd_podman "$@" ;;
  *) die "unknown command $cmd (build | rootfs BIN DIR | unpack | sandbox | podman)" ;;
esac
