#include <catch2/catch.hpp>

#include <filesystem>

#include "config/config.h"
#include "test_support.h"
#include "util/atomic_file.h"

using namespace qrobust;
using Catch::Matchers::Equals;

namespace {
const char* kGood = R"(name: demo
seed: 3
threads: 2
data:
  dataset: fashion_mnist
  batch_size: 64
model:
  name: resnet20
train:
  epochs: 10
  lr: 0.05
  schedule: multistep
  milestones: [5, 8]
)";

std::string error_of(const std::string& text, const std::vector<std::string>& overrides = {}) {
  try {
    config::parse_config(text, "configs/x.yaml", overrides);
  } catch (const config::ConfigError& e) {
    return e.what();
  }
  return "no error";
}
}  // namespace

TEST_CASE("a valid config parses into typed fields with defaults filled in") {
  const auto c = config::parse_config(kGood, "configs/x.yaml");
  CHECK(c.name == "demo");
  CHECK(c.seed == 3);
  CHECK(c.threads == 2);
  CHECK(c.data.dataset == config::Dataset::kFashionMnist);
  CHECK(c.data.root == "/usr/share/datasets/fashion-mnist");
  CHECK(c.data.batch_size == 64);
  CHECK(c.train.lr == Approx(0.05));
  CHECK(c.train.milestones == std::vector<int64_t>{5, 8});
  CHECK(c.train.momentum == Approx(0.9));
  CHECK(c.device == "auto");
}

TEST_CASE("the resolved YAML parses back to the same config", "[corpus]") {
  const auto c = config::parse_config(kGood, "configs/x.yaml", {"train.weight_decay=3e-4", "data.val_size=100"});
  testing::save_corpus_sample("config", kGood);
  testing::save_corpus_sample("config", config::to_yaml(c));
  const auto again = config::parse_config(config::to_yaml(c), "config.yaml");
  CHECK(config::to_yaml(again) == config::to_yaml(c));
  CHECK(again.train.weight_decay == c.train.weight_decay);
  CHECK(again.data.val_size == 100);
}

TEST_CASE("errors name the file, the line and the key") {
  const std::string text = std::string(kGood) + "  momentum: fast\n";
  CHECK_THAT(error_of(text), Equals("configs/x.yaml:14: train.momentum: expected a number, got \"fast\""));
}

TEST_CASE("unknown keys are errors at their line") {
  CHECK_THAT(error_of(std::string(kGood) + "  lrr: 0.1\n"), Catch::StartsWith("configs/x.yaml:14: train.lrr: unknown key"));
  CHECK_THAT(error_of(std::string(kGood) + "extra: 1\n"), Catch::StartsWith("configs/x.yaml:14: extra: unknown key"));
}

TEST_CASE("out-of-range and unknown values are errors") {
  CHECK_THAT(error_of(std::string(kGood) + "  momentum: 1.5\n"),
             Catch::StartsWith("configs/x.yaml:14: train.momentum: must be in [0, 1)"));
  CHECK_THAT(error_of("model:\n  name: resnet21\n"), Catch::StartsWith("configs/x.yaml:2: model.name: unknown model \"resnet21\""));
  CHECK_THAT(error_of("data:\n  dataset: imagenet9\n"), Catch::StartsWith("configs/x.yaml:2: data.dataset: expected one of"));
  CHECK_THAT(error_of("train:\n  epochs: 0\n"), Catch::StartsWith("configs/x.yaml:2: train.epochs: must be at least 1"));
  CHECK_THAT(error_of("train:\n  epochs: 2.5\n"), Catch::StartsWith("configs/x.yaml:2: train.epochs: expected an integer"));
  CHECK_THAT(error_of("train:\n  epochs: 10\n  schedule: multistep\n  milestones: [5, 20]\n"),
             Catch::StartsWith("configs/x.yaml:4: train.milestones: each milestone must be in 1..epochs"));
  CHECK_THAT(error_of("threads: 0\n"), Catch::StartsWith("configs/x.yaml:1: threads:"));
  CHECK_THAT(error_of("threads: 100000\n"), Catch::StartsWith("configs/x.yaml:1: threads: expected auto or 1..1024, got 100000"));
  CHECK_THAT(error_of("data:\n  eval_batch_size: 9223372036854775807\n"),
             Catch::StartsWith("configs/x.yaml:2: data.eval_batch_size: must be 1..65536"));
  CHECK_THAT(error_of("data:\n  batch_size: 100000\n"), Catch::StartsWith("configs/x.yaml:2: data.batch_size: must be 2..65536"));
  CHECK_THAT(error_of("device: gpu\n"), Catch::StartsWith("configs/x.yaml:1: device: expected auto, cpu, cuda"));
  CHECK_THAT(error_of("train: 3\n"), Catch::StartsWith("configs/x.yaml:1: train: expected a section"));
}

