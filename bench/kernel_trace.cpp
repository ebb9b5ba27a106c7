// Every kernel's start and end on the GPU as a program really runs, for where a prompt's time
// goes between kernels: ncu times each kernel alone (at the clock an idle card boosts to, with
// no gaps), so its sum is not a run's time. A CUPTI injection library: the CUDA driver loads it
// into any program started with
//   CUDA_INJECTION64_PATH=/path/libkvlab_kernel_trace.so KVLAB_KERNEL_TRACE=trace.csv kvlab-bench ...
// and at exit it writes one CSV row a kernel, in start order: start_ns,end_ns,grid,name
// (demangled), which scripts/ncu_breakdown.py reads as it reads ncu's CSV.
#include <cupti.h>
#include <cxxabi.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace {

constexpr size_t kBufferBytes = size_t(8) << 20;

struct KernelSpan {
  uint64_t start, end;
  unsigned grid_x, grid_y, grid_z;
  std::string name;
};

std::mutex spans_mutex;
std::vector<KernelSpan> spans;

// Whether r is success; says what failed otherwise (the traced program runs on either way).
bool ok(CUptiResult r, const char* what) {
  if (r == CUPTI_SUCCESS) return true;
  const char* message = "?";
  cuptiGetResultString(r, &message);
  std::fprintf(stderr, "kernel_trace: %s: %s\n", what, message);
  return false;
}

std::string demangled(const char* name) {
  if (!name) return "?";
  int status = 0;
  std::unique_ptr<char, decltype(&std::free)> d(abi::__cxa_demangle(name, nullptr, nullptr, &status), std::free);
  return status == 0 && d ? d.get() : name;  // cuBLAS's kernels carry C names
}

void CUPTIAPI buffer_requested(uint8_t** buffer, size_t* size, size_t* max_records) {
  *buffer = static_cast<uint8_t*>(std::aligned_alloc(8, kBufferBytes));
  *size = *buffer ? kBufferBytes : 0;
  *max_records = 0;
}

void CUPTIAPI buffer_completed(CUcontext, uint32_t, uint8_t* buffer, size_t, size_t valid) {
  std::lock_guard<std::mutex> lock(spans_mutex);
  CUpti_Activity* record = nullptr;
  while (cuptiActivityGetNextRecord(buffer, valid, &record) == CUPTI_SUCCESS) {
    if (record->kind != CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL) continue;
    const auto* k = reinterpret_cast<const CUpti_ActivityKernel10*>(record);
    spans.push_back({k->start, k->end, unsigned(k->gridX), unsigned(k->gridY), unsigned(k->gridZ), demangled(k->name)});
  }
  std::free(buffer);
}

// A CSV field, quoted: demangled names hold commas.
std::string quoted(const std::string& s) {
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

void write_trace() {
  ok(cuptiActivityFlushAll(1), "flushing the activity buffers");  // then writes what it has
  const char* path = std::getenv("KVLAB_KERNEL_TRACE");
  std::lock_guard<std::mutex> lock(spans_mutex);
  std::sort(spans.begin(), spans.end(), [](const KernelSpan& a, const KernelSpan& b) { return a.start < b.start; });
  const std::string tmp = std::string(path) + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "w");
  if (!f) {
    std::fprintf(stderr, "kernel_trace: cannot write %s\n", tmp.c_str());
    return;
  }
  std::fprintf(f, "start_ns,end_ns,grid,name\n");
  for (const KernelSpan& s : spans)
    std::fprintf(f, "%llu,%llu,\"(%u, %u, %u)\",%s\n", static_cast<unsigned long long>(s.start),
                 static_cast<unsigned long long>(s.end), s.grid_x, s.grid_y, s.grid_z, quoted(s.name).c_str());
  const bool written = std::fclose(f) == 0 && std::rename(tmp.c_str(), path) == 0;
  std::fprintf(stderr, "kernel_trace: %zu kernels %s %s\n", spans.size(), written ? "written to" : "NOT written to",
               path);
}

}  // namespace

// The driver's entry point into an injection library; nonzero means loaded.
extern "C" __attribute__((visibility("default"))) int InitializeInjection() {
  if (!std::getenv("KVLAB_KERNEL_TRACE")) {
    std::fprintf(stderr, "kernel_trace: set KVLAB_KERNEL_TRACE to the CSV to write\n");
    return 0;
  }
  // Concurrent-kernel records leave the kernels' overlap (programmatic launches) as it is.
  if (!ok(cuptiActivityRegisterCallbacks(buffer_requested, buffer_completed), "registering the activity buffers") ||
      !ok(cuptiActivityEnable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL), "enabling kernel records"))
    return 0;
  std::atexit(write_trace);
  return 1;
}
