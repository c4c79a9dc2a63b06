// Tape: the bytes it reports equal what the allocator counts under saved_activations, per policy,
// and return to zero after restore; restore gives back the saved dtype and shape.
#include <cstring>

#include "harness.h"
#include "core/allocator.h"
#include "models/tape.h"
#include "kernels/sparse_pack.h"

using namespace br;

namespace {

int64_t saved_now() { return memory_stats(Device::cpu).cur(MemCategory::saved_activations); }
int64_t activations_now() { return memory_stats(Device::cpu).cur(MemCategory::activations); }

}  // namespace

TEST_CASE("tape adopts a dense tensor it alone would hold", "[models][tape]") {
  std::mt19937_64 rng(11);
  Tensor x = test::random_tensor({3, 17}, DType::f32, rng);
  std::vector<float> orig = x.to_vector<float>();
  const void* data = x.raw();
  int64_t saved0 = saved_now(), act0 = activations_now();
  Tape tape;
  tape.save(TapeKey{0, Site::attn_input}, x);
  CHECK(tape.bytes() == 3 * 17 * 4);
  CHECK(saved_now() - saved0 == tape.bytes());
  CHECK(act0 - activations_now() == tape.bytes());  // moved, not copied
  CHECK(x.category() == MemCategory::saved_activations);
  REQUIRE(tape.records().size() == 1);
  CHECK(tape.records()[0].stored_bytes == tape.bytes());
  CHECK(tape.records()[0].dense_bytes == tape.bytes());
  CHECK(tape.records()[0].kept_per_sample == 17);

  Tensor y = tape.restore(TapeKey{0, Site::attn_input});
  CHECK(y.raw() == data);
  CHECK(y.to_vector<float>() == orig);
  CHECK(y.category() == MemCategory::activations);
  CHECK(tape.bytes() == 0);
  CHECK(saved_now() == saved0);
  CHECK(activations_now() == act0);
  CHECK(tape.peak_bytes() == 3 * 17 * 4);
  CHECK(!tape.has(TapeKey{0, Site::attn_input}));
}

TEST_CASE("tape copies a dense tensor that is shared or a view", "[models][tape]") {
  std::mt19937_64 rng(12);
  Tensor x = test::random_tensor({4, 9}, DType::f32, rng);
  Tensor other = x;  // a second holder: adopting would let it change the saved copy
  int64_t saved0 = saved_now(), act0 = activations_now();
  Tape tape;
  tape.save(TapeKey{0, Site::q}, x);
  tape.save(TapeKey{0, Site::k}, x.rows(1, 3));
  CHECK(tape.bytes() == 4 * 9 * 4 + 2 * 9 * 4);
  CHECK(saved_now() - saved0 == tape.bytes());
  CHECK(activations_now() == act0);
  CHECK(x.category() == MemCategory::activations);
  x.data<float>()[0] = 123.0f;
  Tensor a = tape.restore(TapeKey{0, Site::q});
  CHECK(a.raw() != x.raw());
  CHECK(a.data<float>()[0] != 123.0f);
  Tensor v = tape.restore(TapeKey{0, Site::k});
  CHECK(v.shape() == Shape{2, 9});
  CHECK(std::memcmp(v.raw(), x.rows(1, 3).raw(), v.nbytes()) == 0);
  CHECK(saved_now() == saved0);
  CHECK(tape.bytes() == 0);
  CHECK(tape.peak_bytes() == 6 * 9 * 4);
}

TEST_CASE("tape low precision saves round to the value dtype", "[models][tape]") {
  std::mt19937_64 rng(13);
  Tensor x = test::random_tensor({2, 3, 7}, DType::f32, rng);
  int64_t saved0 = saved_now();
  Tape tape;
  tape.save(TapeKey{0, Site::gelu_input}, x, SitePolicy{SaveMode::low_precision, DType::f16, 0.0});
  tape.save(TapeKey{0, Site::k}, x, SitePolicy{SaveMode::low_precision, DType::bf16, 0.0});
  CHECK(tape.bytes() == 2 * 42 * 2);
  CHECK(saved_now() - saved0 == tape.bytes());
  Tensor h = tape.restore(TapeKey{0, Site::gelu_input});
  CHECK(h.dtype() == DType::f32);
  CHECK(h.shape() == x.shape());
  for (int64_t i = 0; i < x.numel(); ++i)
    REQUIRE(h.data<float>()[i] == half_to_float(float_to_half(x.data<float>()[i])));
  CHECK(saved_now() - saved0 == 42 * 2);
  Tensor b = tape.restore(TapeKey{0, Site::k});
  for (int64_t i = 0; i < x.numel(); ++i)
    REQUIRE(b.data<float>()[i] == bf16_to_float(float_to_bf16(x.data<float>()[i])));
  CHECK(saved_now() == saved0);

  Tensor x16 = cast(x, DType::f16);
  tape.save(TapeKey{0, Site::v}, x16, SitePolicy{SaveMode::low_precision, DType::f16, 0.0});  // behaves as dense
  CHECK(x16.category() == MemCategory::saved_activations);
  CHECK(tape.bytes() == 42 * 2);
  Tensor s = tape.restore(TapeKey{0, Site::v});
  CHECK(s.raw() == x16.raw());
  CHECK(saved_now() == saved0);
}

