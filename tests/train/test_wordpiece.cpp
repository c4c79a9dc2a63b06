// WordPiece tokenizer: rules on a hand-made vocabulary (always run), and id-for-id agreement with
// transformers on every RTE dev pair and a set of hard strings (tests/data/tokenizer_golden.jsonl,
// written by tools/make_golden_tokenizer.py; needs the all-MiniLM-L6-v2 vocab in the model cache).
#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "harness.h"
#include "train/wordpiece.h"

using namespace br;
using Tokens = std::vector<std::string>;

namespace {

std::string data_path(const std::string& name) {
  return std::string(BERTRAZOR_SOURCE_DIR) + "/tests/data/" + name;
}

const WordPieceTokenizer& tiny() {
  static const WordPieceTokenizer t = WordPieceTokenizer::from_vocab_file(data_path("tiny_vocab.txt"));
  return t;
}

std::string write_temp(const std::string& name, const std::string& content) {
  auto dir = std::filesystem::temp_directory_path() / "bertrazor_test_wordpiece";
  std::filesystem::create_directories(dir);
  std::string path = (dir / name).string();
  std::ofstream(path, std::ios::binary) << content;
  return path;
}

std::string from_hex(const std::string& hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) out.push_back(char(std::stoi(hex.substr(i, 2), nullptr, 16)));
  return out;
}

}  // namespace

TEST_CASE("wordpiece: vocabulary ids and special tokens", "[train][wordpiece]") {
  const auto& t = tiny();
  CHECK(t.vocab_size() == 35);
  CHECK(t.pad_id() == 0);
  CHECK(t.unk_id() == 1);
  CHECK(t.cls_id() == 2);
  CHECK(t.sep_id() == 3);
  CHECK(t.mask_id() == 4);
  CHECK(t.token_to_id("##ffable") == 10);
  CHECK(t.token_to_id("missing") == -1);
  CHECK(t.id_to_token(24) == "我");
  CHECK(t.convert_tokens_to_ids({"hello", "nope", "world"}) == std::vector<int32_t>{15, 1, 16});
  CHECK_THROWS_WITH(t.id_to_token(35), Catch::Contains("id 35 outside the vocabulary [0, 35)"));
}

TEST_CASE("wordpiece: punctuation, case and whitespace", "[train][wordpiece]") {
  const auto& t = tiny();
  CHECK(t.tokenize("Hello, World!") == Tokens{"hello", ",", "world", "!"});
  CHECK(t.tokenize("  hello\t\n\rworld  ") == Tokens{"hello", "world"});
  // ASCII symbols count as punctuation even where Unicode calls them Sm/Sc/Sk: each splits alone.
  CHECK(t.basic_tokenize("x$x^x+x`x|x~x") ==
        Tokens{"x", "$", "x", "^", "x", "+", "x", "`", "x", "|", "x", "~", "x"});
  CHECK(t.tokenize("x^x") == Tokens{"x", "[UNK]", "x"});
  CHECK(t.basic_tokenize("a...b") == Tokens{"a", ".", ".", ".", "b"});
  // Unicode P*: em dash, guillemets, inverted question mark; U+2028 separates words like a space.
  CHECK(t.basic_tokenize("a\u2014b«c»¿d") == Tokens{"a", "\u2014", "b", "«", "c", "»", "¿", "d"});
  CHECK(t.basic_tokenize("a\u2028b\u00a0c\u3000d") == Tokens{"a", "b", "c", "d"});
  // Symbols outside the ASCII ranges (Sm, So) stay inside the word.
  CHECK(t.basic_tokenize("a±b") == Tokens{"a±b"});
  CHECK(t.basic_tokenize("don't") == Tokens{"don", "'", "t"});
}

