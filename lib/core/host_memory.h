#pragma once
// Large host buffers that are freed and allocated again on every cache-policy call (kept lists,
// scores read back: tens of MB at an 8B shape and a 32K budget) should come back from the heap,
// not as fresh pages: glibc hands blocks above 128 KiB to mmap and returns them on free, and
// faulting them in again cost 60x the selection itself (bench_policy_select: 143 ms against
// 2.3 ms per LaCache call at 32 layers x 8 heads x 32K slots).
namespace kvlab {

// Raises glibc's mmap and trim thresholds (once per process; later calls do nothing).
void keep_freed_host_memory();

}  // namespace kvlab
