// GLUE task table and loaders: the real RTE files in /work/shared/data (GLUE TSV and the datasets
// export must agree), a synthetic file for every other task layout, --train_file tables in CSV,
// TSV and JSON lines, and malformed input with the message checked.
#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>

#include "core/error.h"
#include "harness.h"
#include "train/batch.h"
#include "train/glue.h"

using namespace br;
namespace fs = std::filesystem;

namespace {

std::string shared_data() {
  return (fs::path(BERTRAZOR_SOURCE_DIR) / ".." / "shared" / "data").lexically_normal().string();
}

fs::path temp_dir() {
  fs::path d = fs::temp_directory_path() / "bertrazor_test_glue";
  fs::create_directories(d);
  return d;
}

std::string write(const std::string& name, const std::string& content) {
  fs::path p = temp_dir() / name;
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << content;
  return p.string();
}

}  // namespace

TEST_CASE("glue task table: label order, keys, metrics", "[train][glue]") {
  REQUIRE(glue_tasks().size() == 9);
  CHECK(glue_task("rte").label_names == std::vector<std::string>{"entailment", "not_entailment"});
  CHECK(glue_task("MNLI").label_names == std::vector<std::string>{"entailment", "neutral", "contradiction"});
  CHECK(glue_task("wnli").label_names == std::vector<std::string>{"not_entailment", "entailment"});
  CHECK(glue_task("cola").label_names == std::vector<std::string>{"unacceptable", "acceptable"});
  CHECK(glue_task("stsb").is_regression());
  CHECK(glue_task("stsb").num_labels() == 1);
  CHECK(glue_task("qqp").key_a == "question1");
  CHECK(glue_task("qnli").key_b == "sentence");
  CHECK(glue_task("sst2").key_b.empty());
  CHECK(glue_task("mrpc").metric_names == std::vector<std::string>{"accuracy", "f1", "combined_score"});
  CHECK_THROWS_WITH(glue_task("squad"), Catch::Contains("unknown task 'squad'") && Catch::Contains("rte"));
  auto f = glue_files(glue_task("mnli"), Split::validation);
  REQUIRE(f.size() == 2);
  CHECK(f[1].split_name == "validation_mismatched");
  CHECK(f[1].file_name == "dev_mismatched.tsv");
  CHECK(glue_files(glue_task("rte"), Split::validation)[0].file_name == "dev.tsv");
}

TEST_CASE("glue RTE: the GLUE TSV files", "[train][glue][data]") {
  std::string dir = shared_data() + "/glue/RTE";
  if (!fs::exists(dir)) {
    test::skip("no " + dir);
    return;
  }
  const GlueTask& rte = glue_task("rte");
  auto train = load_glue_split(rte, dir, Split::train);
  auto dev = load_glue_split(rte, dir, Split::validation);
  auto test = load_glue_split(rte, dir, Split::test);
  REQUIRE(train.size() == 1);
  CHECK(train[0].size() == 2490);
  CHECK(dev[0].size() == 277);
  CHECK(test[0].size() == 3000);
  const Example& d0 = dev[0][0];
  CHECK(d0.text_a.rfind("Dana Reeve, the widow of the actor Christopher Reeve", 0) == 0);
  CHECK(d0.text_b == std::string("Christopher Reeve had an accident."));
  CHECK(d0.label == 1);
  CHECK(d0.idx == 0);
  CHECK(dev[0][1].label == 0);
  CHECK(dev[0][276].idx == 276);
  int labeled = 0;
  for (const Example& e : train[0]) labeled += e.label == 0 || e.label == 1;
  CHECK(labeled == 2490);
  for (const Example& e : test[0]) CHECK_FALSE(e.labeled());
  // Quotes are literal in the GLUE TSV (no quoting).
  bool found_quote = false;
  for (const Example& e : train[0]) found_quote |= e.text_a.find("\"extensive\"") != std::string::npos;
  CHECK(found_quote);
}