TEST_CASE("wordpiece: accents, lower case, CJK, final sigma", "[train][wordpiece]") {
  const auto& t = tiny();
  CHECK(t.tokenize("Café RÉSUMÉ") == Tokens{"cafe", "resume"});
  CHECK(t.tokenize("Cafe\u0301") == Tokens{"cafe"});  // decomposed input
  CHECK(t.tokenize("我爱北京") == Tokens{"我", "爱", "北", "京"});
  CHECK(t.tokenize("x我x") == Tokens{"x", "我", "x"});
  CHECK(t.basic_tokenize("İ") == Tokens{"i"});
  // Σ at a word end becomes ς, elsewhere σ (Python's str.lower); "." is case-ignorable.
  CHECK(t.tokenize("ΟΣ") == Tokens{"ο", "##ς"});
  CHECK(t.tokenize("ΣΟ") == Tokens{"σ", "##ο"});
  CHECK(t.basic_tokenize("ΟΣ.Ο") == Tokens{"οσ", ".", "ο"});
  CHECK(t.basic_tokenize("ΟΣ. Ο") == Tokens{"ος", ".", "ο"});
  CHECK(t.basic_tokenize("Σ") == Tokens{"σ"});

  auto cased = WordPieceTokenizer::from_vocab_file(data_path("tiny_vocab.txt"), false);
  CHECK(cased.tokenize("Hello hello") == Tokens{"[UNK]", "hello"});
  CHECK(cased.basic_tokenize("Café") == Tokens{"Café"});
  CHECK(cased.basic_tokenize("x我x") == Tokens{"x", "我", "x"});
}

TEST_CASE("wordpiece: cleaning drops controls, U+FFFD and ill-formed UTF-8", "[train][wordpiece]") {
  const auto& t = tiny();
  CHECK(t.tokenize(std::string("x\0x", 3)) == Tokens{"x", "##x"});
  CHECK(t.tokenize("x\x01x\x7fx") == Tokens{"x", "##x", "##x"});
  CHECK(t.tokenize("x\u200bx\ufeffx\u00adx") == Tokens{"x", "##x", "##x", "##x"});  // Cf
  CHECK(t.tokenize("x\ufffdx") == Tokens{"x", "##x"});
  CHECK(t.tokenize("x\xffx") == Tokens{"x", "##x"});
  CHECK(t.tokenize("x\xe4\xb8x") == Tokens{"x", "##x"});          // truncated 3-byte sequence
  CHECK(t.tokenize("x\xed\xa0\x80x") == Tokens{"x", "##x"});      // encoded surrogate
  CHECK(t.tokenize("x\xc0\xafx") == Tokens{"x", "##x"});          // overlong
  CHECK(t.tokenize("x\xf4\x90\x80\x80x") == Tokens{"x", "##x"});  // above U+10FFFF
  CHECK(t.tokenize("x\xe4") == Tokens{"x"});
  CHECK(t.tokenize("\x0bx\x0cx\xc2\x85") == Tokens{"x", "##x"});  // VT, FF, NEL are Cc: dropped
  CHECK(t.tokenize("").empty());
  CHECK(t.tokenize(" \t ").empty());
  CHECK(t.tokenize("\u0301").empty());  // a lone combining mark strips to nothing
}

TEST_CASE("wordpiece: greedy longest match, continuation and [UNK]", "[train][wordpiece]") {
  const auto& t = tiny();
  // "una" + "##ffable" beats "un" + "##aff" + "##able": the longest prefix wins at each step.
  CHECK(t.tokenize("unaffable") == Tokens{"una", "##ffable"});
  CHECK(t.tokenize("unable") == Tokens{"[UNK]"});  // "una" + "ble": no piece for "b l e" rest
  CHECK(t.tokenize("abab") == Tokens{"a", "##b", "##a", "##b"});
  CHECK(t.tokenize("abc hello") == Tokens{"[UNK]", "hello"});  // unmatched rest: whole word [UNK]
  CHECK(t.tokenize("bab") == Tokens{"b", "##a", "##b"});
  CHECK(t.encode_ids("the unaffable") == std::vector<int32_t>{5, 7, 10});

  std::string x100(100, 'x'), x101(101, 'x');
  Tokens expect{"x"};
  expect.insert(expect.end(), 99, "##x");
  CHECK(t.tokenize(x100) == expect);
  CHECK(t.tokenize(x101) == Tokens{"[UNK]"});
  // The limit counts code points after accent stripping, not bytes.
  std::string xa100, xa101;
  for (int i = 0; i < 100; ++i) xa100 += "x\u0301";
  xa101 = xa100 + "x";
  CHECK(t.tokenize(xa100) == expect);
  CHECK(t.tokenize(xa101) == Tokens{"[UNK]"});
}

