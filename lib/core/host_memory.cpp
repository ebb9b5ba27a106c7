#include "core/host_memory.h"

#include <malloc.h>

#include <mutex>

namespace kvlab {

void keep_freed_host_memory() {
  static std::once_flag once;
  std::call_once(once, [] {
    mallopt(M_MMAP_THRESHOLD, 32 << 20);  // glibc's largest: blocks up to 32 MiB come from the heap
    mallopt(M_TRIM_THRESHOLD, 1 << 30);   // and the heap keeps up to 1 GiB of free memory
  });
}

}  // namespace kvlab
