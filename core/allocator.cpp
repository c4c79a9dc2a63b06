#include "core/allocator.h"

#include <cstdlib>
#include <map>
#include <mutex>

#include "core/error.h"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#if BERTRAZOR_WITH_CUDA
#include "core/cuda_check.h"
#endif

namespace br {

std::string_view category_name(MemCategory c) {
  switch (c) {
    case MemCategory::parameters: return "parameters";
    case MemCategory::gradients: return "gradients";
    case MemCategory::optimizer_state: return "optimizer_state";
    case MemCategory::saved_activations: return "saved_activations";
    case MemCategory::activations: return "activations";
    case MemCategory::workspace: return "workspace";
    case MemCategory::other: return "other";
  }
  return "?";
}

namespace {

struct Accounting {
  std::mutex mu;
  MemoryStats stats;
  int64_t budget = 0;

  void add(MemCategory c, int64_t bytes) {
    auto i = size_t(c);
    stats.current[i] += bytes;
    if (stats.current[i] > stats.peak[i]) stats.peak[i] = stats.current[i];
    stats.total_current += bytes;
    if (stats.total_current > stats.total_peak) stats.total_peak = stats.total_current;
  }
};

Accounting& accounting(Device d) {
  static Accounting cpu, gpu;
  return d == Device::cpu ? cpu : gpu;
}

#if BERTRAZOR_WITH_CUDA
// Caching allocator for one device and one stream: freed blocks are kept by rounded size and reused.
// Small requests round to 512 B, large ones (>= 1 MiB) to 2 MiB, so the cache stays reusable.
struct CudaCache {
  std::multimap<size_t, void*> free_blocks;  // rounded size -> block
  std::map<void*, size_t> block_size;        // every live or cached block

  static size_t round(size_t bytes) {
    if (bytes == 0) bytes = 1;
    if (bytes < (size_t(1) << 20)) return (bytes + 511) & ~size_t(511);
    size_t big = size_t(2) << 20;
    return (bytes + big - 1) / big * big;
  }
};
CudaCache& cuda_cache() {
  static CudaCache c;
  return c;
}
#endif

}  // namespace

void* allocate(Device d, size_t bytes, MemCategory c) {
  Accounting& a = accounting(d);
  std::lock_guard<std::mutex> lock(a.mu);
  if (a.budget > 0 && a.stats.total_current + int64_t(bytes) > a.budget)
    fail("allocate: {} bytes of {} on {} would exceed the memory budget of {} bytes ({} in use)",
         bytes, category_name(c), device_name(d), a.budget, a.stats.total_current);
  void* p = nullptr;
  if (d == Device::cpu) {
    size_t rounded = (bytes + 63) & ~size_t(63);
    p = std::aligned_alloc(64, rounded ? rounded : 64);
    if (!p) fail("allocate: out of host memory allocating {} bytes of {}", bytes, category_name(c));
    a.stats.system_allocs++;
    a.stats.reserved += int64_t(bytes);
  } else {
#if BERTRAZOR_WITH_CUDA
    CudaCache& cache = cuda_cache();
    size_t rounded = CudaCache::round(bytes);
    auto it = cache.free_blocks.lower_bound(rounded);
    // Reuse a cached block of the same size class (at most 2x larger for small ones).
    if (it != cache.free_blocks.end() && it->first <= rounded * 2 && it->first - rounded < (64u << 20)) {
      p = it->second;
      cache.free_blocks.erase(it);
    } else {
      cudaError_t e = cudaMalloc(&p, rounded);
      if (e == cudaErrorMemoryAllocation && !cache.free_blocks.empty()) {
        cudaGetLastError();
        for (auto& [sz, blk] : cache.free_blocks) {
          BR_CUDA_CHECK(cudaFree(blk));
          cache.block_size.erase(blk);
          a.stats.reserved -= int64_t(sz);
        }
        cache.free_blocks.clear();
        e = cudaMalloc(&p, rounded);
      }
      if (e != cudaSuccess) {
        cudaGetLastError();
        fail("allocate: cudaMalloc of {} bytes for {} failed: {} ({} bytes in use)", rounded,
             category_name(c), cudaGetErrorString(e), a.stats.total_current);
      }
      cache.block_size[p] = rounded;
      a.stats.system_allocs++;
      a.stats.reserved += int64_t(rounded);
    }
#else
    fail("allocate: {} bytes on cuda, but this build has no CUDA", bytes);
#endif
  }
  a.add(c, int64_t(bytes));
  return p;
}

void deallocate(Device d, void* p, size_t bytes, MemCategory c) {
  if (!p) return;
  Accounting& a = accounting(d);
  std::lock_guard<std::mutex> lock(a.mu);
  a.add(c, -int64_t(bytes));
  if (d == Device::cpu) {
    std::free(p);
    a.stats.reserved -= int64_t(bytes);
    return;
  }
#if BERTRAZOR_WITH_CUDA
  CudaCache& cache = cuda_cache();
  cache.free_blocks.emplace(cache.block_size.at(p), p);
#endif
}

void recategorize(Device d, size_t bytes, MemCategory from, MemCategory to) {
  if (from == to) return;
  Accounting& a = accounting(d);
  std::lock_guard<std::mutex> lock(a.mu);
  a.add(from, -int64_t(bytes));
  a.add(to, int64_t(bytes));
}

MemoryStats memory_stats(Device d) {
  Accounting& a = accounting(d);
  std::lock_guard<std::mutex> lock(a.mu);
  return a.stats;
}

void reset_peak_memory(Device d) {
  Accounting& a = accounting(d);
  std::lock_guard<std::mutex> lock(a.mu);
  a.stats.peak = a.stats.current;
  a.stats.total_peak = a.stats.total_current;
}

void set_memory_budget(Device d, int64_t budget_bytes) {
  Accounting& a = accounting(d);
  std::lock_guard<std::mutex> lock(a.mu);
  a.budget = budget_bytes;
}

void release_cached_memory(Device d) {
#if BERTRAZOR_WITH_CUDA
  if (d != Device::cuda) return;
  Accounting& a = accounting(d);
  std::lock_guard<std::mutex> lock(a.mu);
  CudaCache& cache = cuda_cache();
  BR_CUDA_CHECK(cudaStreamSynchronize(cuda::stream()));
  for (auto& [sz, blk] : cache.free_blocks) {
    BR_CUDA_CHECK(cudaFree(blk));
    cache.block_size.erase(blk);
    a.stats.reserved -= int64_t(sz);
  }
  cache.free_blocks.clear();
#endif
}

void retain_freed_host_memory() {
#if defined(__GLIBC__)
  auto unset = [](const char* name) {
    const char* v = std::getenv(name);
    return !(v && *v);
  };
  if (unset("MALLOC_MMAP_THRESHOLD_")) mallopt(M_MMAP_THRESHOLD, 256 << 20);
  if (unset("MALLOC_TRIM_THRESHOLD_")) mallopt(M_TRIM_THRESHOLD, 1 << 30);
#endif
}

}  // namespace br