TEST_CASE("wordpiece: special tokens written in the text", "[train][wordpiece]") {
  const auto& t = tiny();
  CHECK(t.tokenize("hello[SEP]world") == Tokens{"hello", "[SEP]", "world"});
  CHECK(t.encode_ids("[CLS][MASK] x") == std::vector<int32_t>{2, 4, 28});
  CHECK(t.encode_ids("[sep]") == std::vector<int32_t>{1, 1, 1});  // case matters: "[", "sep", "]"
  CHECK(t.tokenize("[SEP") == Tokens{"[UNK]", "[UNK]"});
}

TEST_CASE("truncate_pair_lengths: longest_first as the fast tokenizer", "[train][wordpiece]") {
  using P = std::pair<int64_t, int64_t>;
  CHECK(truncate_pair_lengths(3, 4, 10) == P{3, 4});
  CHECK(truncate_pair_lengths(3, 4, 7) == P{3, 4});
  CHECK(truncate_pair_lengths(2, 10, 7) == P{2, 5});   // shorter kept whole
  CHECK(truncate_pair_lengths(10, 2, 7) == P{5, 2});
  CHECK(truncate_pair_lengths(6, 6, 7) == P{3, 4});    // tie: the second gets the odd token
  CHECK(truncate_pair_lengths(7, 5, 7) == P{4, 3});    // the longer gets it
  CHECK(truncate_pair_lengths(5, 7, 7) == P{3, 4});
  CHECK(truncate_pair_lengths(6, 6, 8) == P{4, 4});
  CHECK(truncate_pair_lengths(70, 100, 125) == P{62, 63});  // spec §4 example
  CHECK(truncate_pair_lengths(0, 9, 4) == P{0, 4});
  CHECK(truncate_pair_lengths(4, 4, 0) == P{0, 0});
  CHECK_THROWS_WITH(truncate_pair_lengths(-1, 2, 3), Catch::Contains("truncate_pair_lengths"));
  // Brute force: the kept lengths never exceed the originals and fill the budget exactly.
  for (int a = 0; a < 12; ++a)
    for (int b = 0; b < 12; ++b)
      for (int budget = 0; budget < 25; ++budget) {
        auto [ka, kb] = truncate_pair_lengths(a, b, budget);
        INFO(a << " " << b << " " << budget);
        CHECK(ka <= a);
        CHECK(kb <= b);
        CHECK(ka + kb == std::min(a + b, budget));
      }
}

TEST_CASE("wordpiece encode: template, token types, mask, padding", "[train][wordpiece]") {
  const auto& t = tiny();
  std::string b = "world world";
  Encoding e = t.encode("hello x", &b, 10, true);
  CHECK(e.input_ids == std::vector<int32_t>{2, 15, 28, 3, 16, 16, 3, 0, 0, 0});
  CHECK(e.token_type_ids == std::vector<int32_t>{0, 0, 0, 0, 1, 1, 1, 0, 0, 0});
  CHECK(e.attention_mask == std::vector<int32_t>{1, 1, 1, 1, 1, 1, 1, 0, 0, 0});

  Encoding np = t.encode("hello x", &b, 10, false);
  CHECK(np.input_ids == std::vector<int32_t>{2, 15, 28, 3, 16, 16, 3});
  CHECK(np.attention_mask == std::vector<int32_t>(7, 1));

  // Budget 8 - 3 = 5 for lengths 4 and 4: a tie, so the first keeps 2 and the second 3.
  std::string b4 = "world world world world";
  Encoding tr = t.encode("x x x x", &b4, 8, true);
  CHECK(tr.input_ids == std::vector<int32_t>{2, 28, 28, 3, 16, 16, 16, 3});
  CHECK(tr.token_type_ids == std::vector<int32_t>{0, 0, 0, 0, 1, 1, 1, 1});

  Encoding single = t.encode("hello world hello", nullptr, 4, true);
  CHECK(single.input_ids == std::vector<int32_t>{2, 15, 16, 3});
  CHECK(single.token_type_ids == std::vector<int32_t>(4, 0));
  Encoding empty = t.encode("", &b, 5, true);
  CHECK(empty.input_ids == std::vector<int32_t>{2, 3, 16, 16, 3});

  CHECK_THROWS_WITH(t.encode("x", &b, 2, true), Catch::Contains("max_length 2") && Catch::Contains("pair"));
  CHECK_THROWS_WITH(t.encode("x", nullptr, 1, true), Catch::Contains("max_length 1"));
  CHECK_NOTHROW(t.encode("x", nullptr, 2, true));
}

