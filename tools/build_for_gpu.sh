#!/usr/bin/env bash
# Builds the lean sm_90 bundle that a GPU session carries (docs/GPU.md): a CUDA build for Hopper
# only (tests + benchmarks + CLI, no fuzz, no -march=native so the binaries run on any x86-64 host),
# then copies the stripped programs into BUNDLE/bin and the shared libraries the GPU image lacks
# (fmt, utf8proc, OpenMP, the CUDA runtime) into BUNDLE/lib, and checks that the bundle plus the
# tracked tree fit the 64 MiB a device call carries.
#   tools/build_for_gpu.sh [BUILD_DIR] [BUNDLE_DIR]   (defaults: build-gpu, build-gpu-bundle)
# Both default folders match .gitignore's /build*/; carry only the bundle.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD="${1:-build-gpu}"
BUNDLE="${2:-build-gpu-bundle}"
JOBS="${JOBS:-2}"
LIMIT_MIB="${BERTRAZOR_CARRY_LIMIT_MIB:-64}"

cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DBERTRAZOR_CUDA=ON \
  -DCMAKE_CUDA_ARCHITECTURES=90 -DBERTRAZOR_TESTS=ON -DBERTRAZOR_BENCHMARKS=ON \
  -DBERTRAZOR_FUZZ=OFF -DBERTRAZOR_NATIVE=OFF >/dev/null
cmake --build "$BUILD" -j "$JOBS"

rm -rf "$BUNDLE"
mkdir -p "$BUNDLE/bin" "$BUNDLE/lib"
progs=()
for f in "$BUILD"/tests/test_* "$BUILD"/benchmarks/bench_* "$BUILD"/bertrazor; do
  [ -f "$f" ] && [ -x "$f" ] || continue
  cp "$f" "$BUNDLE/bin/"
  progs+=("$BUNDLE/bin/$(basename "$f")")
done
[ "${#progs[@]}" -gt 0 ] || { echo "build_for_gpu: no programs were built in $BUILD" >&2; exit 1; }
strip --strip-unneeded "${progs[@]}"

# Shared libraries outside the base system (glibc, libstdc++, libgcc) and outside the driver and
# cuBLAS (the GPU image has CUDA 13 and its own cuBLAS; cuBLASLt alone is over 64 MiB).
keep_out='^(libc|libm|libdl|librt|libpthread|ld-linux-x86-64|libstdc\+\+|libgcc_s|libcuda|libcublas|libcublasLt|linux-vdso)\.so'
ldd "${progs[@]}" | awk '/=> \//{print $1, $3}' | sort -u | while read -r name path; do
  if ! [[ "$name" =~ $keep_out ]]; then cp -L "$path" "$BUNDLE/lib/$name"; fi
done
strip --strip-unneeded "$BUNDLE"/lib/*.so* 2>/dev/null || true

# What travels: tracked files + untracked-not-ignored files + the bundle.
tree_bytes=$( { git ls-files -z; git ls-files -z --others --exclude-standard; } |
  xargs -0 stat -c %s 2>/dev/null | awk '{s+=$1} END{print s+0}')
bundle_bytes=$(du -sb "$BUNDLE" | cut -f1)
total=$((tree_bytes + bundle_bytes))
printf 'build_for_gpu: bundle %s: %.1f MiB (%d programs, libs: %s)\n' "$BUNDLE" \
  "$(echo "$bundle_bytes / 1048576" | bc -l)" "${#progs[@]}" "$(ls "$BUNDLE/lib" | tr '\n' ' ')"
printf 'build_for_gpu: working tree %.1f MiB + bundle = %.1f MiB (limit %s MiB)\n' \
  "$(echo "$tree_bytes / 1048576" | bc -l)" "$(echo "$total / 1048576" | bc -l)" "$LIMIT_MIB"
if [ "$total" -gt $((LIMIT_MIB * 1048576)) ]; then
  echo "build_for_gpu: over the carry limit; largest programs:" >&2
  ls -lS "$BUNDLE/bin" | head -8 >&2
  exit 1
fi
cuobjdump --list-elf "$BUNDLE/bin/bench_bert_step" 2>/dev/null | grep -o 'sm_[0-9a]*' | sort -u |
  sed 's/^/build_for_gpu: bench_bert_step carries /' || true