TEST_CASE("glue RTE: the datasets export (quoted TSV) gives the same examples", "[train][glue][data]") {
  std::string glue_dir = shared_data() + "/glue/RTE", hf_dir = shared_data() + "/glue-hf/rte";
  if (!fs::exists(glue_dir) || !fs::exists(hf_dir)) {
    test::skip("no " + glue_dir + " or " + hf_dir);
    return;
  }
  const GlueTask& rte = glue_task("rte");
  for (auto [glue_file, hf_file, split] :
       {std::tuple{"train.tsv", "train.tsv", Split::train}, std::tuple{"dev.tsv", "validation.tsv", Split::validation},
        std::tuple{"test.tsv", "test.tsv", Split::test}}) {
    auto a = load_glue_tsv(rte, glue_dir + "/" + glue_file, split);
    auto b = load_task_file(rte, hf_dir + "/" + hf_file);
    INFO(hf_file);
    REQUIRE(a.size() == b.size());
    size_t same = 0;
    for (size_t i = 0; i < a.size(); ++i)
      same += a[i].text_a == b[i].text_a && a[i].text_b == b[i].text_b && a[i].label == b[i].label &&
              a[i].idx == b[i].idx;
    CHECK(same == a.size());
  }
  // Without --task_name the labels are the sorted unique ids and the columns sentence1/sentence2.
  DataTable t = read_data_file(hf_dir + "/train.tsv");
  CHECK(t.columns == std::vector<std::string>{"sentence1", "sentence2", "label", "idx"});
  LabelScheme s = infer_label_scheme(t);
  CHECK(s.names == std::vector<std::string>{"0", "1"});
  CHECK_FALSE(s.ids_as_stored);
  TextColumns c = choose_text_columns(t);
  CHECK(c.a == "sentence1");
  CHECK(c.b == "sentence2");
  CHECK(load_examples(t, c, s).size() == 2490);
}

TEST_CASE("glue TSV layout of cola: no header in train/dev, header in test", "[train][glue]") {
  std::string p = write("CoLA/train.tsv", "gj04\t1\t\tOur friends won't buy this analysis.\n"
                                          "gj04\t0\t*\tThey drank the pub.\r\n\ngj04\t1\t\tOne \"more\" pint.\n");
  auto ex = load_glue_tsv(glue_task("cola"), p, Split::train);
  REQUIRE(ex.size() == 3);
  CHECK(ex[0].text_a == "Our friends won't buy this analysis.");
  CHECK(ex[1].label == 0);
  CHECK(ex[2].text_a == "One \"more\" pint.");
  CHECK(ex[2].idx == 2);
  CHECK_FALSE(ex[0].text_b.has_value());
  std::string t = write("CoLA/test.tsv", "index\tsentence\n0\tBill whistled past the house.\n");
  auto te = load_glue_tsv(glue_task("cola"), t, Split::test);
  REQUIRE(te.size() == 1);
  CHECK(te[0].text_a == "Bill whistled past the house.");
  CHECK(te[0].label == -1);
}

TEST_CASE("glue TSV layout of sst2", "[train][glue]") {
  std::string p = write("SST-2/dev.tsv", "sentence\tlabel\nit 's a charming journey . \t1\nbad\t0\n");
  auto ex = load_glue_tsv(glue_task("sst2"), p, Split::validation);
  REQUIRE(ex.size() == 2);
  CHECK(ex[0].text_a == "it 's a charming journey . ");
  CHECK(ex[0].label == 1);
}

TEST_CASE("glue TSV layout of mrpc: BOM and the MS header", "[train][glue]") {
  std::string p = write("MRPC/train.tsv",
                        "\xEF\xBB\xBFQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\n"
                        "1\t702876\t702977\tAmrozi accused his brother.\tReferring to him as the witness.\n"
                        "0\t2108705\t2108831\tYucaipa owned Dominick's.\tYucaipa bought Dominick's.\n");
  auto ex = load_glue_tsv(glue_task("mrpc"), p, Split::train);
  REQUIRE(ex.size() == 2);
  CHECK(ex[0].label == 1);
  CHECK(ex[1].text_a == "Yucaipa owned Dominick's.");
  CHECK(ex[1].text_b == std::string("Yucaipa bought Dominick's."));
  std::string t = write("MRPC/test.tsv", "index\t#1 ID\t#2 ID\t#1 String\t#2 String\n0\t1\t2\tA a.\tB b.\n");
  auto te = load_glue_tsv(glue_task("mrpc"), t, Split::test);
  CHECK(te[0].text_b == std::string("B b."));
  CHECK_FALSE(te[0].labeled());
}

