#include "kernels/cpu/cpu_ops.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cmath>
#include <functional>
#include <type_traits>
#include <vector>

#include "kernels/cpu/half_simd.h"

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

constexpr int64_t kSmallSample = 2048;  // below this, nth_element on every key is fastest
constexpr int kTopBits = 12;             // the histogram's digit: the key's top 12 bits

#if BR_CPU_F16C
// Lane j of 8: for compaction, the index of the j-th set bit of m (lanes past popcount(m) are
// don't-cares); for expansion, the number of set bits of m below bit j. 4 bits per lane.
struct LaneTables {
  std::array<uint32_t, 256> compact{}, expand{};
  LaneTables() {
    for (uint32_t m = 0; m < 256; ++m) {
      uint32_t c = 0, e = 0;
      int q = 0;
      for (int j = 0; j < 8; ++j) {
        if (m >> j & 1u) c |= uint32_t(j) << (4 * q++);
        e |= uint32_t(std::popcount(m & ((1u << j) - 1u))) << (4 * j);
      }
      compact[m] = c;
      expand[m] = e;
    }
  }
};
const LaneTables& lane_tables() {
  static const LaneTables t;
  return t;
}
inline __m256i lane_indices(uint32_t nibbles) {
  return _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32(int(nibbles)),
                                            _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28)),
                          _mm256_set1_epi32(15));
}
inline __m256i lane_bits() { return _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128); }
#endif

#if BR_CPU_F16C
// The rank-th largest (1-based) t of keys[0, c), all in (lo, lo + range], and in *greater how
// many of them exceed t: nth_element when few, else a 4096-bin histogram of (key - lo - 1) >>
// shift picks the bin and nth_element runs on its keys (gathered to the front; keys[] is
// overwritten).
uint32_t kth_largest(uint32_t* keys, int64_t c, int64_t rank, int64_t lo, int64_t range,
                     std::vector<uint32_t>& hist, int64_t* greater) {
  *greater = 0;
  if (c > kSmallSample) {
    constexpr size_t kBins = size_t(1) << kTopBits;
    const int sh = std::max(0, int(std::bit_width(uint64_t(range))) - kTopBits);
    const uint32_t base = uint32_t(lo + 1);
    hist.assign(2 * kBins, 0u);
    int64_t i = 0;
    for (; i + 2 <= c; i += 2) {
      ++hist[size_t((keys[i] - base) >> sh)];
      ++hist[kBins + size_t((keys[i + 1] - base) >> sh)];
    }
    if (i < c) ++hist[size_t((keys[i] - base) >> sh)];
    int64_t above = 0;
    size_t d = kBins - 1;
    for (; d > 0; --d) {
      const int64_t h = int64_t(hist[d]) + int64_t(hist[kBins + d]);
      if (above + h >= rank) break;
      above += h;
    }
    int64_t n = 0;
    for (int64_t j = 0; j < c; ++j) {
      const uint32_t key = keys[j];
      keys[n] = key;
      n += size_t((key - base) >> sh) == d;
    }
    c = n;
    rank -= above;
    *greater = above;  // the keys of higher bins
  }
  std::nth_element(keys, keys + (rank - 1), keys + c, std::greater<uint32_t>());
  const uint32_t t = keys[rank - 1];
  for (int64_t j = 0; j < c; ++j) *greater += keys[j] > t;
  return t;
}