TEST_CASE("malformed YAML is an error with its line") {
  CHECK_THAT(error_of("train:\n  lr: [0.1\n  epochs: 3\n"), Catch::StartsWith("configs/x.yaml:"));
  CHECK_THAT(error_of("train:\n  lr: [0.1\n  epochs: 3\n"), Catch::Contains("invalid YAML"));
}

TEST_CASE("overrides given with --set go through the same validation") {
  const auto c = config::parse_config(kGood, "configs/x.yaml", {"train.lr=0.2", "model.width=32", "data.augment=false"});
  CHECK(c.train.lr == Approx(0.2));
  CHECK(c.model.width() == 32);
  CHECK_FALSE(c.data.augment);
  CHECK_THAT(error_of(kGood, {"train.lr=fast"}), Equals("--set train.lr: train.lr: expected a number, got \"fast\""));
  CHECK_THAT(error_of(kGood, {"train.lrr=1"}), Catch::StartsWith("--set train.lrr: train.lrr: unknown key"));
  CHECK_THAT(error_of(kGood, {"train.lr"}), Catch::Contains("expected key.path=value"));
  CHECK_THAT(error_of(kGood, {"seed.x=1"}), Catch::Contains("seed is not a section"));
}

TEST_CASE("a missing config file is a usage error naming it") {
  CHECK_THROWS_WITH(config::load_config("/nonexistent/x.yaml"), Catch::Contains("/nonexistent/x.yaml"));
}

TEST_CASE("the regularizer section is validated") {
  const auto c = config::parse_config("train:\n  epochs: 10\nregularizer:\n  name: grad_l1\n  lambda_w: 0.05\n  lambda_a: 0.01\n"
                                      "  start_epoch: 5\n  method: finite_difference\n",
                                      "configs/x.yaml");
  CHECK(c.regularizer.penalty() == regularize::Penalty::kGradL1);
  CHECK(c.regularizer.lambda_w() == 0.05);
  CHECK(c.regularizer.start_epoch() == 5);
  CHECK(c.regularizer.method() == regularize::GradientMethod::kFiniteDifference);
  CHECK(config::to_yaml(config::parse_config(config::to_yaml(c), "again")) == config::to_yaml(c));
  const auto k = config::parse_config("regularizer:\n  name: kurtosis\n  lambda: 1.0\n", "x");
  CHECK(config::to_yaml(config::parse_config(config::to_yaml(k), "again")) == config::to_yaml(k));

  CHECK_THAT(error_of("regularizer:\n  name: grad_l3\n"), Catch::StartsWith("configs/x.yaml:2: regularizer.name: expected one of none, grad_l1"));
  CHECK_THAT(error_of("regularizer:\n  name: grad_l1\n  lambda_w: -1\n"),
             Equals("configs/x.yaml:3: regularizer.lambda_w: must be >= 0, got -1"));
  CHECK_THAT(error_of("train:\n  epochs: 10\nregularizer:\n  name: grad_l1\n  start_epoch: 10\n"),
             Catch::StartsWith("configs/x.yaml:5: regularizer.start_epoch: must be in 0..epochs-1 (9), got 10"));
  CHECK_THAT(error_of("regularizer:\n  name: dq_lipschitz\n  method: finite_difference\n"),
             Catch::StartsWith("configs/x.yaml:3: regularizer.method: finite_difference and double_backprop apply to gradient-norm"));
  CHECK_THAT(error_of("regularizer:\n  name: kurtosis\n  lambda_w: 1\n"),
             Catch::StartsWith("configs/x.yaml:3: regularizer.lambda_w: is not used by regularizer kurtosis"));
  CHECK_THAT(error_of("regularizer:\n  name: grad_l1\n  fd_epsilon: 0\n"),
             Catch::StartsWith("configs/x.yaml:3: regularizer.fd_epsilon: must be > 0"));
}