TEST_CASE("glue TSV layout of qqp: rows with missing fields are dropped, their idx skipped",
          "[train][glue]") {
  std::string p = write("QQP/train.tsv",
                        "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n"
                        "0\t1\t2\tHow?\tWhy?\t0\n"
                        "1\t3\t4\tbroken row\n"
                        "2\t5\t6\tWhat?\tWhat is it?\t1\n"
                        "3\t7\t8\tEmpty label\tx\t\n");
  auto ex = load_glue_tsv(glue_task("qqp"), p, Split::train);
  REQUIRE(ex.size() == 2);
  CHECK(ex[1].idx == 2);
  CHECK(ex[1].label == 1);
  CHECK(ex[1].text_b == std::string("What is it?"));
  std::string t = write("QQP/test.tsv", "id\tquestion1\tquestion2\n0\tA?\tB?\n");
  CHECK(load_glue_tsv(glue_task("qqp"), t, Split::test)[0].text_a == "A?");
}

TEST_CASE("glue TSV layout of stsb: float scores", "[train][glue]") {
  std::string p = write("STS-B/dev.tsv",
                        "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
                        "0\tmain-captions\tMSRvid\t2012test\t0000\tnone\tnone\tA man with a hard hat.\tA man wearing a hat.\t5.000\n"
                        "1\tmain-captions\tMSRvid\t2012test\t0002\tnone\tnone\tA kid.\tA boy.\t4.750\n");
  auto ex = load_glue_tsv(glue_task("stsb"), p, Split::validation);
  REQUIRE(ex.size() == 2);
  CHECK(ex[0].value == 5.0f);
  CHECK(ex[1].value == 4.75f);
  CHECK(ex[1].label == -1);
  CHECK(ex[1].text_b == std::string("A boy."));
  std::string t = write("STS-B/test.tsv",
                        "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\n"
                        "0\tg\tf\ty\t0\tn\tn\tA.\tB.\n");
  auto te = load_glue_tsv(glue_task("stsb"), t, Split::test);
  CHECK(std::isnan(te[0].value));
  CHECK_FALSE(te[0].labeled());
}

TEST_CASE("glue TSV layout of mnli: 12-column train, 16-column dev (gold_label last), 10-column test",
          "[train][glue]") {
  std::string train = write("MNLI/train.tsv",
                            "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\t"
                            "sentence1_parse\tsentence2_parse\tsentence1\tsentence2\tlabel1\tgold_label\n"
                            "0\t31193\t31193n\tgovernment\t( a )\t( b )\t(ROOT a)\t(ROOT b)\tConceptually cream.\t"
                            "Product and geography.\tneutral\tneutral\n");
  auto ex = load_glue_tsv(glue_task("mnli"), train, Split::train);
  REQUIRE(ex.size() == 1);
  CHECK(ex[0].label == 1);
  CHECK(ex[0].text_a == "Conceptually cream.");
  CHECK(ex[0].text_b == std::string("Product and geography."));
  std::string dev = write("MNLI/dev_matched.tsv",
                          "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\t"
                          "sentence1_parse\tsentence2_parse\tsentence1\tsentence2\tlabel1\tlabel2\tlabel3\tlabel4\t"
                          "label5\tgold_label\n"
                          "0\t1\t1n\tfiction\tp\tp\tp\tp\tThe new rights.\tEveryone loves.\tneutral\tentailment\t"
                          "neutral\tneutral\tneutral\tcontradiction\n");
  std::string dev_mm = write("MNLI/dev_mismatched.tsv",
                             "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\t"
                             "sentence1_parse\tsentence2_parse\tsentence1\tsentence2\tlabel1\tlabel2\tlabel3\t"
                             "label4\tlabel5\tgold_label\n"
                             "0\t1\t1n\tletters\tp\tp\tp\tp\tA.\tB.\tentailment\t\t\t\t\tentailment\n");
  auto sets = load_glue_split(glue_task("mnli"), (temp_dir() / "MNLI").string(), Split::validation);
  REQUIRE(sets.size() == 2);
  CHECK(sets[0][0].label == 2);
  CHECK(sets[1][0].label == 0);
  std::string test = write("MNLI/test_matched.tsv",
                           "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\t"
                           "sentence1_parse\tsentence2_parse\tsentence1\tsentence2\n"
                           "0\t1\t1n\tg\tp\tp\tp\tp\tHello.\tWorld.\n");
  auto te = load_glue_tsv(glue_task("mnli"), test, Split::test);
  CHECK(te[0].text_b == std::string("World."));
  CHECK_FALSE(te[0].labeled());
}