TEST_CASE("tape sparse saves hold mask + k values and restore the pruned tensor", "[models][tape]") {
  std::mt19937_64 rng(14);
  Tensor x = test::random_tensor({3, 5, 19}, DType::f32, rng);
  int64_t saved0 = saved_now();
  Tape tape;
  SitePolicy sp{SaveMode::sparse, DType::f16, 0.8};
  tape.save(TapeKey{0, Site::probs}, x, sp);
  const int64_t n = 95, k = backrazor_keep_count(n, 0.8);
  CHECK(tape.bytes() == sparse_pack_bytes(3, n, 0.8, DType::f16));
  CHECK(tape.bytes() == 3 * (12 + k * 2));
  CHECK(saved_now() - saved0 == tape.bytes());
  CHECK(x.category() == MemCategory::activations);
  const SiteRecord& r = tape.records().at(0);
  CHECK(r.site == "layer0.probs");
  CHECK(r.key == TapeKey{0, Site::probs});
  CHECK(r.dense_bytes == 3 * n * 4);
  CHECK(r.stored_bytes == tape.bytes());
  CHECK(r.kept_per_sample == k);
  CHECK(r.policy.mode == SaveMode::sparse);

  Tensor y = tape.restore(TapeKey{0, Site::probs});
  CHECK(y.shape() == x.shape());
  CHECK(y.dtype() == DType::f32);
  Tensor want = unpack(pack_topk(x, 0.8, DType::f16));
  CHECK(std::memcmp(y.raw(), want.raw(), y.nbytes()) == 0);
  int64_t nonzero = 0;
  for (int64_t i = 0; i < y.numel(); ++i) nonzero += y.data<float>()[i] != 0.0f;
  CHECK(nonzero == 3 * k);
  CHECK(saved_now() == saved0);
  CHECK(tape.bytes() == 0);
  CHECK(tape.records().size() == 1);  // records outlive the entry, for memory reports
}

// A given kept count (a batch split by length keeps the counts of the whole batch's length): the
// k largest per sample, in save() and in begin_rows/save_rows alike; out of [1, n] is an error.
TEST_CASE("tape sparse saves with a given kept count", "[models][tape]") {
  std::mt19937_64 rng(15);
  Tensor x = test::random_tensor({3, 4, 9}, DType::f32, rng);
  const SitePolicy sp{SaveMode::sparse, DType::f32, 0.8};
  const int64_t n = 36, keep = 17;  // backrazor_keep_count(36, 0.8) would keep 8
  Tape tape;
  tape.save(TapeKey{0, Site::q}, x, sp, keep);
  tape.begin_rows(TapeKey{0, Site::k}, x.shape(), DType::f32, sp, keep);
  tape.save_rows(TapeKey{0, Site::k}, 0, x.rows(0, 2));
  tape.save_rows(TapeKey{0, Site::k}, 2, x.rows(2, 3));
  CHECK(tape.records().at(0).kept_per_sample == keep);
  CHECK(tape.records().at(1).kept_per_sample == keep);
  CHECK(tape.bytes() == 2 * 3 * (sparse_mask_row_bytes(n) + keep * 4));
  // The pack of exactly `keep` values: that of the ratio whose keep count it is.
  const double ratio = double(n - keep + 1) / double(n);
  REQUIRE(backrazor_keep_count(n, ratio) == keep);
  Tensor want = unpack(pack_topk(x, ratio, DType::f32));
  for (Site site : {Site::q, Site::k}) {
    Tensor y = tape.restore(TapeKey{0, site});
    CHECK(std::memcmp(y.raw(), want.raw(), y.nbytes()) == 0);
  }
  CHECK_THROWS_WITH(tape.save(TapeKey{0, Site::v}, x, sp, n + 1),
                    Catch::Contains("layer0.v") && Catch::Contains("37 kept values per sample of 36"));
  CHECK_THROWS_WITH(tape.begin_rows(TapeKey{0, Site::v}, x.shape(), DType::f32, sp, -2),
                    Catch::Contains("layer0.v") && Catch::Contains("-2 kept values"));
  CHECK_FALSE(tape.has(TapeKey{0, Site::v}));
}