TEST_CASE("the amortized penalty options are validated and written back") {
  const auto c = config::parse_config("data:\n  batch_size: 64\nregularizer:\n  name: grad_l1\n  lambda_w: 0.1\n  every: 4\n"
                                      "  subbatch: 16\n",
                                      "x");
  CHECK(c.regularizer.every() == 4);
  CHECK(c.regularizer.subbatch() == 16);
  CHECK(config::to_yaml(config::parse_config(config::to_yaml(c), "again")) == config::to_yaml(c));
  const auto defaults = config::parse_config("regularizer:\n  name: grad_l2\n", "x");
  CHECK(defaults.regularizer.every() == 1);
  CHECK(defaults.regularizer.subbatch() == 0);
  CHECK_THAT(error_of("regularizer:\n  name: grad_l1\n  every: 0\n"),
             Equals("configs/x.yaml:3: regularizer.every: must be 1..1000 (1: every step), got 0"));
  CHECK_THAT(error_of("data:\n  batch_size: 64\nregularizer:\n  name: grad_l1\n  subbatch: 64\n"),
             Equals("configs/x.yaml:5: regularizer.subbatch: must be 0 (the whole batch) or 2..data.batch_size-1 (63), got 64"));
  CHECK_THAT(error_of("regularizer:\n  name: grad_l1\n  subbatch: 1\n"), Catch::StartsWith("configs/x.yaml:3: regularizer.subbatch: must be 0"));
  CHECK_THAT(error_of("regularizer:\n  name: grad_l1\n  method: finite_difference\n  subbatch: 16\n"),
             Catch::StartsWith("configs/x.yaml:4: regularizer.subbatch: applies to method double_backprop"));
  CHECK_THAT(error_of("regularizer:\n  name: kurtosis\n  every: 2\n"),
             Catch::StartsWith("configs/x.yaml:3: regularizer.every: is not used by regularizer kurtosis"));
  CHECK_THAT(error_of("regularizer:\n  name: grad_l1\n  lambda_w: 1\n  subbatch: 16\nquant_aware:\n  act_bits: 4\n"),
             Catch::Contains("quant_aware.weight_bits: quantization-aware training cannot be combined with regularizer.subbatch"));
}

TEST_CASE("the quant section is validated") {
  const auto c = config::parse_config("quant:\n  weight_granularity: per_channel\n  act_estimator: mse\n  first_last: int8\n", "x");
  CHECK(c.quant.weight_granularity() == quant::Granularity::kPerChannel);
  CHECK(c.quant.act_estimator() == quant::Estimator::kMse);
  CHECK(c.quant.first_last() == quant::FirstLast::kInt8);
  CHECK(c.quant.calibration_samples() == 1024);
  CHECK(config::to_yaml(config::parse_config(config::to_yaml(c), "again")) == config::to_yaml(c));
  CHECK_THAT(error_of("quant:\n  weight_estimator: kmeans\n"),
             Catch::StartsWith("configs/x.yaml:2: quant.weight_estimator: expected one of minmax, percentile, mse"));
  CHECK_THAT(error_of("quant:\n  calibration_samples: 0\n"), Catch::StartsWith("configs/x.yaml:2: quant.calibration_samples"));
  CHECK_THAT(error_of("quant:\n  percentile: 20\n"), Catch::StartsWith("configs/x.yaml:2: quant.percentile: must be in (50, 100]"));
}