TEST_CASE("glue TSV layout of qnli and wnli", "[train][glue]") {
  std::string q = write("QNLI/dev.tsv", "index\tquestion\tsentence\tlabel\n0\tWhat?\tThis.\tnot_entailment\n");
  auto qe = load_glue_tsv(glue_task("qnli"), q, Split::validation);
  CHECK(qe[0].text_a == "What?");
  CHECK(qe[0].label == 1);
  std::string w = write("WNLI/train.tsv", "index\tsentence1\tsentence2\tlabel\n0\tI stuck a pin.\tThe pin.\t1\n"
                                          "1\tA.\tB.\t0\n");
  auto we = load_glue_tsv(glue_task("wnli"), w, Split::train);
  CHECK(we[0].label == 1);  // 1 = entailment in WNLI's ClassLabel order
  CHECK(we[1].label == 0);
}

TEST_CASE("glue TSV: malformed input names file, line and expectation", "[train][glue]") {
  const GlueTask& rte = glue_task("rte");
  std::string cols = write("bad/cols.tsv", "index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n1\ta\tb\n");
  CHECK_THROWS_WITH(load_glue_tsv(rte, cols, Split::train), Catch::Contains(cols + ":3: expected 4 columns, found 3"));
  std::string label = write("bad/label.tsv", "index\tsentence1\tsentence2\tlabel\n0\ta\tb\tmaybe\n");
  CHECK_THROWS_WITH(load_glue_tsv(rte, label, Split::train),
                    Catch::Contains(label + ":2: unknown label 'maybe'") && Catch::Contains("'not_entailment'"));
  std::string id = write("bad/id.tsv", "index\tsentence1\tsentence2\tlabel\n0\ta\tb\t2\n");
  CHECK_THROWS_WITH(load_glue_tsv(rte, id, Split::train), Catch::Contains(id + ":2: unknown label '2'"));
  std::string empty = write("bad/empty.tsv", "");
  CHECK_THROWS_WITH(load_glue_tsv(rte, empty, Split::train), Catch::Contains(empty + ":1: empty file"));
  std::string header = write("bad/header.tsv", "index\tsentence1\tlabel\n0\ta\tentailment\n");
  CHECK_THROWS_WITH(load_glue_tsv(rte, header, Split::train),
                    Catch::Contains(header + ":1: header has no column 'sentence2'"));
  std::string num = write("bad/num.tsv", "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\t"
                                         "sentence2\tscore\n0\tg\tf\ty\t0\tn\tn\tA.\tB.\tfive\n");
  CHECK_THROWS_WITH(load_glue_tsv(glue_task("stsb"), num, Split::train),
                    Catch::Contains(num + ":2: bad number 'five'"));
  std::string big = write("bad/big.tsv", "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\t"
                                         "sentence2\tscore\n0\tg\tf\ty\t0\tn\tn\tA.\tB.\t-1e39\n");
  CHECK_THROWS_WITH(load_glue_tsv(glue_task("stsb"), big, Split::train),
                    Catch::Contains(big + ":2: regression label '-1e39' is outside float32's range"));
  std::string cola = write("bad/cola.tsv", "gj04\t1\tx\n");
  CHECK_THROWS_WITH(load_glue_tsv(glue_task("cola"), cola, Split::train),
                    Catch::Contains(cola + ":1: expected 4 columns, found 3"));
  std::string nolabel = write("bad/nolabel.tsv", "index\tsentence1\tsentence2\tlabel\n0\ta\tb\t\n");
  CHECK_THROWS_WITH(load_glue_tsv(rte, nolabel, Split::train), Catch::Contains(nolabel + ":2: empty label"));
  CHECK_THROWS_WITH(load_glue_tsv(rte, "/nonexistent/x.tsv", Split::train), Catch::Contains("/nonexistent/x.tsv: cannot open"));
}

