#include "models/memory_plan.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <optional>
#include <utility>

#include <fmt/format.h>

#include "core/error.h"
#include "kernels/sparse_pack.h"
#include "models/bert_layers.h"

namespace br {

// ---- sizes ----

int64_t parse_byte_size(std::string_view text) {
  const std::string t(text);
  size_t i = 0;
  while (i < t.size() && std::isspace(static_cast<unsigned char>(t[i]))) ++i;
  const size_t num_start = i;
  while (i < t.size() && (std::isdigit(static_cast<unsigned char>(t[i])) || t[i] == '.')) ++i;
  const std::string num = t.substr(num_start, i - num_start);
  if (num.empty() || std::count(num.begin(), num.end(), '.') > 1 || num == ".")
    fail("'{}' is not a size (a number with an optional unit B, KB, MB, GB, TB, KiB, MiB, GiB, "
         "TiB, e.g. 16GiB)", t);
  while (i < t.size() && t[i] == ' ') ++i;
  std::string unit = t.substr(i);
  while (!unit.empty() && std::isspace(static_cast<unsigned char>(unit.back()))) unit.pop_back();
  static const std::vector<std::pair<std::string, double>> kUnits = {
      {"", 1},           {"b", 1},          {"kb", 1e3},       {"mb", 1e6},
      {"gb", 1e9},       {"tb", 1e12},      {"kib", 1024.0},   {"mib", 1048576.0},
      {"gib", 1073741824.0}, {"tib", 1099511627776.0}};
  std::string lower = unit;
  for (char& c : lower) c = char(std::tolower(static_cast<unsigned char>(c)));
  double scale = 0;
  for (const auto& [name, s] : kUnits)
    if (lower == name) scale = s;
  if (scale == 0)
    fail("'{}': unknown unit '{}' (use B, KB, MB, GB, TB (1000-based) or KiB, MiB, GiB, TiB "
         "(1024-based))", t, unit);
  const double v = std::stod(num) * scale;
  if (!(v >= 1)) fail("'{}' is below one byte", t);
  if (v > 9.0e18) fail("'{}' is too large", t);
  return int64_t(std::llround(v));
}

std::string format_bytes(int64_t bytes) {
  const double b = double(bytes);
  if (b >= 1073741824.0) return fmt::format("{:.2f} GiB ({} B)", b / 1073741824.0, bytes);
  if (b >= 1048576.0) return fmt::format("{:.2f} MiB ({} B)", b / 1048576.0, bytes);
  return fmt::format("{} B", bytes);
}

// ---- the byte model ----

namespace {

// Counters standing in for the allocator: buffers with holders, current and peak bytes, and the
// tape bytes at the moment of the peak.
class Sim {
 public:
  using Buf = int;
  Buf alloc(int64_t bytes) {
    bufs_.push_back({bytes, 1});
    cur_ += bytes;
    if (cur_ > peak_) {
      peak_ = cur_;
      saved_at_peak_ = saved_;
      peak_phase_ = phase_;
      peak_layer_ = layer_;
    }
    return Buf(bufs_.size() - 1);
  }
  void hold(Buf b) { ++bufs_[size_t(b)].refs; }
  void drop(Buf& b) {
    if (b < 0) return;
    if (--bufs_[size_t(b)].refs == 0) cur_ -= bufs_[size_t(b)].bytes;
    b = -1;
  }
  void drop_all(std::initializer_list<Buf*> bs) {
    for (Buf* b : bs) drop(*b);
  }
  void saved(int64_t delta) { saved_ += delta; }
  // Where the step is, for peak_at: a label and a layer (-1: none); formatted only for the peak.
  void phase(const char* label, int layer = -1) {
    phase_ = label;
    layer_ = layer;
  }
  int64_t cur() const { return cur_; }
  int64_t peak() const { return peak_; }
  int64_t saved_at_peak() const { return saved_at_peak_; }
  std::string peak_at() const {
    return peak_layer_ < 0 ? std::string(peak_phase_) : fmt::format(fmt::runtime(peak_phase_), peak_layer_);
  }

 private:
  struct B {
    int64_t bytes;
    int refs;
  };
  std::vector<B> bufs_;
  int64_t cur_ = 0, peak_ = 0, saved_ = 0, saved_at_peak_ = 0;
  const char* phase_ = "start";
  const char* peak_phase_ = "start";
  int layer_ = -1, peak_layer_ = -1;
};

// The tape's save modes on the counters (models/tape.cpp).
class SimTape {
 public:
  explicit SimTape(Sim& sim) : sim_(sim) {}
  // x: a buffer of `batch` samples of `n` elements of `esize` bytes, saved under `p`.
  void save(int layer, Site site, Sim::Buf x, int64_t batch, int64_t n, const SitePolicy& p,
            int64_t esize) {
    Entry e;
    e.full = batch * n * esize;
    SaveMode mode = p.mode;
    if (mode == SaveMode::low_precision && int64_t(dtype_size(p.value_dtype)) == esize)
      mode = SaveMode::dense;
    if (mode == SaveMode::dense) {
      BR_CHECK(x >= 0, "byte model: layer {} site {}: a dense save needs its tensor", layer,
               site_name(site));
      sim_.hold(x);  // adopted: every saved tensor is its storage's only holder
      e.buf = x;
      e.held = e.full;
    } else if (mode == SaveMode::low_precision) {
      e.held = batch * n * int64_t(dtype_size(p.value_dtype));
      e.buf = sim_.alloc(e.held);
      e.copy = true;
    } else if (mode == SaveMode::sparse) {
      e.held = sparse_pack_bytes(batch, n, p.prune_ratio, p.value_dtype);
      e.buf = sim_.alloc(e.held);
      e.copy = true;
    } else {
      return;  // recompute: nothing held
    }
    bytes_ += e.held;
    peak_ = std::max(peak_, bytes_);
    sim_.saved(e.held);
    e.layer = layer;
    e.site = site;
    entries_.push_back(e);
  }
  // Tape::begin_rows: the copy save() would hold, allocated before its samples are written.
  void begin_rows(int layer, Site site, int64_t batch, int64_t n, const SitePolicy& p,
                  int64_t esize) {
    BR_CHECK(chunkable(p, esize), "byte model: layer {} site {} is not kept as a copy", layer,
             site_name(site));
    save(layer, site, -1, batch, n, p, esize);
  }
  // Tape::release: drops an entry read chunk by chunk (restore_rows allocates nothing).
  void release(int layer, Site site) {
    auto it = find(layer, site);
    bytes_ -= it->held;
    sim_.saved(-it->held);
    sim_.drop(it->buf);
    entries_.erase(std::next(it).base());
  }
  // Tape::rows_chunkable for an `esize`-byte tensor.
  static bool chunkable(const SitePolicy& p, int64_t esize) {
    return p.mode == SaveMode::sparse ||
           (p.mode == SaveMode::low_precision && int64_t(dtype_size(p.value_dtype)) != esize);
  }
  // The dense tensor back, owned by the caller.
  Sim::Buf restore(int layer, Site site) {
    auto it = find(layer, site);
    Entry e = *it;
    entries_.erase(std::next(it).base());
    bytes_ -= e.held;
    sim_.saved(-e.held);
    if (!e.copy) return e.buf;
    Sim::Buf out = sim_.alloc(e.full);
    sim_.drop(e.buf);
    return out;
  }
  int64_t bytes() const { return bytes_; }
  int64_t peak() const { return peak_; }