TEST_CASE("the mixed_precision section is validated and written back", "[corpus]") {
  const std::string text =
      "mixed_precision:\n  criteria: [measured, first_order]\n  weight_bits: [8, 4, 3]\n  act_bits: [8, 6]\n"
      "  axis: bops\n  budgets: [32, 18.5]\n  score_images: 500\n  hutchinson_samples: 8\n";
  testing::save_corpus_sample("config", text);
  const auto c = config::parse_config(text, "x");
  const auto& m = c.mixed_precision;
  CHECK((m.criteria() == std::vector<mixed_precision::Criterion>{mixed_precision::Criterion::kMeasured,
                                                                 mixed_precision::Criterion::kFirstOrder}));
  CHECK(m.weight_bits() == std::vector<int>{8, 4, 3});
  CHECK(m.act_bits() == std::vector<int>{8, 6});
  CHECK((m.axis() == mixed_precision::BudgetAxis::kBitOps));
  CHECK(m.budgets() == std::vector<double>{32, 18.5});
  CHECK(m.score_images() == 500);
  CHECK(m.hutchinson_samples() == 8);
  CHECK(config::parse_config(config::to_yaml(c), "again").mixed_precision == m);
  CHECK(config::parse_config("{}", "x").mixed_precision.criteria().size() == 3);
  CHECK_THAT(error_of("mixed_precision:\n  criteria: [fisher]\n"),
             Catch::StartsWith("configs/x.yaml:2: mixed_precision.criteria: unknown criterion \"fisher\"; expected "
                               "first_order, hessian_trace, measured"));
  CHECK_THAT(error_of("mixed_precision:\n  criteria: [measured, measured]\n"), Catch::Contains("lists measured twice"));
  CHECK_THAT(error_of("mixed_precision:\n  weight_bits: [8, 1]\n"),
             Catch::StartsWith("configs/x.yaml:2: mixed_precision.weight_bits: bit-widths must be 2..16 or 32 (float), got 1"));
  CHECK_THAT(error_of("mixed_precision:\n  act_bits: []\n"), Catch::Contains("needs at least one bit-width"));
  CHECK_THAT(error_of("mixed_precision:\n  budgets: [4, -1]\n"), Catch::Contains("average bits must be in (0, 1024], got -1"));
  CHECK_THAT(error_of("mixed_precision:\n  budgets: [4, x]\n"), Catch::Contains("expected a list of numbers"));
  CHECK_THAT(error_of("mixed_precision:\n  axis: energy\n"), Catch::Contains("mixed_precision.axis: expected one of size, bops"));
  CHECK_THAT(error_of("mixed_precision:\n  score_images: 0\n"), Catch::Contains("must be positive"));
  CHECK_THAT(error_of("mixed_precision:\n  hutchinson_samples: 0\n"), Catch::Contains("must be 1..100000"));
  CHECK_THAT(error_of("mixed_precision:\n  solver: greedy\n"), Catch::Contains("mixed_precision.solver"));
}

TEST_CASE("train.stop_after and train.branch_from are validated and written back") {
  const auto c = config::parse_config("train:\n  epochs: 30\n  stop_after: 20\n  branch_from: runs/b/checkpoint.pt\n", "x");
  CHECK(c.train.stop_after == 20);
  CHECK(c.train.last_epoch() == 20);
  CHECK(c.train.branch_from == "runs/b/checkpoint.pt");
  CHECK(config::to_yaml(config::parse_config(config::to_yaml(c), "again")) == config::to_yaml(c));
  CHECK(config::parse_config("name: y\n", "y").train.last_epoch() == 1);
  CHECK_THAT(error_of("train:\n  epochs: 5\n  stop_after: 6\n"),
             Catch::StartsWith("configs/x.yaml:3: train.stop_after: must be in 0..epochs (5), got 6"));
  CHECK_THAT(error_of("train:\n  init_from: a.pt\n  branch_from: b.pt\n"),
             Catch::Contains("train.branch_from: continues a run's schedule and momentum; it cannot be combined with init_from"));
}