TEST_CASE("data files: CSV quoting, JSON lines, label schemes, text columns", "[train][glue]") {
  SECTION("csv with quotes, doubled quotes, commas and line breaks inside fields") {
    std::string p = write("files/train.csv",
                          "sentence1,sentence2,label,idx\r\n"
                          "\"He said \"\"hi\"\", then left.\",plain,not_entailment,7\r\n"
                          "\"two\nlines\",\"a, b\",entailment,8\r\n"
                          "\n"
                          "x,,entailment,9\r\n");
    DataTable t = read_data_file(p);
    REQUIRE(t.rows.size() == 3);
    CHECK(t.lines == std::vector<int64_t>{2, 3, 6});
    auto ex = load_examples(t, choose_text_columns(t), infer_label_scheme(t));
    CHECK(ex[0].text_a == "He said \"hi\", then left.");
    CHECK(ex[0].label == 1);  // sorted unique: entailment, not_entailment
    CHECK(ex[0].idx == 7);
    CHECK(ex[1].text_a == "two\nlines");
    CHECK(ex[1].text_b == std::string("a, b"));
    CHECK(ex[2].text_b == std::string(""));
    // With the task, string labels go through the task's names.
    auto tex = load_task_file(glue_task("rte"), p);
    CHECK(tex[0].label == 1);
  }
  SECTION("json lines: integer, float and string labels") {
    std::string p = write("files/train.json",
                          "{\"premise\": \"A man.\", \"hypothesis\": \"A person.\", \"label\": 0, \"idx\": 0}\n"
                          "{\"premise\": \"B\", \"hypothesis\": \"C\", \"label\": 2, \"idx\": 1}\n"
                          "\n"
                          "{\"premise\": \"D\", \"hypothesis\": \"E\", \"label\": -1, \"idx\": 2}\n");
    auto ex = load_task_file(glue_task("mnli"), p);
    REQUIRE(ex.size() == 3);
    CHECK(ex[1].label == 2);
    CHECK_FALSE(ex[2].labeled());
    DataTable t = read_data_file(p);
    CHECK(t.lines == std::vector<int64_t>{1, 2, 4});
    // Without a task: the first two non-label columns, sorted unique ids without -1.
    TextColumns c = choose_text_columns(t);
    CHECK(c.a == "premise");
    CHECK(c.b == "hypothesis");
    LabelScheme s = infer_label_scheme(t);
    CHECK(s.names == std::vector<std::string>{"0", "2"});
    auto ex2 = load_examples(t, c, s);
    CHECK(ex2[1].label == 1);

    std::string r = write("files/reg.jsonl", "{\"sentence\": \"a\", \"label\": 3.5}\n{\"sentence\": \"b\", \"label\": 1}\n");
    DataTable rt = read_data_file(r);
    CHECK(infer_label_scheme(rt).is_regression());
    TextColumns rc = choose_text_columns(rt);
    CHECK(rc.a == "sentence");
    CHECK(rc.b.empty());
    auto rex = load_examples(rt, rc, infer_label_scheme(rt));
    CHECK(rex[0].value == 3.5f);
    CHECK(rex[1].value == 1.0f);
    CHECK(rex[1].idx == 1);

    std::string arr = write("files/arr.json", "[{\"s\": \"x\", \"label\": \"b\"}, {\"s\": \"y\", \"label\": \"a\"}]");
    DataTable at = read_data_file(arr);
    CHECK(infer_label_scheme(at).names == std::vector<std::string>{"a", "b"});
  }
  SECTION("integer labels sort numerically; stsb export floats") {
    std::string p = write("files/ints.csv", "text,label\na,10\nb,9\nc,10\n");
    DataTable t = read_data_file(p);
    CHECK(infer_label_scheme(t).names == std::vector<std::string>{"9", "10"});
    std::string s = write("files/stsb.csv", "sentence1,sentence2,label,idx\nA,B,5.0,0\nC,D,0.25,1\nE,F,-1.0,2\n");
    auto ex = load_task_file(glue_task("stsb"), s);
    CHECK(ex[0].value == 5.0f);
    CHECK(ex[1].value == 0.25f);
    CHECK_FALSE(ex[2].labeled());
  }
}

