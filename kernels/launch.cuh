#pragma once
// Every kernel is launched here, as a programmatic dependent (sm_90): it may start while the
// kernel before it drains, so its launch and ramp overlap that tail. A kernel launched this way
// must call enter_dependent_part() (device_common.cuh) before it touches memory that earlier
// kernels write; a kernel that streams most of a step's bytes (the GEMV) waits at its start but
// lets the next one launch only near its end. launch_after() is the exception, for a kernel
// measured faster when it starts only after the one before it (decode attention's merge).
// KVLAB_CUDA_PDL=0 launches plainly, to measure the gain and to check that no result depends on it.
#include <cuda_runtime.h>

#include <cstdlib>
#include <cstring>
#include <utility>

namespace kvlab::kernels {

inline bool programmatic_launch() {
  static const bool enabled = [] {
    const char* v = std::getenv("KVLAB_CUDA_PDL");
    return !(v && std::strcmp(v, "0") == 0);
  }();
  return enabled;
}

template <typename... Params, typename... Args>
cudaError_t launch_as(bool programmatic, void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem_bytes,
                      cudaStream_t stream, Args&&... args) {
  cudaLaunchConfig_t config{};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = smem_bytes;
  config.stream = stream;
  cudaLaunchAttribute attribute{};
  attribute.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attribute.val.programmaticStreamSerializationAllowed = 1;
  config.attrs = &attribute;
  config.numAttrs = programmatic && programmatic_launch() ? 1 : 0;
  return cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...);
}

template <typename... Params, typename... Args>
cudaError_t launch(void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem_bytes, cudaStream_t stream,
                   Args&&... args) {
  return launch_as(true, kernel, grid, block, smem_bytes, stream, std::forward<Args>(args)...);
}

// A kernel that starts only once the one before has finished, for one whose early start costs
// more than it saves; it may still let the next kernel in early.
template <typename... Params, typename... Args>
cudaError_t launch_after(void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem_bytes, cudaStream_t stream,
                         Args&&... args) {
  return launch_as(false, kernel, grid, block, smem_bytes, stream, std::forward<Args>(args)...);
}

}  // namespace kvlab::kernels