// The f32 threshold without the full histogram pass (a scalar loop bound by its increments): the
// keys of a strided subsample (the stride odd and prime to 3, so it walks every column of a row
// of 384 or 768) bracket the k-th largest key by ranks 4 standard deviations either side of k's;
// one vector pass counts the keys above the bracket and gathers those inside it, and kth_largest
// finds the key among them. Exact; false (nothing decided) when the k-th largest key falls
// outside the bracket, and the caller counts the histogram instead.
bool select_threshold_sampled(const float* x, int64_t n, int64_t k, std::vector<uint32_t>& keys,
                              std::vector<uint32_t>& hist, Threshold<DType::f32>& r) {
  constexpr int64_t kSample = 512;
  int64_t stride = std::max<int64_t>(1, n / kSample) | 1;
  while (stride % 3 == 0) stride += 2;
  const int64_t m = (n + stride - 1) / stride;
  if (keys.size() < size_t(n + m + 8)) keys.resize(size_t(n + m + 8));
  uint32_t* sample = keys.data() + n + 8;  // past the candidates' room
  for (int64_t j = 0; j < m; ++j) sample[j] = float_bits(x[j * stride]) & 0x7fffffffu;
  const double q = double(k) / double(n), sd = std::sqrt(double(m) * q * (1.0 - q));
  const double mid = q * double(m), margin = 4.0 * sd + 4.0;
  const int64_t r_hi = int64_t(std::floor(mid - margin)), r_lo = int64_t(std::ceil(mid + margin));
  // hi: the r_hi-th largest sampled key (no bound above when r_hi < 1); lo + 1: the r_lo-th
  // largest (no bound below when past the sample).
  int64_t hi = 0x7fffffff, lo = -1;
  if (r_hi >= 1) {
    std::nth_element(sample, sample + (r_hi - 1), sample + m, std::greater<uint32_t>());
    hi = int64_t(sample[r_hi - 1]);
  }
  if (r_lo <= m) {
    std::nth_element(sample, sample + (r_lo - 1), sample + m, std::greater<uint32_t>());
    lo = int64_t(sample[r_lo - 1]) - 1;
  }
  if (lo >= hi) lo = hi - 1;  // equal sampled keys: the bracket is that one key
  // above: keys > hi; candidates: lo < key <= hi, in index order.
  const LaneTables& lt = lane_tables();
  const __m256i abs = _mm256_set1_epi32(0x7fffffff), vhi = _mm256_set1_epi32(int(hi)),
                vlo = _mm256_set1_epi32(int(lo));
  int64_t above = 0, c = 0, i = 0;
#if BR_CPU_AVX512
  {
    const __m512i abs16 = _mm512_set1_epi32(0x7fffffff), hi16 = _mm512_set1_epi32(int(hi)),
                  lo16 = _mm512_set1_epi32(int(lo));
    for (; i + 16 <= n; i += 16) {  // signed compares: keys are below 2^31, lo may be -1
      const __m512i key = _mm512_and_si512(_mm512_loadu_si512(x + i), abs16);
      const __mmask16 gt = _mm512_cmpgt_epi32_mask(key, hi16);
      const __mmask16 in = _mm512_mask_cmpgt_epi32_mask(__mmask16(~gt), key, lo16);
      above += std::popcount(uint32_t(gt));
      _mm512_mask_compressstoreu_epi32(keys.data() + c, in, key);
      c += std::popcount(uint32_t(in));
    }
  }
#endif
  for (; i + 8 <= n; i += 8) {
    const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + i));
    const __m256i key = _mm256_and_si256(raw, abs);
    const __m256i gt = _mm256_cmpgt_epi32(key, vhi);
    const __m256i in = _mm256_andnot_si256(gt, _mm256_cmpgt_epi32(key, vlo));
    above += std::popcount(uint32_t(_mm256_movemask_ps(_mm256_castsi256_ps(gt))));
    const uint32_t mm = uint32_t(_mm256_movemask_ps(_mm256_castsi256_ps(in)));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(keys.data() + c),
                        _mm256_permutevar8x32_epi32(key, lane_indices(lt.compact[mm])));
    c += std::popcount(mm);
  }
  for (; i < n; ++i) {
    const int64_t key = int64_t(float_bits(x[i]) & 0x7fffffffu);
    above += key > hi;
    keys[size_t(c)] = uint32_t(key);
    c += key > lo && key <= hi;
  }
  if (!(above < k && k <= above + c)) return false;
  int64_t greater = 0;
  r.t = kth_largest(keys.data(), c, k - above, lo, hi - lo, hist, &greater);
  r.ties = k - above - greater;
  return true;
}
#endif