TEST_CASE("tape sparse keep-all restores exactly (spec 7 exactness test)", "[models][tape]") {
  uint64_t seed = test::fresh_seed();
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  for (DType dt : {DType::f32, DType::f64})
    for (const Shape& shape : std::vector<Shape>{{1, 1}, {2, 33}, {3, 4, 37}, {1, 2500}}) {
      INFO(dtype_name(dt) << shape_str(shape));
      Tensor x = test::random_tensor(shape, dt, rng);
      Tape tape;
      tape.save(TapeKey{0, Site::attn_input}, x, SitePolicy{SaveMode::sparse, dt, 0.0});
      CHECK(tape.records()[0].kept_per_sample == x.numel() / x.size(0));
      Tensor y = tape.restore(TapeKey{0, Site::attn_input});
      REQUIRE(y.dtype() == dt);
      REQUIRE(y.shape() == x.shape());
      CHECK(std::memcmp(y.raw(), x.raw(), x.nbytes()) == 0);
    }
}

TEST_CASE("tape peak, clear and error messages", "[models][tape]") {
  std::mt19937_64 rng(15);
  int64_t saved0 = saved_now(), act0 = activations_now();
  Tape tape;
  {
    Tensor a = test::random_tensor({2, 8}, DType::f32, rng);
    Tensor b = test::random_tensor({2, 8}, DType::f32, rng);
    tape.save(TapeKey{0, Site::q}, a);
    tape.save(TapeKey{0, Site::k}, b, SitePolicy{SaveMode::sparse, DType::f32, 0.5});
    CHECK(tape.peak_bytes() == 64 + 2 * 4 + 2 * 5 * 4);
    CHECK_THROWS_WITH(tape.save(TapeKey{0, Site::q}, b), Catch::Contains("Tape::save: site 'layer0.q' is already saved"));
    CHECK_THROWS_WITH(tape.restore(TapeKey{0, Site::v}),
                      Catch::Contains("Tape::restore: site 'layer0.v' is not saved (held: layer0.q, layer0.k)"));
    Tensor ra = tape.restore(TapeKey{0, Site::q});
    CHECK(tape.peak_bytes() == 64 + 2 * 4 + 2 * 5 * 4);
    CHECK(tape.bytes() == 2 * 4 + 2 * 5 * 4);
    tape.save(TapeKey{0, Site::q}, ra);  // restored sites can be saved again (copied: `a` and `ra` share it)
    CHECK(tape.records().size() == 3);
    Tensor c = test::random_tensor({5}, DType::f32, rng);
    tape.save(TapeKey{0, Site::v}, c);
    CHECK(c.category() == MemCategory::saved_activations);
    // `c` is still held here while the tape is cleared: its bytes go back to activations.
    tape.clear();
    CHECK(c.category() == MemCategory::activations);
    CHECK(tape.bytes() == 0);
    CHECK(tape.peak_bytes() == 0);
    CHECK(tape.records().empty());
    CHECK(saved_now() == saved0);
  }
  CHECK(activations_now() == act0);
  CHECK_THROWS_WITH(tape.restore(TapeKey{0, Site::attn_input}), Catch::Contains("site 'layer0.attn_input' is not saved (held: none)"));
  CHECK_THROWS_WITH(tape.save(TapeKey{-1, Site::pooler_input}, Tensor()), Catch::Contains("Tape::save"));
  CHECK_THROWS_WITH(
      tape.save(TapeKey{1, Site::q}, Tensor::zeros({2, 3}, DType::f32), SitePolicy{SaveMode::sparse, DType::f16, 2.0}),
      Catch::Contains("prune_ratio 2 not in [0, 1]"));
  CHECK(!tape.has(TapeKey{1, Site::q}));
  CHECK(tape.bytes() == 0);
  Tape gpu_tape(Device::cuda);
  CHECK_THROWS_WITH(gpu_tape.save(TapeKey{-1, Site::emb_ln_input}, Tensor::zeros({2}, DType::f32)),
                    Catch::Contains("site 'emb_ln_input': tensor f32[2]@cpu is not on the tape's device cuda"));
  // recompute: recorded with 0 bytes stored, nothing held, restoring it names the mode.
  Tensor r = test::random_tensor({4, 6}, DType::f32, rng);
  tape.save(TapeKey{0, Site::ffn2_input}, r, SitePolicy{SaveMode::recompute, DType::f32, 0.0});
  CHECK_FALSE(tape.has(TapeKey{0, Site::ffn2_input}));
  CHECK(tape.bytes() == 0);
  REQUIRE(tape.records().size() == 1);
  CHECK(tape.records()[0].stored_bytes == 0);
  CHECK(tape.records()[0].dense_bytes == 4 * 6 * 4);
  CHECK(r.category() == MemCategory::activations);
  CHECK_THROWS_WITH(tape.restore(TapeKey{0, Site::ffn2_input}), Catch::Contains("site 'layer0.ffn2_input' was saved as recompute"));
  // the same record without the tensor (its owner forms it only by chunks)
  const SitePolicy rp{SaveMode::recompute, DType::f32, 0.0};
  tape.record_recompute(TapeKey{1, Site::ffn2_input}, {3, 5, 7}, DType::f32, rp);
  CHECK(tape.bytes() == 0);
  REQUIRE(tape.records().size() == 2);
  CHECK(tape.records()[1].site == "layer1.ffn2_input");
  CHECK(tape.records()[1].shape == Shape{3, 5, 7});
  CHECK(tape.records()[1].stored_bytes == 0);
  CHECK(tape.records()[1].dense_bytes == 3 * 5 * 7 * 4);
  CHECK(tape.records()[1].policy == rp);
  CHECK_THROWS_WITH(tape.restore(TapeKey{1, Site::ffn2_input}), Catch::Contains("site 'layer1.ffn2_input' was saved as recompute"));
  CHECK_THROWS_WITH(tape.record_recompute(TapeKey{1, Site::gelu_input}, {3, 5, 7}, DType::f32, SitePolicy{}),
                    Catch::Contains("site 'layer1.gelu_input' has a dense policy, not recompute"));
  tape.save(TapeKey{2, Site::ffn2_input}, r);
  CHECK_THROWS_WITH(tape.record_recompute(TapeKey{2, Site::ffn2_input}, {4, 6}, DType::f32, rp),
                    Catch::Contains("site 'layer2.ffn2_input' is already saved"));
  tape.clear();
  CHECK(save_mode_name(SaveMode::recompute) == "recompute");
  CHECK(save_mode_name(SaveMode::sparse) == "sparse");
  CHECK(save_mode_name(SaveMode::low_precision) == "low_precision");
}