TEST_CASE("data files: malformed input names file, line and expectation", "[train][glue]") {
  std::string quote = write("badf/quote.csv", "sentence,label\nok,1\n\"never closed,1\nmore,0\n");
  CHECK_THROWS_WITH(read_data_file(quote), Catch::Contains(quote + ":3: unterminated quoted field"));
  std::string after = write("badf/after.csv", "sentence,label\n\"a\"b,1\n");
  CHECK_THROWS_WITH(read_data_file(after), Catch::Contains(after + ":2: expected ','"));
  std::string cols = write("badf/cols.tsv", "sentence\tlabel\na\t1\nb\n");
  CHECK_THROWS_WITH(read_data_file(cols), Catch::Contains(cols + ":3: expected 2 columns, found 1"));
  std::string empty = write("badf/empty.csv", "");
  CHECK_THROWS_WITH(read_data_file(empty), Catch::Contains(empty + ":1: empty file"));
  std::string blank = write("badf/blank.csv", "\n\n");
  CHECK_THROWS_WITH(read_data_file(blank), Catch::Contains(blank + ":1: empty file"));
  std::string json = write("badf/bad.jsonl", "{\"sentence\": \"a\", \"label\": 1}\n{\"sentence\": \"b\", \"label\": }\n");
  CHECK_THROWS_WITH(read_data_file(json), Catch::Contains(json + ":2: invalid JSON"));
  std::string nested = write("badf/nested.jsonl", "{\"sentence\": [1], \"label\": 1}\n");
  CHECK_THROWS_WITH(read_data_file(nested), Catch::Contains(nested + ":1: field 'sentence' holds a JSON array"));
  CHECK_THROWS_WITH(read_data_file("x.parquet"), Catch::Contains("unsupported data file extension '.parquet'"));

  std::string unknown = write("badf/unknown.csv", "sentence1,sentence2,label\na,b,maybe\n");
  CHECK_THROWS_WITH(load_task_file(glue_task("rte"), unknown), Catch::Contains(unknown + ":2: unknown label 'maybe'"));
  std::string range = write("badf/range.csv", "sentence1,sentence2,label\na,b,3\n");
  CHECK_THROWS_WITH(load_task_file(glue_task("rte"), range), Catch::Contains(range + ":2: label id 3 outside [0, 2)"));
  std::string missing = write("badf/missing.csv", "sentence1,label\na,0\n");
  CHECK_THROWS_WITH(load_task_file(glue_task("rte"), missing), Catch::Contains(missing + ": no column 'sentence2'"));
  std::string nolabel = write("badf/nolabel.csv", "sentence,label\na,\n");
  CHECK_THROWS_WITH(load_task_file(glue_task("sst2"), nolabel), Catch::Contains(nolabel + ":2: missing label"));
  std::string reg = write("badf/reg.csv", "sentence1,sentence2,label\na,b,high\n");
  CHECK_THROWS_WITH(load_task_file(glue_task("stsb"), reg), Catch::Contains("regression labels must be numbers"));
  std::string dup = write("badf/dup.csv", "label,label\n1,1\n");
  CHECK_THROWS_WITH(read_data_file(dup), Catch::Contains(dup + ":1: duplicate column 'label'"));
  // A validation label not seen in train is an error under an inferred scheme.
  std::string tr = write("badf/tr.csv", "sentence,label\na,x\nb,y\n");
  std::string va = write("badf/va.csv", "sentence,label\nc,z\n");
  LabelScheme s = infer_label_scheme(read_data_file(tr));
  CHECK_THROWS_WITH(load_examples(read_data_file(va), {"sentence", ""}, s),
                    Catch::Contains(va + ":2: unknown label 'z'"));
}