// The k-th largest key of a sample and how many of the keys equal to it are kept. Keys are
// counted in a 4096-bin histogram of their top bits (one pass, L1-resident); the bin holding the
// k-th largest is then gathered (a second pass) and nth_element finds the key inside it. Exact,
// whatever the distribution: a sample of equal keys gathers all n of them.
template <DType D>
Threshold<D> select_threshold(const typename Traits<D>::Raw* x, int64_t n, int64_t k,
                              std::vector<typename Traits<D>::Key>& keys,
                              std::vector<uint32_t>& hist) {
  using T = Traits<D>;
  using Key = typename T::Key;
  Threshold<D> r;
  if (keys.size() < size_t(n + 8)) keys.resize(size_t(n + 8));
  if (n <= kSmallSample) {
    for (int64_t i = 0; i < n; ++i) keys[size_t(i)] = T::key(x[i]);
    std::nth_element(keys.begin(), keys.begin() + (k - 1), keys.begin() + n, std::greater<Key>());
    r.t = keys[size_t(k - 1)];
    int64_t greater = 0;
    for (int64_t i = 0; i < n; ++i) greater += T::key(x[i]) > r.t;
    r.ties = k - greater;
    return r;
  }
#if BR_CPU_F16C
  if constexpr (D == DType::f32)
    if (select_threshold_sampled(x, n, k, keys, hist, r)) return r;
#endif
  constexpr int shift = T::kKeyBits - 1 - kTopBits;  // the sign bit is always clear
  // Two interleaved histograms: consecutive keys in one bin do not wait on each other's store.
  constexpr size_t kBins = size_t(1) << kTopBits;
  hist.assign(2 * kBins, 0u);
  {
    int64_t i = 0;
    for (; i + 2 <= n; i += 2) {
      ++hist[size_t(T::key(x[i]) >> shift)];
      ++hist[kBins + size_t(T::key(x[i + 1]) >> shift)];
    }
    if (i < n) ++hist[size_t(T::key(x[i]) >> shift)];
    for (size_t b = 0; b < kBins; ++b) hist[b] += hist[kBins + b];
  }
  int64_t above = 0;
  uint32_t d = (1u << kTopBits) - 1u;
  for (; d > 0; --d) {
    if (above + int64_t(hist[d]) >= k) break;
    above += hist[d];
  }
  const int64_t rank = k - above;  // 1-based, among the keys of bin d
  int64_t c = 0;
  int64_t i = 0;
#if BR_CPU_F16C
  if constexpr (D == DType::f32) {
    const LaneTables& lt = lane_tables();
    const __m256i abs = _mm256_set1_epi32(0x7fffffff);
    const __m256i lo = _mm256_set1_epi32(int(d << shift) - 1);
    const __m256i hi = _mm256_set1_epi32(int(((d + 1u) << shift) - 1u));  // 2^31 - 1 at most
    for (; i + 8 <= n; i += 8) {
      const __m256i key = _mm256_and_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + i)), abs);
      // lo < key <= hi, i.e. key >> shift == d (hi's top bin ends at 2^31 - 1, its own maximum)
      const __m256i in = _mm256_andnot_si256(_mm256_cmpgt_epi32(key, hi), _mm256_cmpgt_epi32(key, lo));
      const uint32_t m = uint32_t(_mm256_movemask_ps(_mm256_castsi256_ps(in)));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(keys.data() + c),
                          _mm256_permutevar8x32_epi32(key, lane_indices(lt.compact[m])));
      c += std::popcount(m);
    }
  }
#endif
  for (; i < n; ++i) {
    const Key key = T::key(x[i]);
    keys[size_t(c)] = key;
    c += (key >> shift) == d;
  }
  std::nth_element(keys.begin(), keys.begin() + (rank - 1), keys.begin() + c, std::greater<Key>());
  r.t = keys[size_t(rank - 1)];
  int64_t greater = 0;
  for (int64_t j = 0; j < c; ++j) greater += keys[size_t(j)] > r.t;
  r.ties = rank - greater;
  return r;
}