TEST_CASE("the quant_aware section is validated and combines with every penalty but finite differences") {
  const auto c = config::parse_config("quant_aware:\n  weight_bits: 4\n  act_bits: 32\n", "x");
  CHECK(c.quant_aware.enabled());
  CHECK(c.quant_aware.weight_bits == 4);
  CHECK_FALSE(config::parse_config("name: y\n", "y").quant_aware.enabled());
  CHECK(config::to_yaml(config::parse_config(config::to_yaml(c), "again")) == config::to_yaml(c));
  CHECK_THAT(error_of("quant_aware:\n  weight_bits: 1\n"),
             Catch::StartsWith("configs/x.yaml:2: quant_aware.weight_bits: must be 2..16, or 32 for float, got 1"));
  CHECK(config::parse_config("regularizer:\n  name: grad_l1\n  lambda_w: 1\nquant_aware:\n  act_bits: 4\n", "x")
            .quant_aware.enabled());
  CHECK_THAT(error_of("regularizer:\n  name: grad_l1\n  lambda_w: 1\n  method: finite_difference\nquant_aware:\n  act_bits: 4\n"),
             Catch::Contains("quant_aware.weight_bits: quantization-aware training cannot be combined with "
                             "regularizer.method finite_difference"));
}

TEST_CASE("a key given twice, or a second YAML document, is an error naming both places") {
  CHECK_THAT(error_of("train:\n  lr: 0.1\n  epochs: 2\n  lr: 0.2\n"),
             Catch::StartsWith("configs/x.yaml:4: train.lr: given twice (first at line 2)"));
  CHECK_THAT(error_of("seed: 1\ndata:\n  batch_size: 8\nseed: 2\n"),
             Catch::StartsWith("configs/x.yaml:4: seed: given twice (first at line 1)"));
  CHECK_THAT(error_of("train: {epochs: 2}\ntrain: {epochs: 3}\n"), Catch::Contains("train: given twice"));
  CHECK_THAT(error_of("seed: 1\n---\nseed: 2\n"), Catch::Contains("a second YAML document"));
}

TEST_CASE("an alias inside itself, endless nesting and keys that are not names are config errors, not crashes") {
  // Each of these crashed (stack overflow) or escaped as yaml-cpp's "bad conversion".
  CHECK_THAT(error_of("a: &x [*x]\n"), Catch::Contains("nested deeper than 32 levels"));
  CHECK_THAT(error_of("train: &x {lr: *x}\n"), Catch::Contains("nested deeper than 32 levels"));
  CHECK_THAT(error_of("train: " + std::string(200, '[') + std::string(200, ']') + "\n"), Catch::Contains("nested deeper"));
  CHECK_THAT(error_of("? [a, b]\n: 1\n"), Catch::StartsWith("configs/x.yaml:1: a key must be a plain name, got a list"));
  CHECK_THAT(error_of("train:\n  {a: 1}: 2\n"), Catch::StartsWith("configs/x.yaml:2: train: a key must be a plain name"));
  CHECK_THROWS_WITH(config::parse_config("seed: 1\n", "x.yaml", {"train.lr=&x [*x]"}), Catch::Contains("nested deeper"));
  // Text that would not survive config.yaml written back (found by fuzz/fuzz_config.cpp).
  CHECK_THAT(error_of("name: \xba\r\n"), Catch::Contains("name: expected printable text"));
  CHECK_THAT(error_of("name: \"a\\tb\"\n"), Catch::Contains("name: expected printable text"));
  CHECK(error_of("name: \xc3\xa9t\xc3\xa9\n") == "no error");  // UTF-8 is fine
  // A lone comma made yaml-cpp 0.7's LoadAll loop for ever (found by fuzz/fuzz_config.cpp).
  CHECK_THAT(error_of(","), Catch::StartsWith("configs/x.yaml:1: invalid YAML"));
  CHECK(error_of("# nothing but a comment\n---\n") == "no error");  // an empty config is the defaults
}