 private:
  struct Entry {
    Sim::Buf buf = -1;
    int64_t full = 0, held = 0;
    bool copy = false;  // a low-precision or packed copy: restore allocates the dense tensor
    int layer = -1;
    Site site = Site::attn_input;
  };
  // Backward restores roughly in reverse order of the saves: search from the newest.
  std::vector<Entry>::reverse_iterator find(int layer, Site site) {
    auto it = std::find_if(entries_.rbegin(), entries_.rend(),
                           [&](const Entry& x) { return x.layer == layer && x.site == site; });
    BR_CHECK(it != entries_.rend(), "byte model: layer {} site {} restored but not saved", layer,
             site_name(site));
    return it;
  }
  Sim& sim_;
  std::vector<Entry> entries_;
  int64_t bytes_ = 0, peak_ = 0;
};

constexpr int64_t kE = 4;  // fp32 activations and parameters

// The step's shapes and the allocations every piece repeats.
struct Step {
  Sim& sim;
  int64_t B, S, H, N, F, C;
  int64_t attention_workspace;
  int64_t ffn_workspace;
  bool padded = false;  // ctx.padding is set: sparse saves zero padding first
  // Samples per feed-forward backward chunk (bert_layers.h).
  int64_t ffn_chunk() const { return ffn_chunk_samples(B, S, F, kE, ffn_workspace); }
  // Samples per materialized-attention chunk, and the bytes of that chunk's P (bert_layers.h).
  int64_t chunk() const { return attention_chunk_samples(B, N, S, kE, attention_workspace); }
  int64_t chunk_P() const { return chunk() * N * S * S * kE; }
  int64_t X() const { return B * S * H * kE; }   // [B,S,H] (and [B,N,S,D])
  int64_t FX() const { return B * S * F * kE; }  // [B,S,F]
  int64_t P() const { return B * N * S * S * kE; }
  int64_t stats() const { return B * S * 4; }   // f32 [B*S]
  Sim::Buf x() { return sim.alloc(X()); }
  void save(SimTape* t, int l, Site s, Sim::Buf b, int64_t n, const SitePolicy& p) {
    if (t) t->save(l, s, b, B, n, p, kE);
  }
  void save_stat(SimTape* t, int l, Site s, Sim::Buf b) {
    if (t) t->save(l, s, b, B, S, SitePolicy{}, 4);
  }
};

const SitePolicy kDense{};

// bert_layers.cpp first_token_context: the feed-forward block on the [CLS] rows.
Step first_token_step(const Step& st) {
  Step first = st;
  first.S = 1;
  first.padded = false;
  return first;
}

// bert_layers.cpp ChunkedSite: a site formed by chunks of samples of `n` elements, whole when the
// tape keeps it as is, else a chunk buffer (none of its own when it shares another's) beside the
// tape's copy (begin_rows).
struct SimSite {
  SimSite(Step& st, SimTape* tape, int l, Site site, const SitePolicy& p, int64_t n, int64_t cb,
          bool share = false)
      : st(st), tape(tape), l(l), site(site), p(p), n(n) {
    const bool copy = tape && SimTape::chunkable(p, kE);
    whole = tape && !copy && p.mode != SaveMode::recompute;
    if (whole || !share) buf = st.sim.alloc((whole ? st.B : cb) * n * kE);
    if (copy) tape->begin_rows(l, site, st.B, n, p, kE);
  }
  void finish() {
    if (whole) st.save(tape, l, site, buf, n, p);
    st.sim.drop(buf);
  }
  Step& st;
  SimTape* tape;
  int l;
  Site site;
  SitePolicy p;
  int64_t n;
  bool whole = false;
  Sim::Buf buf = -1;
};

// bert_layers.cpp self_attention_forward (materialized attention, by chunks of samples).
Sim::Buf attention_forward(Step& st, int l, Sim::Buf x, const BackRazorPolicy& p, SimTape* tape) {
  Sim& s = st.sim;
  const int64_t SH = st.S * st.H, cb = st.chunk(), cX = cb * SH * kE;
  SimSite q(st, tape, l, Site::q, p[Site::q], SH, cb);
  SimSite k(st, tape, l, Site::k, p[Site::k], SH, cb);
  SimSite v(st, tape, l, Site::v, p[Site::v], SH, cb);
  Sim::Buf t = s.alloc(cX);
  SimSite out_h(st, nullptr, l, Site::attn_out, kDense, SH, cb);
  SimSite probs(st, tape, l, Site::probs, p[Site::probs], st.N * st.S * st.S, cb);
  SimSite attn(st, tape, l, Site::attn_out_input, p[Site::attn_out_input], SH, cb);
  Sim::Buf a = s.alloc(cX);
  SimSite x1(st, tape, l, Site::ln1_input, p[Site::ln1_input], SH, cb);
  Sim::Buf h1 = st.x();
  Sim::Buf mean = s.alloc(st.stats()), rstd = s.alloc(st.stats());
  s.drop_all({&t, &a});
  for (SimSite* c : {&q, &k, &v, &out_h, &probs, &attn, &x1}) c->finish();
  st.save(tape, l, Site::attn_input, x, SH, p[Site::attn_input]);
  st.save_stat(tape, l, Site::ln1_mean, mean);
  st.save_stat(tape, l, Site::ln1_rstd, rstd);
  s.drop_all({&mean, &rstd});
  return h1;
}

// bert_layers.cpp feed_forward_forward (by chunks of samples).
Sim::Buf ffn_forward(Step& st, int l, Sim::Buf h1, const BackRazorPolicy& p, SimTape* tape,
                     LayerOutput output, SimTape* ln2_tape) {
  Sim& s = st.sim;
  const int64_t SH = st.S * st.H, SF = st.S * st.F, cb = st.ffn_chunk();
  const SitePolicy &pf = p[Site::gelu_input], &pg = p[Site::ffn2_input];
  const bool tail = output != LayerOutput::none;
  const bool form_g = tail || pg.mode != SaveMode::recompute;
  SimSite f(st, tape, l, Site::gelu_input, pf, SF, cb);
  const bool g_whole = tape && !SimTape::chunkable(pg, kE) && pg.mode != SaveMode::recompute;
  const bool in_place = !f.whole && !g_whole && !(pf.mode == SaveMode::sparse && st.padded);
  std::optional<SimSite> g;
  if (form_g) g.emplace(st, tape, l, Site::ffn2_input, pg, SF, cb, in_place);
  SimTape* t2 = ln2_tape ? ln2_tape : tape;
  const SitePolicy p2 = ln2_tape ? kDense : p[Site::ln2_input];
  Sim::Buf o = -1, out = -1, mean = -1, rstd = -1;
  std::optional<SimSite> x2;
  if (tail) {
    o = s.alloc(cb * SH * kE);
    x2.emplace(st, t2, l, Site::ln2_input, p2, SH, cb);
    out = s.alloc((output == LayerOutput::whole ? st.B : cb) * SH * kE);
    mean = s.alloc(st.stats());
    rstd = s.alloc(st.stats());
  }
  s.drop(o);
  f.finish();
  if (g) g->finish();
  if (x2) x2->finish();
  st.save(tape, l, Site::ffn1_input, h1, SH, p[Site::ffn1_input]);
  if (tail) {
    st.save_stat(t2, l, Site::ln2_mean, mean);
    st.save_stat(t2, l, Site::ln2_rstd, rstd);
  }
  s.drop_all({&mean, &rstd});
  if (output != LayerOutput::whole) s.drop(out);
  return out;
}

// encoder_layer_forward: takes x (the caller lets go of it), returns the layer output (-1 when
// not kept).
// bert_layers.cpp first_token_self_attention_forward: takes x, returns h1's [CLS] rows.
Sim::Buf first_token_attention_forward(Step& st, int l, Sim::Buf x, const BackRazorPolicy& p,
                                       SimTape* tape) {
  Sim& m = st.sim;
  Step first = first_token_step(st);
  const int64_t row = st.B * st.H * kE, SH = st.S * st.H;
  Sim::Buf k = st.x(), v = st.x();
  {
    Sim::Buf t = st.x();
    m.drop(t);
  }
  Sim::Buf xc = m.alloc(row), q = m.alloc(row);
  {
    Sim::Buf tq = m.alloc(row);
    m.drop(tq);
  }
  Sim::Buf o = m.alloc(row), probs = m.alloc(st.B * st.N * st.S * kE);
  first.save(tape, l, Site::q, q, st.H, p[Site::q]);
  st.save(tape, l, Site::k, k, SH, p[Site::k]);
  st.save(tape, l, Site::v, v, SH, p[Site::v]);
  first.save(tape, l, Site::probs, probs, st.N * st.S, p[Site::probs]);
  m.drop_all({&q, &k, &v, &probs});
  Sim::Buf attn = m.alloc(row), a = m.alloc(row);
  m.drop(o);
  first.save(tape, l, Site::attn_out_input, attn, st.H, p[Site::attn_out_input]);
  m.drop(attn);
  Sim::Buf x1 = m.alloc(row), h1 = m.alloc(row);
  Sim::Buf mean = m.alloc(first.stats()), rstd = m.alloc(first.stats());
  m.drop_all({&a, &xc});
  first.save(tape, l, Site::ln1_input, x1, st.H, p[Site::ln1_input]);
  st.save(tape, l, Site::attn_input, x, SH, p[Site::attn_input]);
  first.save_stat(tape, l, Site::ln1_mean, mean);
  first.save_stat(tape, l, Site::ln1_rstd, rstd);
  m.drop_all({&x1, &mean, &rstd, &x});
  return h1;
}

Sim::Buf layer_forward(Step& st, int l, Sim::Buf x, const BackRazorPolicy& p, SimTape* tape,
                       LayerOutput output = LayerOutput::whole, SimTape* ln2_tape = nullptr,
                       bool first_token = false, bool first_token_queries = false) {
  if (first_token_queries) {  // LayerRecord::first_token_queries
    Sim::Buf h1 = first_token_attention_forward(st, l, x, p, tape);
    Step first = first_token_step(st);
    Sim::Buf out = ffn_forward(first, l, h1, p, tape, LayerOutput::whole, nullptr);
    st.sim.drop(h1);
    return out;
  }
  if (first_token && !tape) {  // bert_layers.cpp first_token_attention_forward (evaluation)
    Sim& m = st.sim;
    Step first = first_token_step(st);
    const int64_t row = st.B * st.H * kE;
    Sim::Buf t = st.x(), k = st.x(), v = st.x();
    m.drop(t);
    Sim::Buf xc = m.alloc(row), tq = m.alloc(row), q = m.alloc(row);
    Sim::Buf scores = m.alloc(st.B * st.N * st.S * kE), probs = m.alloc(st.B * st.N * st.S * kE);
    Sim::Buf o = m.alloc(row), a = m.alloc(row), h1 = m.alloc(row);
    Sim::Buf mean = m.alloc(first.stats()), rstd = m.alloc(first.stats());
    m.drop_all({&rstd, &mean, &a, &o, &probs, &scores, &q, &tq, &xc, &v, &k});
    m.drop(x);
    Sim::Buf out = ffn_forward(first, l, h1, p, nullptr, LayerOutput::whole, nullptr);
    m.drop(h1);
    return out;
  }
  Sim::Buf h1 = attention_forward(st, l, x, p, tape);
  st.sim.drop(x);
  if (first_token) {  // LayerRecord::first_token: the feed-forward block on the [CLS] rows
    Sim::Buf cls = st.sim.alloc(st.B * st.H * kE);
    st.sim.drop(h1);
    Step first = first_token_step(st);
    Sim::Buf out = ffn_forward(first, l, cls, p, tape, LayerOutput::whole, nullptr);
    st.sim.drop(cls);
    return out;
  }
  Sim::Buf out = ffn_forward(st, l, h1, p, tape, output, ln2_tape);
  st.sim.drop(h1);
  return out;
}

// bert_layers.cpp SampleRows, taken at its first read: a chunk buffer for a copy the tape keeps,
// else the whole restored tensor; let go by unread (SampleRows::done after the last chunk, or its
// destructor).
struct Reader {
  Site site;
  Sim::Buf buf;
  bool chunked;
};
void read(Step& st, SimTape& tape, int l, std::vector<Reader>& readers, Site site,
          const SitePolicy& policy, int64_t chunk_bytes) {
  const bool chunked = SimTape::chunkable(policy, kE);
  readers.push_back({site, chunked ? st.sim.alloc(chunk_bytes) : tape.restore(l, site), chunked});
}
// The readers' end, newest first (their destructors).
void unread(Step& st, SimTape& tape, int l, std::vector<Reader>& readers) {
  for (auto it = readers.rbegin(); it != readers.rend(); ++it) {
    if (it->chunked) tape.release(l, it->site);
    st.sim.drop(it->buf);
  }
  readers.clear();
}

// bert_layers.cpp layernorm_backward_rows: the statistics back, the input read by chunks.
void layernorm_backward_rows(Step& st, SimTape& tape, int l, Site input, Site mean_site,
                             Site rstd_site, const SitePolicy& policy, int64_t cb) {
  Sim::Buf mean = tape.restore(l, mean_site), rstd = tape.restore(l, rstd_site);
  std::vector<Reader> readers;
  read(st, tape, l, readers, input, policy, cb * st.S * st.H * kE);
  unread(st, tape, l, readers);
  st.sim.drop_all({&rstd, &mean});
}

// bert_layers.cpp ln2_backward: consumes dout, returns dx2.
Sim::Buf ln2_backward(Step& st, int l, Sim::Buf dout, const SitePolicy& policy, SimTape& tape) {
  Sim::Buf dx2 = st.x();
  layernorm_backward_rows(st, tape, l, Site::ln2_input, Site::ln2_mean, Site::ln2_rstd, policy,
                          st.ffn_chunk());
  st.sim.drop(dout);
  return dx2;
}

// bert_layers.cpp feed_forward_backward (with ffn2_gelu_backward, or by chunks of samples with
// SampleRows); consumes dout (the LN2 input gradient already when from_ln2).
Sim::Buf ffn_backward(Step& st, int l, Sim::Buf dout, const BackRazorPolicy& p, SimTape& tape,
                      bool from_ln2 = false) {
  Sim& s = st.sim;
  const int64_t cb = st.ffn_chunk();
  Sim::Buf dx2 = from_ln2 ? dout : ln2_backward(st, l, dout, p[Site::ln2_input], tape);
  const bool recompute_g = p[Site::ffn2_input].mode == SaveMode::recompute;
  if (cb >= st.B) {
    Sim::Buf dg = s.alloc(st.FX());
    Sim::Buf f = -1;
    {
      Sim::Buf d_o = st.x();
      if (recompute_g) {
        f = tape.restore(l, Site::gelu_input);
        Sim::Buf g = s.alloc(st.FX());
        s.drop(g);
      } else {
        Sim::Buf g = tape.restore(l, Site::ffn2_input);
        s.drop(g);
        f = tape.restore(l, Site::gelu_input);
      }
      s.drop(d_o);
    }
    Sim::Buf df = s.alloc(st.FX());
    s.drop_all({&dg, &f});
    Sim::Buf dh1 = st.x();
    Sim::Buf in = tape.restore(l, Site::ffn1_input);
    s.drop_all({&in, &df, &dx2});
    return dh1;
  }
  // By chunks: each SampleRows holds a chunk buffer (a copy the tape keeps, released at the end)
  // or the whole restored tensor. The code takes them at their first read, after the chunk
  // buffers below; nothing is freed in between, so the order does not move the peak.
  const int64_t cX = cb * st.S * st.H * kE, cF = cb * st.S * st.F * kE;
  std::vector<Reader> readers;
  if (!recompute_g) read(st, tape, l, readers, Site::ffn2_input, p[Site::ffn2_input], cF);
  read(st, tape, l, readers, Site::gelu_input, p[Site::gelu_input], cF);
  read(st, tape, l, readers, Site::ffn1_input, p[Site::ffn1_input], cX);
  Sim::Buf d_o = s.alloc(cX), dg = s.alloc(cF), dxp = s.alloc(cX);
  Sim::Buf g = recompute_g ? s.alloc(cF) : -1;
  s.drop_all({&g, &dxp, &dg, &d_o});
  unread(st, tape, l, readers);
  return dx2;
}

// bert_layers.cpp self_attention_backward (materialized attention, by chunks of samples);
// consumes dh1.
Sim::Buf attention_backward(Step& st, int l, Sim::Buf dh1, const BackRazorPolicy& p,
                            SimTape& tape) {
  Sim& s = st.sim;
  const int64_t cb = st.chunk(), cX = cb * st.S * st.H * kE;
  Sim::Buf dx = st.x();
  layernorm_backward_rows(st, tape, l, Site::ln1_input, Site::ln1_mean, Site::ln1_rstd,
                          p[Site::ln1_input], cb);
  s.drop(dh1);
  std::array<Sim::Buf, 5> buf;
  for (Sim::Buf& b : buf) b = s.alloc(cX);
  // One pass over the first chunk: each input taken from the tape at its first read; with one
  // chunk it goes after its read (SampleRows::done), with more after the loop.
  const bool last = cb >= st.B;
  std::vector<Reader> readers;
  auto use = [&](std::initializer_list<std::pair<Site, int64_t>> sites) {
    for (auto [site, bytes] : sites) read(st, tape, l, readers, site, p[site], bytes);
  };
  auto done = [&] {
    if (last) unread(st, tape, l, readers);
  };
  use({{Site::attn_out_input, cX}});
  done();
  use({{Site::q, cX}, {Site::k, cX}, {Site::v, cX}, {Site::probs, st.chunk_P()}});
  done();
  use({{Site::attn_input, cX}});
  done();
  for (auto it = buf.rbegin(); it != buf.rend(); ++it) s.drop(*it);
  unread(st, tape, l, readers);
  return dx;
}

// bert_layers.cpp first_token_self_attention_backward; consumes dcls [B,1,H], returns dx.
Sim::Buf first_token_attention_backward(Step& st, int l, Sim::Buf dcls, SimTape& tape) {
  Sim& m = st.sim;
  const int64_t row = st.B * st.H * kE;
  Sim::Buf dsum = m.alloc(row);
  {
    Sim::Buf mean = tape.restore(l, Site::ln1_mean), rstd = tape.restore(l, Site::ln1_rstd);
    Sim::Buf x1 = tape.restore(l, Site::ln1_input);
    m.drop_all({&x1, &rstd, &mean});
  }
  m.drop(dcls);
  Sim::Buf dattn = m.alloc(row);
  {
    Sim::Buf da = m.alloc(row);
    Sim::Buf attn = tape.restore(l, Site::attn_out_input);
    m.drop_all({&attn, &da});
  }
  Sim::Buf dq = m.alloc(row), dk = st.x(), dv = st.x();
  {
    Sim::Buf dO = m.alloc(row);
    Sim::Buf q = tape.restore(l, Site::q), k = tape.restore(l, Site::k);
    Sim::Buf v = tape.restore(l, Site::v), probs = tape.restore(l, Site::probs);
    m.drop_all({&probs, &v, &k, &q, &dO});
  }
  Sim::Buf x = tape.restore(l, Site::attn_input);
  Sim::Buf dx = st.x();
  {
    Sim::Buf xc = m.alloc(row);
    m.drop(dq);
    Sim::Buf dxq = m.alloc(row);
    m.drop_all({&dxq, &xc});
  }
  m.drop_all({&dsum, &dattn});
  {
    Sim::Buf t = st.x(), dxp = st.x();
    m.drop_all({&dk, &dv, &dxp, &t});
  }
  m.drop(x);
  return dx;
}

// bert_layers.cpp embeddings_forward: returns h.
Sim::Buf embeddings_forward(Step& st, const BackRazorPolicy& p, SimTape* t) {
  Sim& s = st.sim;
  Sim::Buf emb = st.x();
  Sim::Buf pos = s.alloc(st.B * st.S * 4);
  s.drop(pos);
  Sim::Buf h = st.x();
  Sim::Buf mean = s.alloc(st.stats()), rstd = s.alloc(st.stats());
  Sim::Buf ln = st.x();
  s.drop(ln);
  st.save(t, -1, Site::emb_ln_input, emb, st.S * st.H, p[Site::emb_ln_input]);
  st.save_stat(t, -1, Site::emb_ln_mean, mean);
  st.save_stat(t, -1, Site::emb_ln_rstd, rstd);
  s.drop_all({&emb, &mean, &rstd});
  return h;
}

// The whole step (bert_step.cpp forward and backward, train/step.cpp train_step).
// Mirrors the code's allocation order piece by piece; one function per phase would only split it.
StepBytes simulate(const BertConfig& c, int64_t B, int64_t S, const SavePlan& plan, bool train) {
  Sim sim;
  Step st{sim,
          B,
          S,
          c.hidden_size,
          c.num_attention_heads,
          c.intermediate_size,
          c.num_labels(),
          plan.attention_workspace,
          plan.ffn_workspace};
  const int L = int(c.num_hidden_layers);
  BR_CHECK(!train || int(plan.layers.size()) == L, "byte model: {} layer plans for {} layers",
           plan.layers.size(), L);
  StepBytes r;
  const int64_t params = parameter_count(c);
  r.parameters = params * kE;
  r.optimizer_state = 2 * params * kE;
  // allocate_flat: every gradient tensor starts a multiple of 256 bytes into the buffer.
  {
    const int64_t H = c.hidden_size, F = c.intermediate_size, up = 256 / kE;
    auto a = [&](int64_t n) { return (n + up - 1) / up * up; };
    int64_t g = a(c.vocab_size * H) + a(c.max_position_embeddings * H) +
                a(c.type_vocab_size * H) + 2 * a(H);
    g += int64_t(L) * (4 * a(H * H) + 4 * a(H) + 2 * a(H) + a(F * H) + a(F) + a(H * F) + a(H) +
                       2 * a(H));
    g += a(H * H) + a(H) + a(st.C * H) + a(st.C);
    r.gradients = g * kE;
  }
  r.inputs = 3 * B * S * 4 + 2 * B * 4;
  sim.alloc(r.persistent());

  // bert_step.cpp: the last layer is never checkpointed; a checkpoint followed by one keeps its
  // output where its plan says.
  auto checkpointed = [&](int l) {
    return train && plan.layers[size_t(l)].checkpoint && l + 1 < L;
  };
  auto keeps = [&](int l) {
    return l >= 0 && checkpointed(l) && checkpointed(l + 1) && plan.layers[size_t(l)].keeps_output();
  };
  bool any_ckpt = false, any_sparse = plan.policy.any_sparse();
  for (int l = 0; l < int(plan.layers.size()); ++l) {
    any_ckpt = any_ckpt || checkpointed(l);
    any_sparse = any_sparse || plan.layers[size_t(l)].policy.any_sparse();
  }
  const bool pad = train && plan.padded && any_sparse;  // ctx.padding: sparse saves skip padding
  st.padded = pad;
  // bert_step.cpp: the last layer's feed-forward block runs on the [CLS] rows.
  auto first_token = [&](int l) {
    return l + 1 == L && (!train || first_token_trainable(plan.layers[size_t(l)].policy,
                                                          plan.policy.skip_padding));
  };
  // and, in training, its attention block for the [CLS] queries (the CPU's materialized kernel)
  auto first_token_queries = [&](int l) {
    return train && first_token(l) &&
           first_token_queries_trainable(plan.layers[size_t(l)].policy, plan.policy.skip_padding);
  };
  SimTape tape(sim);
  SimTape* t = train ? &tape : nullptr;
  const BackRazorPolicy dense_policy;
  const BackRazorPolicy& mp = train ? plan.policy : dense_policy;
  // forward: the additive mask, the token mask when sparse sites skip padding
  sim.phase("forward embeddings");
  Sim::Buf mask = sim.alloc(B * S * 4);
  Sim::Buf padding = pad ? sim.alloc(B * S * 4) : -1;
  Sim::Buf h = embeddings_forward(st, mp, t);
  for (int l = 0; l < L; ++l) {
    sim.phase("forward layer {}", l);
    const bool ckpt = checkpointed(l);
    const BackRazorPolicy& lp = train ? plan.layers[size_t(l)].policy : dense_policy;
    if (ckpt && l > 0 && !keeps(l - 1)) t->save(l, Site::layer_input, h, B, S * st.H, kDense, kE);
    h = layer_forward(st, l, h, lp, ckpt ? nullptr : t, LayerOutput::whole, keeps(l) ? t : nullptr,
                      first_token(l), first_token_queries(l));
  }
  sim.phase("forward head");
  Sim::Buf logits;
  {
    Sim::Buf cls = sim.alloc(B * st.H * kE);
    sim.drop(h);
    Sim::Buf pooled = sim.alloc(B * st.H * kE), pooled_d = sim.alloc(B * st.H * kE);
    logits = sim.alloc(B * st.C * kE);
    st.save(t, -1, Site::pooler_input, cls, st.H, mp[Site::pooler_input]);
    if (t) t->save(-1, Site::pooler_output, pooled, B, st.H, kDense, kE);
    st.save(t, -1, Site::classifier_input, pooled_d, st.H, mp[Site::classifier_input]);
    sim.drop_all({&cls, &pooled, &pooled_d, &mask, &padding});
  }
  r.saved_activations = tape.bytes();
  if (!train) {
    r.peak = sim.peak();
    r.peak_at = sim.peak_at();
    return r;
  }
  sim.phase("loss");
  {
    Sim::Buf loss = sim.alloc(4), host = sim.alloc(4), f64 = sim.alloc(8);
    sim.drop_all({&loss, &host, &f64});
  }
  Sim::Buf dlogits = sim.alloc(B * st.C * kE);
  sim.phase("backward head");
  Sim::Buf bmask = any_ckpt ? sim.alloc(B * S * 4) : -1;
  Sim::Buf bpad = any_ckpt && pad ? sim.alloc(B * S * 4) : -1;
  Sim::Buf dh;
  {
    Sim::Buf dcls = sim.alloc(B * st.H * kE);
    Sim::Buf dpooled_d = sim.alloc(B * st.H * kE);
    Sim::Buf ci = tape.restore(-1, Site::classifier_input);
    sim.drop(ci);
    Sim::Buf dpooled = sim.alloc(B * st.H * kE);
    Sim::Buf po = tape.restore(-1, Site::pooler_output);
    sim.drop(po);
    Sim::Buf pi = tape.restore(-1, Site::pooler_input);
    sim.drop_all({&pi, &dpooled_d, &dpooled});
    if (first_token(L - 1)) {
      dh = dcls;  // the [CLS] rows' gradient is the last layer's output gradient
    } else {
      dh = st.x();
      sim.drop(dcls);
    }
  }
  for (int l = L - 1; l >= 0; --l) {
    const LayerPlan& lp = plan.layers[size_t(l)];
    if (checkpointed(l)) {
      sim.phase("backward layer {} (recompute)", l);
      if (keeps(l)) dh = ln2_backward(st, l, dh, kDense, tape);
      SimTape layer_tape(sim);
      Sim::Buf x;
      if (l == 0) {
        x = embeddings_forward(st, mp, nullptr);
      } else if (keeps(l - 1)) {  // encoder_layer_output
        x = st.x();
        Sim::Buf mean = sim.alloc(st.stats()), rstd = sim.alloc(st.stats());
        sim.drop_all({&rstd, &mean});
      } else {
        x = tape.restore(l, Site::layer_input);
      }
      layer_forward(st, l, x, lp.policy, &layer_tape,
                    keeps(l) ? LayerOutput::none : LayerOutput::chunks);
      sim.phase("backward layer {}", l);
      Sim::Buf dh1 = ffn_backward(st, l, dh, lp.policy, layer_tape, keeps(l));
      dh = attention_backward(st, l, dh1, lp.policy, layer_tape);
      r.recompute_peak = std::max(r.recompute_peak, layer_tape.peak());
    } else if (first_token(l)) {
      sim.phase("backward layer {}", l);
      Step first = first_token_step(st);
      Sim::Buf dcls = ffn_backward(first, l, dh, lp.policy, tape);
      if (first_token_queries(l)) {
        dh = first_token_attention_backward(st, l, dcls, tape);
      } else {
        Sim::Buf dh1 = st.x();
        sim.drop(dcls);
        dh = attention_backward(st, l, dh1, lp.policy, tape);
      }
    } else {
      sim.phase("backward layer {}", l);
      Sim::Buf dh1 = ffn_backward(st, l, dh, lp.policy, tape);
      dh = attention_backward(st, l, dh1, lp.policy, tape);
    }
  }
  sim.phase("backward embeddings");
  {
    Sim::Buf demb = st.x(), dln = st.x();
    Sim::Buf mean = tape.restore(-1, Site::emb_ln_mean), rstd = tape.restore(-1, Site::emb_ln_rstd);
    Sim::Buf in = tape.restore(-1, Site::emb_ln_input);
    sim.drop_all({&in, &dln, &mean, &rstd});
    Sim::Buf pos = sim.alloc(B * S * 4);
    sim.drop_all({&pos, &demb});
  }
  sim.drop_all({&dh, &dlogits, &bmask, &bpad, &logits});
  r.peak = sim.peak();
  r.saved_at_peak = sim.saved_at_peak();
  r.peak_at = sim.peak_at();
  return r;
}

}  // namespace

int64_t parameter_count(const BertConfig& c) {
  const int64_t H = c.hidden_size, F = c.intermediate_size, C = c.num_labels();
  const int64_t layer = 4 * H * H + 4 * H + 2 * H + F * H + F + H * F + H + 2 * H;
  return (c.vocab_size + c.max_position_embeddings + c.type_vocab_size) * H + 2 * H +
         c.num_hidden_layers * layer + H * H + H + C * H + C;
}

StepBytes predict_step_bytes(const BertConfig& c, int64_t batch, int64_t seq, const SavePlan& plan) {
  return simulate(c, batch, seq, plan, true);
}

int64_t predict_eval_bytes(const BertConfig& c, int64_t batch, int64_t seq) {
  return simulate(c, batch, seq, SavePlan{}, false).peak;
}

// ---- cost ----

double layer_forward_flops(const BertConfig& c, int64_t batch, int64_t seq) {
  const double T = double(batch * seq), H = double(c.hidden_size), F = double(c.intermediate_size);
  // Q, K, V, attention output (4 H x H), FFN1 and FFN2 (2 H x F); Q Kᵀ and P V (2 B S² H each).
  return 2 * T * (4 * H * H + 2 * H * F) + 4 * double(batch) * double(seq) * double(seq) * H;
}

double step_flops(const BertConfig& c, int64_t batch, int64_t seq) {
  return 3 * double(c.num_hidden_layers) * layer_forward_flops(c, batch, seq);
}

namespace {
struct Prior {
  Site site;
  SaveMode mode;
  double damage;  // relative error of the whole model's gradient
};
constexpr Prior kPriors[] = {
#include "models/grad_damage_prior.inc"
};
}  // namespace

double site_damage_prior(Site s, SaveMode mode) {
  if (mode == SaveMode::dense || mode == SaveMode::recompute) return 0;
  for (const Prior& p : kPriors)
    if (p.site == s && p.mode == mode) return std::max(0.0, p.damage);
  // Not measured (low precision of a site without a row): as damaging as its sparse form.
  for (const Prior& p : kPriors)
    if (p.site == s && p.mode == SaveMode::sparse) return std::max(0.0, p.damage);
  fail("site_damage_prior: no prior for site {}", site_name(s));
}

// ---- the planner ----

std::string_view plan_kind_name(PlanKind k) {
  switch (k) {
    case PlanKind::dense: return "dense";
    case PlanKind::exact: return "exact";
    case PlanKind::backrazor: return "backrazor";
  }
  return "?";
}

namespace {

double policy_damage(const BackRazorPolicy& p) {
  double d = 0;
  for (int s = 0; s < kSites; ++s) {
    const SitePolicy& sp = p.sites[size_t(s)];
    if (Site(s) == Site::ffn2_input && sp.mode == SaveMode::recompute &&
        p[Site::gelu_input].mode != SaveMode::dense)
      d += site_damage_prior(Site::gelu_input, p[Site::gelu_input].mode);  // gelu of a lossy input
    else
      d += site_damage_prior(Site(s), sp.mode);
  }
  return d;
}

// What a policy stores, by mode, for plan descriptions: "sparse q, k; fp16 gelu_input;
// recomputed ffn2_input" ("dense" when every site is).
std::string policy_summary(const BackRazorPolicy& p) {
  std::string out;
  for (SaveMode mode : {SaveMode::sparse, SaveMode::low_precision, SaveMode::recompute}) {
    std::string sites;
    for (int s = 0; s < kSites; ++s)
      if (p.sites[size_t(s)].mode == mode)
        sites += fmt::format("{}{}", sites.empty() ? "" : ",", site_name(Site(s)));
    if (sites.empty()) continue;
    const char* label = mode == SaveMode::sparse ? "sparse" : mode == SaveMode::low_precision ? "fp16" : "recomputed";
    out += fmt::format("{}{} {}", out.empty() ? "" : "; ", label, sites);
  }
  return out.empty() ? "dense" : out;
}

// Every layer under `policy`, layers 0 .. k-1 checkpointed (min_bytes: keeping only their inputs).
MemoryPlan make_plan(const PlannerInput& in, BackRazorPolicy policy, int k, PlanKind kind,
                     bool min_bytes = false) {
  policy.name = policy_summary(policy);
  if (policy.name == "dense") policy.name = "none";
  MemoryPlan m;
  m.kind = kind;
  m.budget = in.budget;
  m.plan.policy = policy;
  m.plan.padded = in.padded && policy.skip_padding;
  const int L = int(in.config.num_hidden_layers);
  for (int l = 0; l < L; ++l) m.plan.layers.push_back(LayerPlan{policy, l < k, min_bytes});
  m.checkpointed_layers = k;
  m.ffn2_recompute = policy[Site::ffn2_input].mode == SaveMode::recompute;
  m.bytes = predict_step_bytes(in.config, in.batch, in.seq, m.plan);
  m.dense_step_flops = step_flops(in.config, in.batch, in.seq);
  // The layers recomputed (the last never is), those keeping their output without FFN2's GEMM.
  const int recomputed = std::min(k, L - 1);
  const int keepers = m.plan.layers[0].keeps_output() ? std::max(0, recomputed - 1) : 0;
  const double ffn2 = 2.0 * double(in.batch * in.seq) * double(in.config.hidden_size) *
                      double(in.config.intermediate_size);
  m.extra_flops = recomputed * layer_forward_flops(in.config, in.batch, in.seq) - keepers * ffn2 +
                  (m.ffn2_recompute ? double(L) * double(in.batch * in.seq * in.config.intermediate_size) : 0);
  m.damage = policy_damage(policy);
  m.description = describe_layer_plans(m.plan.layers);
  // describe_layer_plans names each layer's policy; the embedding and head sites follow it too.
  m.description.pop_back();  // its last newline
  return m;
}

bool fits(const MemoryPlan& m) { return m.bytes.peak <= m.budget; }

std::string why_not(const MemoryPlan& m) {
  return fmt::format("{} needs {} > budget {} (peak at {})", m.description, m.bytes.peak, m.budget,
                     m.bytes.peak_at);
}

BackRazorPolicy named(std::string name) {
  BackRazorPolicy p;
  p.name = std::move(name);
  return p;
}

// Elements per sample a site holds, to order the low-precision chain by bytes saved.
int64_t site_numel(const BertConfig& c, int64_t seq, Site s) {
  const int64_t H = c.hidden_size;
  switch (s) {
    case Site::probs: return c.num_attention_heads * seq * seq;
    case Site::gelu_input:
    case Site::ffn2_input: return seq * c.intermediate_size;
    case Site::pooler_input:
    case Site::classifier_input: return H;
    default: return seq * H;
  }
}

// The Back Razor candidates, sorted by prior damage (stable: cheaper stages first).
// 1. Low precision only: fp16 copies of the sites, added largest first (the FFN2 input stays
//    recomputed from the GELU input, now from its fp16 copy).
// 2. Sparse sites over a base where every other site is dense, or every other site fp16: every
//    subset of the sites but the GELU and FFN2 inputs sparse; the GELU input as the base, fp16 or
//    sparse;
//    the FFN2 input recomputed from a GELU input that is not sparse, else as the base or sparse.
std::vector<std::pair<double, BackRazorPolicy>> backrazor_candidates(const PlannerInput& in) {
  const SitePolicy sparse{SaveMode::sparse, in.value_dtype, in.prune_ratio};
  const SitePolicy low{SaveMode::low_precision, DType::f16, in.prune_ratio};
  const SitePolicy recompute{SaveMode::recompute};
  std::vector<std::pair<double, BackRazorPolicy>> out;
  BackRazorPolicy chain = named("planner");
  chain.skip_padding = in.skip_padding;
  chain[Site::ffn2_input] = recompute;
  std::vector<Site> by_size;
  for (int s = 0; s < kSites; ++s)
    if (Site(s) != Site::ffn2_input) by_size.push_back(Site(s));
  std::stable_sort(by_size.begin(), by_size.end(), [&](Site a, Site b) {
    return site_numel(in.config, in.seq, a) > site_numel(in.config, in.seq, b);
  });
  for (Site s : by_size) {
    chain[s] = low;
    out.emplace_back(policy_damage(chain), chain);
  }
  std::vector<Site> binary;
  for (int s = 0; s < kSites; ++s)
    if (Site(s) != Site::gelu_input && Site(s) != Site::ffn2_input) binary.push_back(Site(s));
  for (const SitePolicy& base : {SitePolicy{}, low})
    for (uint32_t mask = 0; mask < (1u << binary.size()); ++mask)
      for (int gelu = 0; gelu < 3; ++gelu)  // as the base, fp16, sparse
        for (int ffn2_sparse = 0; ffn2_sparse < (gelu == 2 ? 2 : 1); ++ffn2_sparse) {
          const bool gelu_sparse = gelu == 2;
          if (mask == 0 && !gelu_sparse) continue;  // no sparse site: stage 1 or exact
          if (gelu == 1 && base.mode == SaveMode::low_precision) continue;  // = gelu 0
          BackRazorPolicy p = named("planner");
          p.skip_padding = in.skip_padding;
          for (size_t i = 0; i < binary.size(); ++i) p[binary[i]] = mask & (1u << i) ? sparse : base;
          p[Site::gelu_input] = gelu == 0 ? base : gelu == 1 ? low : sparse;
          p[Site::ffn2_input] = !gelu_sparse ? recompute : ffn2_sparse ? sparse : base;
          out.emplace_back(policy_damage(p), std::move(p));
        }
  std::stable_sort(out.begin(), out.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  return out;
}

}  // namespace

std::optional<MemoryPlan> plan_memory(const PlannerInput& in, MemoryPlan* smallest) {
  const int L = int(in.config.num_hidden_layers);
  BackRazorPolicy dense = named("none");
  BackRazorPolicy ffn2r = named("none+ffn2_input=recompute");
  ffn2r[Site::ffn2_input] = SitePolicy{SaveMode::recompute};
  // (a)
  MemoryPlan prev = make_plan(in, dense, 0, PlanKind::dense);
  if (fits(prev)) return prev;
  // (b) in increasing recompute: k layers, then k layers with the FFN2 input recomputed
  std::optional<MemoryPlan> exact_min;  // the exact plan with the smallest peak
  // With two or more checkpoints, each but the top one keeping its output (faster), then only
  // their inputs (one [B,S,H] tensor less in backward).
  for (int k = 0; k <= L; ++k)
    for (const BackRazorPolicy* p : {&dense, &ffn2r})
      for (bool min_bytes : {false, true}) {
        if (k == 0 && p == &dense) continue;
        if (min_bytes && std::min(k, L - 1) < 2) continue;  // no checkpoint keeps its output
        MemoryPlan m = make_plan(in, *p, k, PlanKind::exact, min_bytes);
        if (fits(m)) {
          m.rejected = why_not(prev);
          return m;
        }
        // Usually every layer checkpointed with the FFN2 input recomputed; not always, as the last
        // layer's recompute can cost more than its tape (it is whole at its backward either way).
        if (!exact_min || m.bytes.peak < exact_min->bytes.peak) exact_min = m;
        prev = std::move(m);
      }
  // Every site sparse inside every checkpointed layer: the smallest step there is. If even that
  // does not fit, no Back Razor plan does (d).
  BackRazorPolicy all = named("all sparse");
  all.skip_padding = in.skip_padding;
  for (int s = 0; s < kSites; ++s)
    all.sites[size_t(s)] = SitePolicy{SaveMode::sparse, in.value_dtype, in.prune_ratio};
  const MemoryPlan all_sparse = make_plan(in, all, L, PlanKind::backrazor);
  if (!fits(all_sparse)) {
    if (smallest) *smallest = all_sparse.bytes.peak < exact_min->bytes.peak ? all_sparse : *exact_min;
    return std::nullopt;
  }
  // (c) least prior damage first; equal damage: the smaller peak
  std::optional<MemoryPlan> best;
  std::optional<MemoryPlan> last_rejected;
  for (auto& [damage, policy] : backrazor_candidates(in)) {
    if (best && damage > best->damage) break;
    MemoryPlan m = make_plan(in, policy, L, PlanKind::backrazor);
    if (!fits(m)) {
      if (!best) last_rejected = std::move(m);
      continue;
    }
    if (!best || m.bytes.peak < best->bytes.peak) best = std::move(m);
  }
  if (best) {
    // The fewest checkpointed layers that still fit under this policy.
    for (int k = 0; k < L; ++k) {
      MemoryPlan m = make_plan(in, best->plan.policy, k, PlanKind::backrazor);
      if (fits(m)) {
        best = std::move(m);
        break;
      }
    }
    best->rejected = "no exact plan fits: " + why_not(*exact_min);
    if (last_rejected)
      best->rejected += "; the next less damaging Back Razor plan: " + why_not(*last_rejected);
    return best;
  }
  // Not reached when the all-sparse plan fits, as it is one of the candidates; kept for safety.
  if (smallest) *smallest = all_sparse;
  return std::nullopt;
}

int64_t find_max_batch(PlannerInput in, int64_t max_batch, MemoryPlan* plan) {
  int64_t lo = 0, hi = max_batch;  // lo fits (0: nothing), hi + 1 does not
  std::optional<MemoryPlan> found;
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo + 1) / 2;
    in.batch = mid;
    std::optional<MemoryPlan> m = plan_memory(in);
    if (m) {
      lo = mid;
      found = std::move(m);
    } else {
      hi = mid - 1;
    }
  }
  if (plan && found) *plan = *found;
  return lo;
}

}  // namespace br
