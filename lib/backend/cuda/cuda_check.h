#pragma once
// Every CUDA runtime and cuBLAS call goes through these, so a failure becomes a kvlab::Error
// naming the call and the place instead of a silent wrong answer later.
#include <cuda_runtime_api.h>

#include <string>

#include "backend/cuda/cublas_library.h"
#include "core/error.h"

namespace kvlab {

[[noreturn]] inline void cuda_fail(const char* what, const char* expr, const char* file, int line) {
  fail(std::string("CUDA: ") + what + " in " + expr + " at " + file + ":" + std::to_string(line), kExitInternal);
}

}  // namespace kvlab

#define KVLAB_CUDA_CHECK(expr)                                                           \
  do {                                                                                   \
    cudaError_t kvlab_err_ = (expr);                                                     \
    if (kvlab_err_ != cudaSuccess)                                                       \
      ::kvlab::cuda_fail(cudaGetErrorString(kvlab_err_), #expr, __FILE__, __LINE__);     \
  } while (0)

#define KVLAB_CUBLAS_CHECK(expr)                                                         \
  do {                                                                                   \
    cublasStatus_t kvlab_st_ = (expr);                                                   \
    if (kvlab_st_ != CUBLAS_STATUS_SUCCESS)                                              \
      ::kvlab::cuda_fail(::kvlab::cublas().status_string(kvlab_st_), #expr, __FILE__, __LINE__); \
  } while (0)