TEST_CASE("numbers beyond float range and model names that overflow are config errors naming the key") {
  CHECK_THAT(error_of("train:\n  weight_decay: 1.0e300\n"),
             Catch::StartsWith("configs/x.yaml:2: train.weight_decay: expected a number within float range"));
  CHECK_THAT(error_of("model:\n  name: resnet99999999999999999999992\n"),
             Catch::StartsWith("configs/x.yaml:2: model.name: unknown model \"resnet99999999999999999999992\""));
  CHECK_THAT(error_of("model:\n  name: resnet1208\n"), Catch::Contains("unknown model"));
  CHECK_THAT(error_of("model:\n  width: 100000\n"), Catch::StartsWith("configs/x.yaml:2: model.width: must be in 0..4096"));
}

TEST_CASE("quant settings write, read back from a result header, compare and describe themselves") {
  const auto c = config::parse_config("quant:\n  weight_granularity: per_channel\n  act_estimator: percentile\n  first_last: float\n"
                                      "  bn_fold: false\n  calibration_samples: 77\n",
                                      "x");
  const auto again = config::QuantSettings::from_json(c.quant.to_json(), "h.json");
  CHECK(again == c.quant);
  CHECK(again.calibration_samples() == 77);
  CHECK(again != config::QuantSettings());
  auto other = c.quant;
  other.calibration_samples(78);  // the setting the stale-sweep bug missed
  CHECK(other != c.quant);
  CHECK(c.quant.describe() ==
        "weights per_channel symmetric minmax, activations asymmetric percentile, first/last layer float, BN folded no, "
        "recipe round-to-nearest");
  auto header = c.quant.to_json();
  header["first_last"] = "sometimes";
  CHECK_THROWS_WITH(config::QuantSettings::from_json(header, "h.json"),
                    "h.json: header.first_last: not a known name: \"sometimes\"");
  header.erase("first_last");
  CHECK_THROWS_WITH(config::QuantSettings::from_json(header, "h.json"),
                    Catch::StartsWith("h.json: the quant settings in its header are incomplete or mistyped"));
}

TEST_CASE("PTQ recipe settings parse, validate, round-trip through a result header and name the recipe") {
  const auto c = config::parse_config(
      "quant:\n  equalize: true\n  bias_correction: analytical\n  rounding: adaround\n  adaround:\n    iterations: 500\n"
      "    lambda: 0.02\n",
      "x");
  CHECK(c.quant.equalize());
  CHECK(c.quant.bias_correction() == quant::BiasCorrection::kAnalytical);
  CHECK(c.quant.rounding() == quant::Rounding::kAdaRound);
  CHECK(c.quant.adaround().iterations() == 500);
  CHECK(c.quant.adaround().batch_size() == 32);
  CHECK(c.quant.weights_use_calibration());
  CHECK(c.quant.recipe() == "CLE + BC analytical + AdaRound 500 it, batch 32, lambda 0.02, lr 0.001");
  CHECK(config::QuantSettings::from_json(c.quant.to_json(), "h.json") == c.quant);
  CHECK(config::parse_config(config::to_yaml(c), "again").quant == c.quant);
  // A round-to-nearest header carries no recipe keys, so results written before recipes compare equal.
  const config::QuantSettings plain;
  CHECK_FALSE(plain.to_json().contains("rounding"));
  CHECK(config::QuantSettings::from_json(plain.to_json(), "old.json") == plain);
  auto only_bc = plain;
  only_bc.bias_correction(quant::BiasCorrection::kEmpirical);
  CHECK(only_bc != plain);
  CHECK(only_bc.recipe() == "BC empirical");

  CHECK_THAT(error_of("quant:\n  rounding: stochastic\n"),
             Catch::StartsWith("configs/x.yaml:2: quant.rounding: expected one of nearest, adaround"));
  CHECK_THAT(error_of("quant:\n  bias_correction: sometimes\n"),
             Catch::StartsWith("configs/x.yaml:2: quant.bias_correction: expected one of none, empirical, analytical"));
  CHECK_THAT(error_of("quant:\n  rounding: adaround\n  adaround:\n    iterations: -5\n"),
             Catch::StartsWith("configs/x.yaml:4: quant.adaround.iterations: must be 1..10000000, got -5"));
  CHECK_THAT(error_of("quant:\n  rounding: adaround\n  adaround:\n    learning_rate: 0\n"),
             Catch::StartsWith("configs/x.yaml:4: quant.adaround.learning_rate"));
  CHECK_THAT(error_of("quant:\n  rounding: adaround\n  adaround:\n    beta: 3\n"), Catch::Contains("quant.adaround.beta"));
  CHECK_THAT(error_of("quant:\n  adaround:\n    iterations: 5\n"),
             Catch::StartsWith("configs/x.yaml:3: quant.adaround: applies only with rounding: adaround"));
  CHECK_THAT(error_of("quant:\n  bn_fold: false\n  equalize: true\n"),
             Catch::StartsWith("configs/x.yaml:3: quant.equalize: cross-layer equalization needs bn_fold: true"));
  CHECK_THAT(error_of("quant:\n  bn_fold: false\n  bias_correction: analytical\n"),
             Catch::Contains("quant.bias_correction: analytical bias correction reads the folded batch norms"));
}

