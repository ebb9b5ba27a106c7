#!/usr/bin/env bash
# Copies what a GPU-machine call runs from a build made here into a folder to carry there:
# bin/ (kvlab-bench, kvlab-generate, which test_cuda_model runs, bench_cuda_ops and, where built,
# the kernel tracer libkvlab_kernel_trace.so), tests/ (the GPU test binaries) and carried-lib/
# (libbenchmark, which that machine lacks, and CUPTI for the tracer; see scripts/gpu_env.sh),
# stripped. Several bundles of near-identical builds (A/B variants) pack small together:
# `tar -cf - DIR | xz -9e -T1` finds the bytes they share.
#   bash scripts/gpu_bundle.sh BUILD DEST
set -euo pipefail
if (($# != 2)); then
  echo "usage: bash scripts/gpu_bundle.sh BUILD DEST" >&2
  exit 2
fi
build=$1 dest=$2
bins=(kvlab-bench kvlab-generate bench_cuda_ops)
tests=(test_cuda_ops test_cuda_model test_cuda_cache_ops test_cuda_leank)
for f in "${bins[@]/#/$build/bin/}" "${tests[@]/#/$build/tests/}"; do
  [[ -x $f ]] || { echo "gpu_bundle: no $f (ninja -C $build ${bins[*]} ${tests[*]})" >&2; exit 2; }
done
mkdir -p "$dest/bin" "$dest/tests" "$dest/carried-lib"
cp "${bins[@]/#/$build/bin/}" "$dest/bin/"
cp "${tests[@]/#/$build/tests/}" "$dest/tests/"
cp -P /usr/lib/x86_64-linux-gnu/libbenchmark.so.1* "$dest/carried-lib/"
if [[ -f $build/bin/libkvlab_kernel_trace.so ]]; then
  cp "$build/bin/libkvlab_kernel_trace.so" "$dest/bin/"
  cp -L "$(ldd "$build/bin/libkvlab_kernel_trace.so" | awk '/libcupti/ {print $3}')" "$dest/carried-lib/"
fi
strip "$dest"/bin/* "$dest"/tests/*
du -sh "$dest"