// Keep decision of one element: above the threshold, or equal to it among the first `ties`.
template <DType D>
inline bool keep_element(typename Traits<D>::Key key, const Threshold<D>& th, int64_t& ties_left) {
  bool keep = key > th.t;
  if (key == th.t && ties_left > 0) {
    keep = true;
    --ties_left;
  }
  return keep;
}

// One sample, any dtypes: mask words and the kept values in order, in one pass. Returns the
// number of kept elements (k unless something is wrong).
template <DType In, DType Out>
int64_t pack_sample(const typename Traits<In>::Raw* xb, typename Traits<Out>::Raw* vb,
                    uint32_t* mb, int64_t n, int64_t k, const Threshold<In>& th, int64_t w0,
                    int64_t pos) {
  using TI = Traits<In>;
  const int64_t W = sparse_mask_row_bytes(n) / 4;
  int64_t ties_left = th.ties;
  typename TI::Raw kept[32];
  for (int64_t w = w0; w < W; ++w) {
    const int64_t base = w * 32;
    const int end = int(std::min<int64_t>(32, n - base));
    uint32_t word = 0;
    int count = 0;
    for (int j = 0; j < end; ++j) {
      const typename TI::Raw v = xb[base + j];
      const bool keep = keep_element<In>(TI::key(v), th, ties_left);
      word |= uint32_t(keep) << j;
      kept[count] = v;
      count += keep;
    }
    if (pos + count <= k)
      for (int q = 0; q < count; ++q) vb[pos + q] = convert<In, Out>(kept[q]);
    pos += count;
    mb[w] = word;
  }
  return pos;
}

