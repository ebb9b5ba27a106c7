#include "backend/backend.h"

#include <algorithm>

#include "backend/cpu/cpu_backend.h"
#include "core/error.h"
#ifdef KVLAB_CUDA
#include "backend/cuda/cuda_backend.h"
#endif

namespace kvlab {

// TODO(cache-policies-cuda): make these pure once the CUDA backend implements them.
void Backend::accumulate_attention(const Tensor&, KVCache&, int, float, int) {
  fail(description() + ": accumulate_attention is not implemented", kExitInternal);
}
void Backend::kv_compact(KVCache&, int, const Tensor&, const Tensor&, const RopeTable*) {
  fail(description() + ": kv_compact is not implemented", kExitInternal);
}

size_t Backend::allocated_bytes() const { fail(description() + ": allocation tracking is not implemented", kExitInternal); }
size_t Backend::peak_allocated_bytes() const { fail(description() + ": allocation tracking is not implemented", kExitInternal); }
void Backend::reset_peak() { fail(description() + ": allocation tracking is not implemented", kExitInternal); }
double Backend::measure_copy_bandwidth() { fail(description() + ": copy bandwidth is not implemented", kExitInternal); }

void AllocationCounter::add(size_t bytes) {
  current_ += bytes;
  peak_ = std::max(peak_, current_);
}
void AllocationCounter::remove(size_t bytes) { current_ -= bytes; }

BackendKind backend_kind_from_name(const std::string& name) {
  if (name == "cpu") return BackendKind::CPU;
  if (name == "cuda") return BackendKind::CUDA;
  fail("unknown backend \"" + name + "\" (choose cpu or cuda)");
}

bool cuda_compiled() {
#ifdef KVLAB_CUDA
  return true;
#else
  return false;
#endif
}

int cuda_device_count() {
#ifdef KVLAB_CUDA
  return cuda_visible_devices();
#else
  return 0;
#endif
}

std::unique_ptr<Backend> make_backend(BackendKind kind, int device_index) {
  if (kind == BackendKind::CPU) return make_cpu_backend();
#ifdef KVLAB_CUDA
  if (cuda_device_count() == 0) fail("--backend cuda: no CUDA device is visible");
  return make_cuda_backend(device_index);
#else
  (void)device_index;
  fail("--backend cuda: this kvlab was built without CUDA (configure with -DKVLAB_CUDA=ON)");
#endif
}

}  // namespace kvlab
