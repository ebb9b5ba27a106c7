#include "backend/cuda/cublas_library.h"

#include <dlfcn.h>

#include <string>

#include "core/error.h"

namespace kvlab {

namespace {

const std::string kSoname = "libcublas.so." + std::to_string(CUBLAS_VER_MAJOR);

template <typename F>
void bind(void* lib, const char* name, F& f) {
  f = reinterpret_cast<F>(dlsym(lib, name));
  if (!f) fail("cuda backend: " + kSoname + " has no " + name + " (a cuBLAS " + std::to_string(CUBLAS_VER_MAJOR) +
               ".x is needed)");
}

CublasLibrary open_cublas() {
  void* lib = dlopen(kSoname.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!lib) fail("cuda backend: cannot load cuBLAS: " + std::string(dlerror()));
  CublasLibrary c{};
  bind(lib, "cublasCreate_v2", c.create);
  bind(lib, "cublasDestroy_v2", c.destroy);
  bind(lib, "cublasSetStream_v2", c.set_stream);
  bind(lib, "cublasSetWorkspace_v2", c.set_workspace);
  bind(lib, "cublasGetVersion_v2", c.get_version);
  bind(lib, "cublasGetStatusString", c.status_string);
  bind(lib, "cublasGemmEx", c.gemm_ex);
  bind(lib, "cublasGemmStridedBatchedEx", c.gemm_strided_batched_ex);
  return c;  // the library stays open for the process's life
}

}  // namespace

const CublasLibrary& cublas() {
  static const CublasLibrary library = open_cublas();
  return library;
}

}  // namespace kvlab
