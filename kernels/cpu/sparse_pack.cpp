#include "kernels/cpu/cpu_ops.h"

#include <algorithm>
#include <atomic>
#include <bit>
#include <functional>
#include <type_traits>
#include <vector>

namespace br::cpu {

static_assert(std::endian::native == std::endian::little,
              "sparse_pack: the mask is stored as little-endian 32-bit words");

namespace {

// Per dtype: storage type, magnitude key (sign bit cleared; unsigned order == |x| order, NaN
// largest), and conversions through float (double for f64) that round to nearest even.
template <DType D> struct Traits;
template <> struct Traits<DType::f32> {
  using Raw = float;
  using Key = uint32_t;
  static constexpr int kKeyBits = 32;
  static Key key(Raw v) { return float_bits(v) & 0x7fffffffu; }
  static float to_float(Raw v) { return v; }
  static Raw from_float(float f) { return f; }
};
template <> struct Traits<DType::f64> {
  using Raw = double;
  using Key = uint64_t;
  static constexpr int kKeyBits = 64;
  static Key key(Raw v) { return std::bit_cast<uint64_t>(v) & 0x7fffffffffffffffull; }
  static float to_float(Raw v) { return float(v); }
  static Raw from_float(float f) { return f; }
};
template <> struct Traits<DType::f16> {
  using Raw = uint16_t;
  using Key = uint32_t;
  static constexpr int kKeyBits = 16;
  static Key key(Raw v) { return v & 0x7fffu; }
  static float to_float(Raw v) { return half_to_float(v); }
  static Raw from_float(float f) { return float_to_half(f); }
};
template <> struct Traits<DType::bf16> {
  using Raw = uint16_t;
  using Key = uint32_t;
  static constexpr int kKeyBits = 16;
  static Key key(Raw v) { return v & 0x7fffu; }
  static float to_float(Raw v) { return bf16_to_float(v); }
  static Raw from_float(float f) { return float_to_bf16(f); }
};

// In -> Out element conversion: a bit copy for equal dtypes, exact through double when one side is
// f64 and the other f32, else through float (f64 -> f16 narrows via float, as kernels/cast does).
template <DType In, DType Out>
typename Traits<Out>::Raw convert(typename Traits<In>::Raw v) {
  if constexpr (In == Out) {
    return v;
  } else if constexpr (In == DType::f64 && Out == DType::f32) {
    return float(v);
  } else if constexpr (Out == DType::f64) {
    return double(Traits<In>::to_float(v));
  } else {
    return Traits<Out>::from_float(Traits<In>::to_float(v));
  }
}

// The k-th largest key t of one sample and how many elements equal to t are kept (the first
// `ties` of them in index order): keep = key > t, or key == t among the first `ties`.
template <DType D>
struct Threshold {
  typename Traits<D>::Key t = 0;
  int64_t ties = 0;
};

constexpr int64_t kSmallSample = 2048;  // below this, nth_element beats a 65536-bin histogram

template <DType D>
Threshold<D> select_threshold(const typename Traits<D>::Raw* x, int64_t n, int64_t k,
                              std::vector<typename Traits<D>::Key>& keys,
                              std::vector<uint32_t>& hist) {
  using T = Traits<D>;
  using Key = typename T::Key;
  Threshold<D> r;
  if (n <= kSmallSample) {
    keys.resize(size_t(n));
    for (int64_t i = 0; i < n; ++i) keys[size_t(i)] = T::key(x[i]);
    std::nth_element(keys.begin(), keys.begin() + (k - 1), keys.end(), std::greater<Key>());
    r.t = keys[size_t(k - 1)];
    int64_t greater = 0;
    for (int64_t i = 0; i < n; ++i) greater += T::key(x[i]) > r.t;
    r.ties = k - greater;
    return r;
  }
  // Radix select over 16-bit digits, most significant first: find the digit holding the rank-th
  // largest key among those matching the prefix so far, then narrow the rank to that digit.
  hist.resize(65536);
  Key prefix = 0, pmask = 0;
  int64_t rank = k;
  for (int shift = T::kKeyBits - 16; shift >= 0; shift -= 16) {
    std::fill(hist.begin(), hist.end(), 0u);
    if (pmask == 0) {
      for (int64_t i = 0; i < n; ++i) ++hist[size_t((T::key(x[i]) >> shift) & 0xffffu)];
    } else {
      for (int64_t i = 0; i < n; ++i) {
        Key key = T::key(x[i]);
        if ((key & pmask) == prefix) ++hist[size_t((key >> shift) & 0xffffu)];
      }
    }
    int64_t above = 0;
    uint32_t d = 65535;
    for (; d > 0; --d) {
      if (above + int64_t(hist[d]) >= rank) break;
      above += hist[d];
    }
    prefix |= Key(d) << shift;
    pmask |= Key(0xffffu) << shift;
    rank -= above;
  }
  r.t = prefix;
  r.ties = rank;
  return r;
}

// Per sample: threshold, then one pass writing mask words and compacting kept values in order.
template <DType In, DType Out>
void pack_typed(const SparsePack& p, const Tensor& x) {
  using TI = Traits<In>;
  const auto* xs = static_cast<const typename TI::Raw*>(x.raw());
  auto* vs = static_cast<typename Traits<Out>::Raw*>(p.values.raw());
  auto* ms = static_cast<uint32_t*>(p.mask.raw());
  const int64_t B = p.batch, n = p.n, k = p.k, W = sparse_mask_row_bytes(n) / 4;
  std::atomic<int64_t> bad_sample{-1};
#pragma omp parallel
  {
    std::vector<typename TI::Key> keys;
    std::vector<uint32_t> hist;
#pragma omp for schedule(dynamic, 1)
    for (int64_t b = 0; b < B; ++b) {
      const typename TI::Raw* xb = xs + b * n;
      auto* vb = vs + b * k;
      uint32_t* mb = ms + b * W;
      Threshold<In> th = select_threshold<In>(xb, n, k, keys, hist);
      int64_t pos = 0, ties_left = th.ties;
      typename TI::Raw kept[32];
      for (int64_t w = 0; w < W; ++w) {
        const int64_t base = w * 32;
        const int end = int(std::min<int64_t>(32, n - base));
        uint32_t word = 0;
        int count = 0;
        for (int j = 0; j < end; ++j) {
          const typename TI::Raw v = xb[base + j];
          const auto key = TI::key(v);
          bool keep = key > th.t;
          if (key == th.t && ties_left > 0) {
            keep = true;
            --ties_left;
          }
          word |= uint32_t(keep) << j;
          kept[count] = v;
          count += keep;
        }
        if (pos + count <= k)
          for (int q = 0; q < count; ++q) vb[pos + q] = convert<In, Out>(kept[q]);
        pos += count;
        mb[w] = word;
      }
      if (pos != k) bad_sample = b;
    }
  }
  BR_CHECK(bad_sample < 0, "pack_topk: internal error, sample {} of {} kept a count other than k={}",
           bad_sample.load(), x.str(), k);
}

// Per sample: scatter the kept values (in order) to the set bits, zeros elsewhere.
template <DType V, DType Out>
void unpack_typed(const Tensor& out, const SparsePack& p) {
  using TO = Traits<Out>;
  const auto* vs = static_cast<const typename Traits<V>::Raw*>(p.values.raw());
  const auto* ms = static_cast<const uint32_t*>(p.mask.raw());
  auto* os = static_cast<typename TO::Raw*>(out.raw());
  const int64_t B = p.batch, n = p.n, k = p.k, W = sparse_mask_row_bytes(n) / 4;
  const typename TO::Raw zero = convert<DType::f32, Out>(0.0f);
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t b = 0; b < B; ++b) {
    const uint32_t* mb = ms + b * W;
    const auto* vb = vs + b * k;
    auto* ob = os + b * n;
    int64_t pos = 0;
    for (int64_t w = 0; w < W; ++w) {
      const int64_t base = w * 32;
      const int end = int(std::min<int64_t>(32, n - base));
      uint32_t word = mb[w];
      std::fill(ob + base, ob + base + end, zero);
      for (; word; word &= word - 1) ob[base + std::countr_zero(word)] = convert<V, Out>(vb[pos++]);
    }
  }
}

// Every row of a mask must hold exactly k set bits and no padding bits, or unpack would read past
// its values.
void check_mask(const SparsePack& p) {
  const auto* ms = static_cast<const uint32_t*>(p.mask.raw());
  const int64_t W = sparse_mask_row_bytes(p.n) / 4;
  const uint32_t tail = p.n % 32 == 0 ? ~0u : (1u << (p.n % 32)) - 1u;
  for (int64_t b = 0; b < p.batch; ++b) {
    int64_t bits = 0;
    for (int64_t w = 0; w < W; ++w) bits += std::popcount(ms[b * W + w]);
    BR_CHECK(bits == p.k && (ms[b * W + W - 1] & ~tail) == 0,
             "unpack: mask row {} of a pack of shape {} has {} bits set (padding {}), expected k={}",
             b, shape_str(p.shape), bits, (ms[b * W + W - 1] & ~tail) ? "set" : "clear", p.k);
  }
}

// Calls f(std::integral_constant<DType, d>{}) for a floating dtype d.
template <class F>
void dispatch_float(DType d, const char* op, F&& f) {
  switch (d) {
    case DType::f32: return f(std::integral_constant<DType, DType::f32>{});
    case DType::f64: return f(std::integral_constant<DType, DType::f64>{});
    case DType::f16: return f(std::integral_constant<DType, DType::f16>{});
    case DType::bf16: return f(std::integral_constant<DType, DType::bf16>{});
    default: fail("{}: unsupported dtype {}", op, dtype_name(d));
  }
}

}  // namespace

void pack_topk(const SparsePack& p, const Tensor& x) {
  dispatch_float(x.dtype(), "pack_topk", [&](auto in) {
    dispatch_float(p.values.dtype(), "pack_topk", [&](auto out) {
      pack_typed<decltype(in)::value, decltype(out)::value>(p, x);
    });
  });
}

void unpack(const Tensor& out, const SparsePack& p) {
  check_mask(p);
  dispatch_float(p.values.dtype(), "unpack", [&](auto v) {
    dispatch_float(out.dtype(), "unpack", [&](auto o) {
      unpack_typed<decltype(v)::value, decltype(o)::value>(out, p);
    });
  });
}

}  // namespace br::cpu