#if BR_CPU_F16C
// One f32 sample into f32 or f16 values, 8 lanes at a time: compare the keys with the threshold,
// take the first ties of the equal ones in index order, compact the kept lanes with a permute
// and convert them; whole 32-element words, then pack_sample for a tail word. The vector store
// writes 8 values and is used only while they stay inside this sample's k.
template <DType Out>
int64_t pack_sample_f32(const float* xb, typename Traits<Out>::Raw* vb, uint32_t* mb, int64_t n,
                        int64_t k, const Threshold<DType::f32>& th) {
  const int64_t full = n / 32;
  int64_t pos = 0, ties_left = th.ties;
#if BR_CPU_AVX512
  // 16 lanes: the compare masks are the mask word's halves, and vcompressps packs the kept lanes
  // (the masked stores write only those: nothing past k).
  const __m512i abs16 = _mm512_set1_epi32(0x7fffffff), t16 = _mm512_set1_epi32(int(th.t));
  for (int64_t w = 0; w < full; ++w) {
    uint32_t word = 0;
    for (int h = 0; h < 2; ++h) {
      const float* xq = xb + w * 32 + h * 16;
      const __m512 v = _mm512_loadu_ps(xq);
      const __m512i key = _mm512_and_si512(_mm512_castps_si512(v), abs16);
      uint32_t m = uint32_t(_mm512_cmpgt_epi32_mask(key, t16));
      if (ties_left > 0) {
        uint32_t eq = uint32_t(_mm512_cmpeq_epi32_mask(key, t16));
        for (; eq && ties_left > 0; eq &= eq - 1, --ties_left) m |= eq & (0u - eq);
      }
      word |= m << (16 * h);
      const int count = std::popcount(m);
      if (pos + count > k) {  // more than k: reported by the caller, nothing written past k
        pos += count;
        continue;
      }
      const __mmask16 km = __mmask16(m);
      if constexpr (Out == DType::f32) {
        _mm512_mask_compressstoreu_ps(vb + pos, km, v);
      } else {
        const __m512 c = _mm512_maskz_compress_ps(km, v);
        const __mmask16 first = __mmask16((1u << count) - 1u);
        if (_mm512_mask_cmp_ps_mask(first, c, c, _CMP_UNORD_Q) == 0) {
          const __m256i hv =
              _mm512_maskz_cvtps_ph(first, c, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
          _mm256_mask_storeu_epi16(vb + pos, first, hv);
        } else {  // a NaN: the scalar conversion's canonical quiet NaN
          alignas(64) float f[16];
          _mm512_store_ps(f, c);
          for (int j = 0; j < count; ++j) vb[pos + j] = float_to_half(f[j]);
        }
      }
      pos += count;
    }
    mb[w] = word;
  }
#else
  const LaneTables& lt = lane_tables();
  const __m256i abs = _mm256_set1_epi32(0x7fffffff), t = _mm256_set1_epi32(int(th.t));
  for (int64_t w = 0; w < full; ++w) {
    uint32_t word = 0;
    for (int q = 0; q < 4; ++q) {
      const float* xq = xb + w * 32 + q * 8;
      const __m256 v = _mm256_loadu_ps(xq);
      const __m256i key = _mm256_and_si256(_mm256_castps_si256(v), abs);
      uint32_t m = uint32_t(_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpgt_epi32(key, t))));
      if (ties_left > 0) {
        uint32_t eq = uint32_t(_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(key, t))));
        for (; eq && ties_left > 0; eq &= eq - 1, --ties_left) m |= eq & (0u - eq);
      }
      word |= m << (8 * q);
      // No branch on m == 0 (a coin flip at 20% kept): an empty group stores 8 don't-cares that
      // the next group overwrites.
      const int count = std::popcount(m);
      if (pos + count > k) {  // more than k: reported by the caller, nothing written past k
        pos += count;
        continue;
      }
      const __m256 c = _mm256_permutevar8x32_ps(v, lane_indices(lt.compact[m]));
      if constexpr (Out == DType::f32) {
        if (pos + 8 <= k) {
          _mm256_storeu_ps(vb + pos, c);
        } else if (count) {
          alignas(32) float tmp[8];
          _mm256_store_ps(tmp, c);
          std::copy(tmp, tmp + count, vb + pos);
        }
      } else {
        alignas(16) uint16_t tmp[8];
        uint16_t* dst = pos + 8 <= k ? vb + pos : tmp;
        if (!halves8_from_floats(dst, c)) {
          alignas(32) float f[8];
          _mm256_store_ps(f, c);
          for (int j = 0; j < count; ++j) dst[j] = float_to_half(f[j]);
        }
        if (dst == tmp) std::copy(tmp, tmp + count, vb + pos);  // count may be 0
      }
      pos += count;
    }
    mb[w] = word;
  }
#endif
  if (full * 32 < n) {
    Threshold<DType::f32> rest{th.t, ties_left};
    pos = pack_sample<DType::f32, Out>(xb, vb, mb, n, k, rest, full, pos);
  }
  return pos;
}

