// Allocators with exact accounting: every byte is counted under a category, with current and peak,
// per device. Memory reports read these counters, so they are exact by construction.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/device.h"

namespace br {

enum class MemCategory : uint8_t {
  parameters,
  gradients,
  optimizer_state,
  saved_activations,
  activations,  // forward/backward temporaries that are not saved for backward
  workspace,    // scratch owned by kernels (GEMM workspace, pack buffers, ...)
  other,
};
constexpr int kMemCategories = 7;
std::string_view category_name(MemCategory c);

struct MemoryStats {
  std::array<int64_t, kMemCategories> current{};  // bytes handed out now, by category
  std::array<int64_t, kMemCategories> peak{};     // max of current, by category
  int64_t total_current = 0;                      // sum over categories
  int64_t total_peak = 0;                         // max over time of the sum
  int64_t reserved = 0;   // bytes held from the system (CUDA caching allocator: includes the cache)
  int64_t system_allocs = 0;  // calls to malloc / cudaMalloc made so far

  int64_t cur(MemCategory c) const { return current[size_t(c)]; }
  int64_t max(MemCategory c) const { return peak[size_t(c)]; }
};

// Raw allocation. CPU memory is 64-byte aligned. CUDA memory comes from a caching allocator that
// rounds sizes up to 512 B (small) or 2 MiB (large) blocks and reuses freed blocks.
// `budget_bytes` (0 = unlimited) caps the bytes a device may hand out; exceeding it throws.
void* allocate(Device d, size_t bytes, MemCategory c);
void deallocate(Device d, void* p, size_t bytes, MemCategory c);
// Move `bytes` from one category to another (e.g. an activation adopted by the tape).
void recategorize(Device d, size_t bytes, MemCategory from, MemCategory to);

MemoryStats memory_stats(Device d);
void reset_peak_memory(Device d);  // peak := current
void set_memory_budget(Device d, int64_t budget_bytes);
void release_cached_memory(Device d);  // CUDA: return cached blocks to the driver

// Keeps freed host memory in the process instead of handing it back to the OS after every step:
// glibc then serves blocks up to 256 MiB from its heap rather than from fresh mmaps (which fault
// and zero every page on first touch) and trims the heap only when over 1 GiB of it is free. A CPU
// training step of all-MiniLM-L6-v2 ran ~5% faster with it (docs/RESULTS.md). Settings given in
// the environment (MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_) win; a no-op outside glibc.
// Process-wide, so the library never calls it itself: the CLI does at start, and a trainer of
// your own may.
void retain_freed_host_memory();

}  // namespace br
