# Sourced by the GPU-machine scripts (gpu_check.sh, leank_gpu_check.sh), from the repository root,
# with the build dir as $1 (default build-cuda, made elsewhere and carried along) and $2 the
# default log folder when $OUT is unset: where the tests find their inputs and binaries, the
# shared libraries the build machine had and this one may not, and compute-sanitizer.
build=${1:-build-cuda}
out=${OUT:-$2}
mkdir -p "$out"
export KVLAB_SOURCE_DIR=$PWD KVLAB_BIN_DIR=$PWD/$build/bin KVLAB_TOKENIZER_DIR=$PWD/third_party/tokenizers
[[ -d $build/carried-lib ]] && export LD_LIBRARY_PATH=$PWD/$build/carried-lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
sanitizer=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
status=0
