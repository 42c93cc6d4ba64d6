#!/usr/bin/env bash
# Push the images build.sh makes to a registry the kubelet pulls from, building or loading
# from the cache whatever is missing: push.sh REGISTRY [llamacpp|vllm|operator|app]...
# (default: all four). REGISTRY is HOST:PORT, spoken to over plain HTTP (Debian's
# docker-registry as the real node runs it). Progress goes to stderr; stdout gets one line per
# image, `IMAGE_<NAME>=REGISTRY/compose-operator/<name>:<tag>@sha256:<digest>`, ready to be
# sourced; the registry keeps the tag too. A pushed image is a local image's tag with the
# registry in front (localhost/compose-operator/x:t -> REGISTRY/compose-operator/x:t).
#
# Instead of a registry, containerd can import the cached archives directly:
#   push.sh --archives [NAMES]   prints `NAME REF ARCHIVE` lines;
#   ctr -n k8s.io images import ARCHIVE   keeps REF as the image name.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/build.sh"

ref_of() {
	case $1 in
	llamacpp) printf '%s\n' "$LLAMACPP_REF" ;;
	vllm) printf '%s\n' "$VLLM_REF" ;;
	operator) printf '%s\n' "$OPERATOR_REF" ;;
	app) printf '%s\n' "$APP_REF" ;;
	*) die "unknown image $1 (llamacpp|vllm|operator|app)" ;;
	esac
}

variable_of() {
	case $1 in
	llamacpp) echo IMAGE_LLAMACPP ;;
	vllm) echo IMAGE_VLLM ;;
	operator) echo IMAGE_OPERATOR ;;
	app) echo IMAGE_CHAT_APP ;;
	esac
}

ensure_built() {
	case $1 in
	llamacpp) build_llamacpp ;;
	vllm) build_vllm ;;
	operator) build_operator ;;
	app) build_app ;;
	esac
}

main_push() {
	local registry=${1:?usage: push.sh REGISTRY [NAMES] | push.sh --archives [NAMES]}
	shift
	local names=("$@") name ref target digestfile started hash
	[ ${#names[@]} -gt 0 ] || names=(llamacpp vllm operator app)
	take_build_lock >&2
	if [ "$registry" = --archives ]; then
		for name in "${names[@]}"; do
			ensure_built "$name" >&2
			ref=$(ref_of "$name")
			hash=$(image_hash_label "$ref")
			printf '%s %s %s\n' "$name" "$ref" "$(archive_path "$name" "$hash")"
		done
		return
	fi
	for name in "${names[@]}"; do
		ensure_built "$name" >&2
		ref=$(ref_of "$name")
		target=$registry/${ref#localhost/}
		digestfile=$(mktemp)
		started=$SECONDS
		progress "$name: pushing $ref to $target" >&2
		pod push -q --tls-verify=false --digestfile "$digestfile" "$ref" "docker://$target" >&2
		progress "$name: pushed in $((SECONDS - started))s" >&2
		printf '%s=%s@%s\n' "$(variable_of "$name")" "$target" "$(cat "$digestfile")"
		rm -f "$digestfile"
	done
}

main_push "$@"