TEST_CASE("pad_to_longest: dynamic padding, multiple of 8", "[train][wordpiece]") {
  const auto& t = tiny();
  std::string b = "world";
  std::vector<Encoding> batch = {t.encode("x", nullptr, 64, false), t.encode("x x x", &b, 64, false)};
  CHECK(pad_to_longest(batch) == 7);
  CHECK(batch[0].input_ids == std::vector<int32_t>{2, 28, 3, 0, 0, 0, 0});
  CHECK(batch[0].attention_mask == std::vector<int32_t>{1, 1, 1, 0, 0, 0, 0});
  CHECK(batch[1].token_type_ids == std::vector<int32_t>{0, 0, 0, 0, 0, 1, 1});
  CHECK(pad_to_longest(batch, 0, 8) == 8);
  CHECK(batch[1].input_ids.size() == 8);
  CHECK(batch[1].attention_mask.back() == 0);
  batch[0].attention_mask.pop_back();
  CHECK_THROWS_WITH(pad_to_longest(batch), Catch::Contains("pad_to_longest"));
  CHECK_THROWS_WITH(pad_to_longest(batch, 0, 0), Catch::Contains("multiple_of 0"));
}

TEST_CASE("wordpiece: bad vocabulary files name the file and line", "[train][wordpiece]") {
  CHECK_THROWS_WITH(WordPieceTokenizer::from_vocab_file("/nonexistent/vocab.txt"),
                    Catch::Contains("/nonexistent/vocab.txt") && Catch::Contains("cannot open"));
  std::string empty = write_temp("empty.txt", "");
  CHECK_THROWS_WITH(WordPieceTokenizer::from_vocab_file(empty), Catch::Contains(empty + ":1: empty"));
  std::string dup = write_temp("dup.txt", "[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello\nworld\nhello\n");
  CHECK_THROWS_WITH(WordPieceTokenizer::from_vocab_file(dup),
                    Catch::Contains(dup + ":7: duplicate token 'hello' (first at line 5)"));
  std::string nounk = write_temp("nounk.txt", "[PAD]\n[CLS]\n[SEP]\nhello\n");
  CHECK_THROWS_WITH(WordPieceTokenizer::from_vocab_file(nounk), Catch::Contains(nounk + ": vocabulary has no [UNK]"));
  std::string bad = write_temp("bad.txt", "[PAD]\n[UNK]\n[CLS]\n[SEP]\nhel\xfflo\n");
  CHECK_THROWS_WITH(WordPieceTokenizer::from_vocab_file(bad), Catch::Contains(bad + ":5: token is not valid UTF-8"));
  // CRLF endings and a missing final newline are fine; ids stay line numbers.
  std::string crlf = write_temp("crlf.txt", "[PAD]\r\n[UNK]\r\n[CLS]\r\n[SEP]\r\nhello");
  auto t = WordPieceTokenizer::from_vocab_file(crlf);
  CHECK(t.vocab_size() == 5);
  CHECK(t.encode_ids("Hello") == std::vector<int32_t>{4});
  CHECK(t.mask_id() == -1);
}