TEST_CASE("data files: random bytes give examples or br::Error, nothing else", "[train][glue]") {
  uint64_t seed = test::fresh_seed();
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  const std::vector<std::string> parts = {"a", "b", ",", "\t", "\"", "\"\"", "\n", "\r\n", "label", "sentence",
                                          "1", "-1", "2.5", "{", "}", ":", "\xff", " "};
  const GlueTask& sst2 = glue_task("sst2");
  int ok = 0, errors = 0;
  for (int it = 0; it < 600; ++it) {
    std::string body = it % 2 ? "sentence,label\n" : "";
    for (int k = int(rng() % 30); k > 0; --k) body += parts[rng() % parts.size()];
    const char* ext = it % 3 == 0 ? "csv" : it % 3 == 1 ? "tsv" : "jsonl";
    std::string p = write(std::string("fuzz/f.") + ext, body);
    try {
      DataTable t = read_data_file(p);
      for (const auto& row : t.rows) REQUIRE(row.size() == t.columns.size());
      load_task_file(sst2, p);
      ++ok;
    } catch (const Error&) {
      ++errors;
    }
    try {
      load_glue_tsv(sst2, p, Split::train);
    } catch (const Error&) {
    }
  }
  CHECK(ok + errors == 600);
}

namespace {
// The least cost of `lengths` in groups of neighbours in length order, by trying every cut.
double brute_force_cost(std::vector<int64_t> lengths, const LengthCost& cost) {
  std::sort(lengths.begin(), lengths.end());
  const size_t n = lengths.size();
  double best = -1;
  for (uint32_t cuts = 0; cuts < (1u << (n - 1)); ++cuts) {  // bit i: a group ends after i
    double c = 0;
    size_t start = 0;
    for (size_t i = 0; i < n; ++i)
      if (i + 1 == n || (cuts >> i & 1u)) {
        c += cost(int64_t(i + 1 - start), lengths[i]);
        start = i + 1;
      }
    if (best < 0 || c < best) best = c;
  }
  return best;
}
}  // namespace