// One sample of f32 or f16 values into f32, 8 lanes at a time: each mask byte's lanes take the
// next values in order (an expanding permute of 8 loaded values), the rest zero. Loads of 8
// values are used only while they stay inside this sample's k.
template <DType V>
void unpack_sample_f32(float* ob, const typename Traits<V>::Raw* vb, const uint32_t* mb,
                       int64_t n, int64_t k) {
  const LaneTables& lt = lane_tables();
  const __m256i bits = lane_bits();
  int64_t chunks = n / 8, c = 0, pos = 0;
#if BR_CPU_AVX512
  // 16 lanes: a masked load of the next count values, expanded to the mask's lanes (vexpandps);
  // loads read only those values.
  for (; c + 2 <= chunks; c += 2) {
    const uint32_t m = (mb[c / 4] >> (8 * (c % 4))) & 0xffffu;
    const int count = std::popcount(m);
    const __mmask16 first = __mmask16((1u << count) - 1u);
    __m512 v;
    if constexpr (V == DType::f32) {
      v = _mm512_maskz_loadu_ps(first, vb + pos);
    } else {
      const __m256i h = _mm256_maskz_loadu_epi16(first, vb + pos);
      const __m256i e = _mm256_set1_epi16(0x7c00);
      if (_mm256_mask_cmpeq_epi16_mask(first, _mm256_and_si256(h, e), e) == 0) {
        v = _mm512_maskz_cvtph_ps(first, h);
      } else {  // an inf or NaN: the scalar conversion
        alignas(64) float f[16] = {};
        for (int j = 0; j < count; ++j) f[j] = convert<V, DType::f32>(vb[pos + j]);
        v = _mm512_load_ps(f);
      }
    }
    _mm512_storeu_ps(ob + c * 8, _mm512_maskz_expand_ps(__mmask16(m), v));
    pos += count;
  }
#endif
  for (; c < chunks; ++c) {
    const uint32_t m = (mb[c / 4] >> (8 * (c % 4))) & 0xffu;
    float* oc = ob + c * 8;  // no branch on m == 0: an empty group selects no lane
    const int count = std::popcount(m);
    __m256 v;
    bool vec = pos + 8 <= k;
    if (vec) {
      if constexpr (V == DType::f32)
        v = _mm256_loadu_ps(vb + pos);
      else
        vec = floats8_from_halves(&v, _mm_loadu_si128(reinterpret_cast<const __m128i*>(vb + pos)));
    }
    if (!vec) {
      alignas(32) float f[8] = {};
      for (int j = 0; j < count; ++j) f[j] = convert<V, DType::f32>(vb[pos + j]);
      v = _mm256_load_ps(f);
    }
    const __m256i sel = _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32(int(m)), bits), bits);
    const __m256 e = _mm256_permutevar8x32_ps(v, lane_indices(lt.expand[m]));
    _mm256_storeu_ps(oc, _mm256_and_ps(e, _mm256_castsi256_ps(sel)));
    pos += count;
  }
  for (int64_t j = chunks * 8; j < n; ++j)
    ob[j] = (mb[j / 32] >> (j % 32) & 1u) ? convert<V, DType::f32>(vb[pos++]) : 0.0f;
}
#endif

// Per sample: threshold, then one pass writing mask words and compacting kept values in order.
template <DType In, DType Out>
void pack_typed(const SparsePack& p, const Tensor& x) {
  using TI = Traits<In>;
  const auto* xs = static_cast<const typename TI::Raw*>(x.raw());
  auto* vs = static_cast<typename Traits<Out>::Raw*>(p.values.raw());
  auto* ms = static_cast<uint32_t*>(p.mask.raw());
  const int64_t B = p.batch, n = p.n, k = p.k, W = sparse_mask_row_bytes(n) / 4;
  std::atomic<int64_t> bad_sample{-1};
#pragma omp parallel if (B > 1 && B * n > (1 << 15))
  {
    std::vector<typename TI::Key> keys;
    std::vector<uint32_t> hist;
#pragma omp for schedule(dynamic, 1)
    for (int64_t b = 0; b < B; ++b) {
      const typename TI::Raw* xb = xs + b * n;
      const Threshold<In> th = select_threshold<In>(xb, n, k, keys, hist);
      int64_t kept;
#if BR_CPU_F16C
      if constexpr (In == DType::f32 && (Out == DType::f32 || Out == DType::f16))
        kept = pack_sample_f32<Out>(xb, vs + b * k, ms + b * W, n, k, th);
      else
#endif
        kept = pack_sample<In, Out>(xb, vs + b * k, ms + b * W, n, k, th, 0, 0);
      if (kept != k) bad_sample = b;
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
#pragma omp parallel for schedule(dynamic, 1) if (B > 1 && B * n > (1 << 15))
  for (int64_t b = 0; b < B; ++b) {
    const uint32_t* mb = ms + b * W;
    const auto* vb = vs + b * k;
    auto* ob = os + b * n;
#if BR_CPU_F16C
    if constexpr (Out == DType::f32 && (V == DType::f32 || V == DType::f16)) {
      unpack_sample_f32<V>(ob, vb, mb, n, k);
      continue;
    }
#endif
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