TEST_CASE("regularizer settings compare by the keys their penalty reads and describe themselves") {
  auto parse = [](const std::string& text) { return config::parse_config(text, "x").regularizer; };
  const auto l1 = parse("regularizer:\n  name: grad_l1\n  lambda_w: 3.0e-5\n  lambda_a: 1.0e-4\n  every: 4\n");
  CHECK(l1.describe() == "grad_l1 (lambda_w 3e-05, lambda_a 0.0001, double_backprop, every 4)");
  CHECK(parse("regularizer:\n  name: kurtosis\n  lambda: 0.01\n").describe() == "kurtosis (lambda 0.01)");
  CHECK(parse("name: y\n").describe() == "none");
  CHECK(l1 == parse("regularizer:\n  name: grad_l1\n  lambda_w: 3.0e-5\n  lambda_a: 1.0e-4\n  every: 4\n"));
  CHECK(l1 != parse("regularizer:\n  name: grad_l1\n  lambda_w: 3.0e-5\n  lambda_a: 1.0e-4\n  every: 2\n"));
  // A key the penalty does not read does not make two settings differ.
  auto none = parse("name: y\n");
  auto none_with_lambda = none;
  none_with_lambda.lambda_w(1.0);
  CHECK(none == none_with_lambda);
}

TEST_CASE("every config shipped in configs/ parses and validates, and the fast grad_l1 preset it documents does too") {
  namespace fs = std::filesystem;
  size_t files = 0;
  for (const auto& entry : fs::directory_iterator(fs::path(QROBUST_SOURCE_DIR) / "configs")) {
    if (entry.path().extension() != ".yaml") continue;
    INFO(entry.path().string());
    CHECK_NOTHROW(config::load_config(entry.path().string()));
    ++files;
  }
  CHECK(files >= 14);
  // The preset line commented in the fine-tuning config, switched on.
  const auto finetune = std::string(QROBUST_SOURCE_DIR) + "/configs/cifar10_resnet20_gradl1_finetune.yaml";
  const auto text = util::read_file(finetune);
  REQUIRE(text.find("  # subbatch: 16\n") != std::string::npos);
  const auto fast = config::load_config(finetune, {"regularizer.subbatch=16"});
  CHECK(fast.regularizer.subbatch() == 16);
  CHECK(fast.regularizer.method() == regularize::GradientMethod::kDoubleBackprop);
}