TEST_CASE("split_by_length: the cheapest groups of similar lengths, every position once",
          "[train][glue][batch]") {
  const LengthCost cost;  // fixed 145 tokens, attention as costly as the rest at length 256
  SECTION("equal lengths (pre-padded batches) and short batches stay whole") {
    for (size_t n : {1, 2, 16})
      CHECK(split_by_length(std::vector<int64_t>(n, 128), cost) ==
            std::vector<std::vector<size_t>>{[&] {
              std::vector<size_t> all(n);
              for (size_t i = 0; i < n; ++i) all[i] = i;
              return all;
            }()});
    CHECK(split_by_length({10, 30, 20, 12}, cost).size() == 1);  // 145 tokens more than all of them
  }
  SECTION("one long example among short ones runs apart, groups longest first, in batch order") {
    std::vector<int64_t> lengths(16, 40);
    lengths[5] = 128;
    lengths[11] = 120;
    const auto groups = split_by_length(lengths, cost);
    REQUIRE(groups.size() == 2);
    CHECK(groups[0] == std::vector<size_t>{5, 11});
    CHECK(groups[1] == std::vector<size_t>{0, 1, 2, 3, 4, 6, 7, 8, 9, 10, 12, 13, 14, 15});
  }
  SECTION("random batches: the brute-force optimum, and a partition of the positions") {
    std::mt19937 rng(11);
    for (int trial = 0; trial < 200; ++trial) {
      const size_t n = 1 + rng() % 12;
      std::vector<int64_t> lengths;
      for (size_t i = 0; i < n; ++i) lengths.push_back(int64_t(2 + rng() % 200));
      LengthCost c;
      c.fixed = double(rng() % 400);
      c.quadratic = 32.0 + double(rng() % 512);
      INFO("trial " << trial << " n " << n << " fixed " << c.fixed << " quadratic " << c.quadratic);
      const auto groups = split_by_length(lengths, c);
      std::vector<int> seen(n, 0);
      double total = 0;
      int64_t previous_longest = std::numeric_limits<int64_t>::max();
      for (const auto& g : groups) {
        REQUIRE_FALSE(g.empty());
        CHECK(std::is_sorted(g.begin(), g.end()));
        int64_t longest = 0;
        for (size_t at : g) {
          REQUIRE(at < n);
          ++seen[at];
          longest = std::max(longest, lengths[at]);
        }
        CHECK(longest <= previous_longest);
        previous_longest = longest;
        total += c(int64_t(g.size()), longest);
      }
      CHECK(seen == std::vector<int>(n, 1));
      CHECK(total == Approx(brute_force_cost(lengths, c)).epsilon(1e-12));
    }
  }
}

TEST_CASE("length_cost scales the attention's share with the width and heads",
          "[train][glue][batch]") {
  BertConfig minilm;
  minilm.hidden_size = 384;
  minilm.num_attention_heads = 12;
  CHECK(length_cost(minilm).quadratic == 256.0);
  BertConfig base;
  base.hidden_size = 768;
  base.num_attention_heads = 12;
  CHECK(length_cost(base).quadratic == 1024.0);
  CHECK(length_cost(base).fixed == LengthCost{}.fixed);
}

TEST_CASE("collate: pads to the longest, keys examples by index, labels only when all labeled",
          "[train][glue][batch]") {
  std::vector<Example> ex(3);
  ex[0].label = 1;
  ex[1].label = 0;
  ex[2].value = 2.5f;  // a regression-style example; label stays -1
  std::vector<Encoding> enc(3);
  enc[0].input_ids = {2, 7, 3};
  enc[0].token_type_ids = {0, 0, 0};
  enc[0].attention_mask = {1, 1, 1};
  enc[1].input_ids = {2, 3};
  enc[1].token_type_ids = {0, 0};
  enc[1].attention_mask = {1, 1};
  enc[2] = enc[1];
  BertBatch b = collate(ex, enc, {1, 0}, Device::cpu, false, 9);
  CHECK(b.input_ids.shape() == Shape{2, 3});
  CHECK(b.input_ids.to_vector<int32_t>() == std::vector<int32_t>{2, 3, 9, 2, 7, 3});
  CHECK(b.attention_mask.to_vector<int32_t>() == std::vector<int32_t>{1, 1, 0, 1, 1, 1});
  CHECK(b.example_ids.to_vector<int32_t>() == std::vector<int32_t>{1, 0});
  CHECK(b.labels.to_vector<int32_t>() == std::vector<int32_t>{0, 1});
  BertBatch r = collate(ex, enc, {2}, Device::cpu, true, 0);
  CHECK(r.labels.to_vector<float>() == std::vector<float>{2.5f});
  Example unlabeled;
  std::vector<Example> ex2 = {ex[0], unlabeled};
  std::vector<Encoding> enc2 = {enc[0], enc[1]};
  CHECK_FALSE(collate(ex2, enc2, {0, 1}, Device::cpu, false, 0).labels.defined());
  CHECK_THROWS_WITH(collate(ex, enc, {3}, Device::cpu, false, 0),
                    Catch::Contains("collate: index 3 outside [0, 3)"));
  CHECK_THROWS_WITH(collate(ex, enc2, {0}, Device::cpu, false, 0),
                    Catch::Contains("collate: 3 examples but 2 encodings"));
}
