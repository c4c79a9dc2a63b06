// Inputs shared by the op table (op_table.cpp) and the special-case tests of kernels/: f64 random
// tensors, poisoned outputs, the bf16 round trip, and the non-random arguments of ops (attention
// and softmax key masks, padding token masks, example ids, token ids, labels).
#pragma once
#include <limits>

#include "harness.h"

namespace br::test {

inline Tensor rand64(const Shape& s, std::mt19937_64& rng, double lo = -1.0, double hi = 1.0) {
  return random_tensor(s, DType::f64, rng, Device::cpu, lo, hi);
}

inline Tensor poisoned(const Shape& s, DType d, Device dev = Device::cpu) {
  Tensor t = Tensor::empty(s, d, dev);
  poison(t);
  return t;
}

// A f32 CPU tensor whose values are representable in `d` (identity for f32).
inline Tensor round_through(const Tensor& t, DType d) {
  return to_dtype_device(to_dtype_device(t, d, Device::cpu), DType::f32, Device::cpu);
}

inline Tensor ids_tensor(const std::vector<int32_t>& v, const Shape& s, Device d = Device::cpu) {
  return Tensor::from_host(v, s, d);
}

// The additive attention mask value of a padded key (kernels/attention.h).
inline constexpr float kMaskedKey = std::numeric_limits<float>::lowest();

// Attention key mask [B, S] f32: sample b has lengths[b] real keys, the rest padded.
inline Tensor key_mask(const std::vector<int64_t>& lengths, int64_t S,
                       Device device = Device::cpu) {
  std::vector<float> m;
  for (int64_t len : lengths)
    for (int64_t j = 0; j < S; ++j) m.push_back(j < len ? 0.0f : kMaskedKey);
  return Tensor::from_host(m, {int64_t(lengths.size()), S}).to(device);
}

// Lengths that exercise the mask: the last sample keeps one key only, the first keeps all.
inline std::vector<int64_t> awkward_lengths(int64_t B, int64_t S) {
  std::vector<int64_t> len(size_t(B), S);
  if (B > 1) len.back() = 1;
  if (B > 2) len[1] = (S + 1) / 2;
  if (B == 1 && S > 2) len[0] = S - 2;
  return len;
}

// Dataset indices of the B samples of a batch, i32 [B] (dropout masks follow them).
inline Tensor example_ids(int64_t B, Device device = Device::cpu) {
  std::vector<int32_t> ids;
  for (int64_t b = 0; b < B; ++b) ids.push_back(int32_t(1000 + 37 * b));
  return Tensor::from_host(ids, {B}).to(device);
}

// Softmax mask [B, Sk] f32: a third of the keys at `neg`, key 0 of every sample visible.
inline Tensor random_key_mask(int64_t B, int64_t Sk, std::mt19937_64& rng, float neg) {
  std::vector<float> m(size_t(B * Sk));
  for (auto& v : m) v = (rng() % 3 == 0) ? neg : 0.0f;
  for (int64_t b = 0; b < B; ++b) m[size_t(b * Sk)] = 0.0f;
  return Tensor::from_host(m, {B, Sk});
}

// Padding token mask i32 [B, S] (1 = token): 0..S tokens padded on the right, plus one hole that is
// not a suffix.
inline Tensor random_token_mask(int64_t B, int64_t S, std::mt19937_64& rng) {
  std::vector<int32_t> m(size_t(B * S));
  for (int64_t b = 0; b < B; ++b) {
    const int64_t len = int64_t(rng() % uint64_t(S + 1));
    for (int64_t s = 0; s < S; ++s) m[size_t(b * S + s)] = s < len ? 1 : 0;
  }
  if (B * S > 2) m[1] = 1 - m[1];
  return Tensor::from_host(m, {B, S});
}

// M token ids in [0, V), a fraction of them 0 ([PAD]-heavy, like padded GLUE batches).
inline std::vector<int32_t> random_ids(int64_t M, int64_t V, std::mt19937_64& rng,
                                       double pad_fraction = 0.0) {
  std::vector<int32_t> v(static_cast<size_t>(M));
  std::uniform_real_distribution<double> u(0, 1);
  for (auto& x : v) x = u(rng) < pad_fraction ? 0 : int32_t(rng() % uint64_t(V));
  return v;
}

// Class labels i32 [B] in [0, C).
inline Tensor random_labels(int64_t B, int64_t C, std::mt19937_64& rng) {
  std::vector<int32_t> v(static_cast<size_t>(B));
  for (auto& x : v) x = int32_t(rng() % uint64_t(C));
  return Tensor::from_host(v, {B});
}

}  // namespace br::test
