#!/usr/bin/env bash
# rootfs.sh BIN ROOT: lay out llama-server from compile.sh's output BIN as a root file system in
# ROOT: /app/llama-server, its llama/ggml libraries, the libggml-cpu-<variant>.so modules (ggml
# looks for them in the executable's directory), every system library they load (as ldd
# resolves them here) and the dynamic loader.
set -euo pipefail
bin=$1
root=$2
mkdir -p "$root/app" "$root/tmp" "$root/lib64"
chmod 1777 "$root/tmp"
cp -a "$bin/llama-server" "$bin"/*.so* "$bin/build-info.txt" "$root/app/"
chmod 755 "$root/app/llama-server"
# System libraries: whatever ldd resolves outside /app (the CPU modules are loaded with dlopen,
# so they are asked too), copied under their soname.
for object in "$root/app/llama-server" "$root"/app/*.so*; do
	LD_LIBRARY_PATH=$root/app ldd "$object"
done | awk '$2 == "=>" && $3 ~ /^\// { print $1, $3 }' | sort -u | while read -r soname path; do
	[ -e "$root/app/$soname" ] || cp -L "$path" "$root/app/$soname"
done
loader=$(ldd "$root/app/llama-server" | awk '$1 ~ /^\/.*ld-linux/ { print $1 }')
cp -L "$loader" "$root/lib64/$(basename "$loader")"
ls "$root/app"
LD_LIBRARY_PATH=$root/app "$root/app/llama-server" --version 2>&1 | grep -i version
