#pragma once
// cuBLAS, opened by the first CUDA backend instead of linked: the library and the cuBLASLt it
// pulls in (~600 MB) cost every process that maps them ~0.3 s at start, which every CPU-only
// run of an app (and every test that runs one) would pay for nothing.
#include <cublas_v2.h>

namespace kvlab {

struct CublasLibrary {
  decltype(&cublasCreate_v2) create;
  decltype(&cublasDestroy_v2) destroy;
  decltype(&cublasSetStream_v2) set_stream;
  decltype(&cublasSetWorkspace_v2) set_workspace;
  decltype(&cublasGetVersion_v2) get_version;
  decltype(&cublasGetStatusString) status_string;
  // cublasGemmEx is overloaded in C++ (cudaDataType compute type); this is the C entry point.
  cublasStatus_t (*gemm_ex)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int, const void*,
                            const void*, cudaDataType, int, const void*, cudaDataType, int, const void*, void*,
                            cudaDataType, int, cublasComputeType_t, cublasGemmAlgo_t);
  cublasStatus_t (*gemm_strided_batched_ex)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int,
                                            const void*, const void*, cudaDataType, int, long long, const void*,
                                            cudaDataType, int, long long, const void*, void*, cudaDataType, int,
                                            long long, int, cublasComputeType_t, cublasGemmAlgo_t);
};

// The process's cuBLAS (libcublas.so.<major it was built against>), opened on first use; an
// Error saying what could not be loaded otherwise.
const CublasLibrary& cublas();

}  // namespace kvlab