TEST_CASE("tape on CUDA: bytes match the device allocator and sparse restore matches the CPU",
          "[models][tape][cuda]") {
  if (test::skip_without_cuda()) return;
  std::mt19937_64 rng(16);
  Tensor x = test::random_tensor({4, 6, 33}, DType::f32, rng);
  auto dev_saved = [] { return memory_stats(Device::cuda).cur(MemCategory::saved_activations); };
  int64_t saved0 = dev_saved();
  Tape tape(Device::cuda);
  Tensor xd = x.to(Device::cuda);
  tape.save(TapeKey{-1, Site::classifier_input}, xd);
  tape.save(TapeKey{-1, Site::pooler_input}, xd, SitePolicy{SaveMode::low_precision, DType::f16, 0.0});
  tape.save(TapeKey{-1, Site::emb_ln_input}, xd, SitePolicy{SaveMode::sparse, DType::f16, 0.8});
  CHECK(dev_saved() - saved0 == tape.bytes());
  Tensor s = tape.restore(TapeKey{-1, Site::emb_ln_input}).to(Device::cpu);
  Tensor want = unpack(pack_topk(x, 0.8, DType::f16));
  CHECK(std::memcmp(s.raw(), want.raw(), want.nbytes()) == 0);
  tape.restore(TapeKey{-1, Site::pooler_input});
  tape.restore(TapeKey{-1, Site::classifier_input});
  CHECK(dev_saved() == saved0);
}

TEST_CASE("tape keys: one vocabulary of names, policy sites first", "[models][tape]") {
  CHECK(TapeKey{3, Site::q}.name() == "layer3.q");
  CHECK(TapeKey{-1, Site::emb_ln_input}.name() == "emb_ln_input");
  CHECK(TapeKey{0, Site::ln1_mean}.name() == "layer0.ln1_mean");
  CHECK(TapeKey{-1, Site::pooler_output}.name() == "pooler_output");
  for (int i = 0; i < kSavedKinds; ++i) CHECK(is_policy_site(Site(i)) == (i < kSites));
  CHECK(site_name(Site::classifier_input) == "classifier_input");
  CHECK(site_name(Site::attn_lse) == "attn_lse");
  CHECK(TapeKey{0, Site::k} < TapeKey{1, Site::q});
  CHECK(TapeKey{0, Site::q} < TapeKey{0, Site::k});
}