TEST_CASE("wordpiece matches transformers on RTE dev and hard strings", "[train][wordpiece][golden]") {
  const char* cache_env = std::getenv("BERTRAZOR_CACHE");
  const char* home = std::getenv("HOME");
  std::string cache = cache_env ? cache_env : std::string(home ? home : "") + "/.cache/bertrazor";
  std::string vocab = cache + "/models/all-MiniLM-L6-v2/vocab.txt";
  if (!std::filesystem::exists(vocab)) {
    test::skip("no " + vocab + " (run tools/get_model.sh all-MiniLM-L6-v2)");
    return;
  }
  auto tok = WordPieceTokenizer::from_vocab_file(vocab);
  REQUIRE(tok.vocab_size() == 30522);
  std::ifstream in(data_path("tokenizer_golden.jsonl"));
  REQUIRE(in.good());
  std::string line;
  int pairs = 0, texts = 0, slow_fast_differ = 0;
  while (std::getline(in, line)) {
    auto r = nlohmann::json::parse(line);
    if (r["kind"] == "pair") {
      std::string a = r["a"], b = r["b"];
      int max_length = r["max_length"];
      INFO("pair " << pairs << " max_length " << max_length << "\nA: " << a << "\nB: " << b);
      Encoding e = tok.encode(a, &b, max_length, true);
      CHECK(e.input_ids == r["input_ids"].get<std::vector<int32_t>>());
      CHECK(e.token_type_ids == r["token_type_ids"].get<std::vector<int32_t>>());
      CHECK(e.attention_mask == r["attention_mask"].get<std::vector<int32_t>>());
      ++pairs;
    } else if (r["kind"] == "text") {
      std::string text = from_hex(r["hex"]);
      INFO("text hex " << r["hex"].get<std::string>());
      CHECK(tok.tokenize(text) == r["tokens"].get<Tokens>());
      CHECK(tok.encode_ids(text) == r["ids"].get<std::vector<int32_t>>());
      slow_fast_differ += r["ids"] != r["fast_ids"];
      ++texts;
    }
  }
  CHECK(pairs == 2 * 277);
  CHECK(texts >= 30);
  // The only known slow/fast difference in the set is the final sigma (fast lower-cases per char).
  CHECK(slow_fast_differ <= 1);
}

TEST_CASE("wordpiece: random bytes never crash and keep the encoding invariants", "[train][wordpiece]") {
  const auto& t = tiny();
  uint64_t seed = test::fresh_seed();
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  // Bytes drawn from a small alphabet of ASCII, punctuation, lead/continuation bytes and vocab text.
  const std::vector<std::string> parts = {"x", "a", "b", " ", "\t", "!", "[SEP]", "[", "\xff", "\xc3", "\xa9",
                                          "\xe4\xb8", "\xe6\x88\x91", "\x00", "\xcc\x81", "una", "Σ", "é"};
  for (int it = 0; it < 2000; ++it) {
    std::string a, b;
    for (int k = int(rng() % 40); k > 0; --k) a += parts[rng() % parts.size()];
    for (int k = int(rng() % 40); k > 0; --k) b += parts[rng() % parts.size()];
    int max_length = 3 + int(rng() % 30);
    Encoding e = t.encode(a, &b, max_length, it % 2 == 0);
    REQUIRE(e.input_ids.size() <= size_t(max_length));
    REQUIRE(e.input_ids.size() == e.attention_mask.size());
    REQUIRE(e.input_ids.size() == e.token_type_ids.size());
    REQUIRE(e.input_ids[0] == t.cls_id());
    int64_t real = std::count(e.attention_mask.begin(), e.attention_mask.end(), 1);
    REQUIRE(e.input_ids[size_t(real - 1)] == t.sep_id());
    for (int32_t id : e.input_ids) REQUIRE((id >= 0 && id < t.vocab_size()));
    // Without truncation pressure the pair is the concatenation of the single encodings.
    auto ia = t.encode_ids(a), ib = t.encode_ids(b);
    int64_t budget = max_length - 3;
    auto [ka, kb] = truncate_pair_lengths(int64_t(ia.size()), int64_t(ib.size()), budget);
    REQUIRE(real == ka + kb + 3);
    REQUIRE(std::equal(ia.begin(), ia.begin() + ka, e.input_ids.begin() + 1));
    REQUIRE(std::equal(ib.begin(), ib.begin() + kb, e.input_ids.begin() + 2 + ka));
  }
}
