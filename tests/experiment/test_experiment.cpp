#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <regex>
#include <sstream>

#include "data/datasets.h"
#include "experiment/experiment.h"
#include "io/checkpoint.h"
#include "models/registry.h"
#include "report/sweep_files.h"
#include "test_support.h"
#include "util/atomic_file.h"
#include "util/provenance.h"

using namespace qrobust;
namespace fs = std::filesystem;

namespace {

// A base config file for the tiny CIFAR files in `data`, with a validation split.
std::string write_base(const testing::TempDir& dir, const std::string& data) {
  auto config = testing::tiny_config(data, 1);
  config.data.val_size = 32;
  config.quant.calibration_samples(32);
  util::write_file_atomically(dir.file("base.yaml"), config::to_yaml(config));
  return dir.file("base.yaml");
}

std::string experiment_text(const std::string& base, const std::string& seeds = "[1, 2]",
                            const std::string& calibration_samples = "32") {
  return "name: tiny_exp\n"
         "base: " + base + "\n"
         "seeds: " + seeds + "\n"
         "baseline: true\n"
         "finetune: {train.epochs: 1, train.lr: 0.01}\n"
         "variants:\n"
         "  none: {}\n"
         "  ste@4: {quant_aware.weight_bits: 4, quant_aware.act_bits: 4}\n"
         "sweep:\n"
         "  weight_bits: [8, 4]\n"
         "  act_bits: [8, 4]\n"
         "  splits: [val, test]\n"
         "  calibration_draws: 2\n"
         "  quantizers:\n"
         "    per_tensor: {quant.calibration_samples: " + calibration_samples + "}\n"
         "    per_channel: {quant.weight_granularity: per_channel}\n"
         "sensitivity: {bits: 4, variants: [none], quantizers: [per_tensor]}\n";
}

// An experiment of one variant, `none`, swept at 8/8 only, on a one-epoch base over the tiny
// CIFAR files in `data`; returns the experiment file.
std::string write_none_experiment(const testing::TempDir& work, const std::string& data, const std::string& seeds) {
  auto config = testing::tiny_config(data, 1);
  config.quant.calibration_samples(16);
  util::write_file_atomically(work.file("base.yaml"), config::to_yaml(config));
  util::write_file_atomically(work.file("exp.yaml"), "name: seeds\nbase: " + work.file("base.yaml") + "\nseeds: " + seeds +
                                                         "\nvariants: {none: {}}\nsweep: {weight_bits: [8], act_bits: [8]}\n");
  return work.file("exp.yaml");
}

double accuracy_of(const std::string& sweep_file, size_t row) {
  return nlohmann::json::parse(util::read_file(sweep_file))["rows"][row]["accuracy"].get<double>();
}

}  // namespace

TEST_CASE("an experiment trains a baseline per seed, fine-tunes, sweeps and tabulates each variant over seeds") {
  testing::TempDir data, work;
  testing::write_cifar10(data.path(), 48);
  const auto base = write_base(work, data.path());
  util::write_file_atomically(work.file("exp.yaml"), experiment_text(base) + "also_compare_with: [ste@4]\nreference_quantizer: per_channel\n");
  const auto experiment = experiment::load_experiment(work.file("exp.yaml"), work.file("results"));
  REQUIRE(experiment.runs.size() == 6);  // 2 seeds x (baseline + 2 variants)
  CHECK(experiment.runs[0].name == "baseline");
  CHECK(experiment.runs[0].seed == 1);
  CHECK(experiment.runs[3].seed == 2);
  CHECK(experiment.runs[3].config.seed == 2);
  CHECK(experiment.runs[2].config.quant_aware.weight_bits == 4);
  CHECK(experiment.runs[2].config.train.init_from == work.file("results") + "/tiny_exp/seed_1/baseline/checkpoint.pt");
  CHECK(experiment.runs[5].config.train.init_from == work.file("results") + "/tiny_exp/seed_2/baseline/checkpoint.pt");
  CHECK(experiment.runs[1].config.train.lr == 0.01);
  CHECK(experiment.runs[0].config.train.lr == 0.05);
  const auto plan = experiment::describe_plan(experiment);
  CHECK_THAT(plan, Catch::Contains("seed 2 ste@4: train 1 epoch from"));
  CHECK_THAT(plan, Catch::Contains("2 calibration draws"));

  // A stop request before the first step: nothing complete, and the next call resumes.
  std::atomic<bool> stop{true};
  experiment::RunOptions stopped;
  stopped.stop = &stop;
  CHECK_THROWS_AS(experiment::run_experiment(experiment, stopped), train::TrainingInterrupted);
  CHECK_FALSE(fs::exists(work.file("results/tiny_exp/table.json")));

  const auto table = experiment::run_experiment(experiment, {});
  CHECK(table["columns"] == nlohmann::json({"fp32", "w8a8", "w4a4"}));
  REQUIRE(table["tables"].size() == 4);  // 2 quantizers x 2 splits
  const auto& first = table["tables"][0];
  CHECK(first["quantizer"] == "per_tensor");
  CHECK(first["split"] == "val");
  REQUIRE(first["rows"].size() == 3);
  // A cell is the mean and std over the seeds' sweep files (each already the mean over draws).
  const std::string dir = work.file("results/tiny_exp");
  const double seed1 = accuracy_of(dir + "/seed_1/ste@4/sweep_per_tensor_val.json", 2);
  const double seed2 = accuracy_of(dir + "/seed_2/ste@4/sweep_per_tensor_val.json", 2);
  const auto& cell = first["rows"][2]["accuracy"]["w4a4"];
  CHECK(cell["n"] == 2);
  CHECK(cell["mean"].get<double>() == Approx((seed1 + seed2) / 2));
  CHECK(cell["std"].get<double>() == Approx(std::abs(seed1 - seed2) / std::sqrt(2.0)).margin(1e-9));
  CHECK(cell["values"] == nlohmann::json({seed1, seed2}));
  // The comparison pairs ste@4 with none seed by seed.
  REQUIRE(first["comparison"].size() == 2);
  const auto& difference = first["comparison"][1]["difference"]["w4a4"];
  const double none1 = accuracy_of(dir + "/seed_1/none/sweep_per_tensor_val.json", 2);
  const double none2 = accuracy_of(dir + "/seed_2/none/sweep_per_tensor_val.json", 2);
  CHECK(difference["mean"].get<double>() == Approx(((seed1 - none1) + (seed2 - none2)) / 2));
  CHECK(difference["n"] == 2);
  // The same table against ste@4: none's difference is the negative of ste@4's from none.
  const auto versus = nlohmann::json::parse(util::read_file(dir + "/table_vs_ste@4.json"));
  CHECK(versus["reference"] == "ste@4");
  CHECK(versus["tables"][0]["rows"] == first["rows"]);
  const auto& against_ste = versus["tables"][0]["comparison"];
  REQUIRE(against_ste.size() == 2);  // baseline and none
  CHECK(against_ste[1]["variant"] == "none");
  CHECK(against_ste[1]["difference"]["w4a4"]["mean"].get<double>() == Approx(-difference["mean"].get<double>()));
  CHECK_THAT(util::read_file(dir + "/table_vs_ste@4.md"), Catch::Contains("Difference from ste@4"));
  // Turned around: per variant and split, per_tensor against the reference setting per_channel, by seed.
  const auto by_quantizer = nlohmann::json::parse(util::read_file(dir + "/table_by_quantizer.json"));
  CHECK(by_quantizer["reference"] == "per_channel");
  const auto ste_val = std::find_if(by_quantizer["tables"].begin(), by_quantizer["tables"].end(),
                                    [](const auto& t) { return t["variant"] == "ste@4" && t["split"] == "val"; });
  REQUIRE(ste_val != by_quantizer["tables"].end());
  REQUIRE((*ste_val)["comparison"].size() == 1);
  CHECK((*ste_val)["comparison"][0]["quantizer"] == "per_tensor");
  const double channel1 = accuracy_of(dir + "/seed_1/ste@4/sweep_per_channel_val.json", 2);
  const double channel2 = accuracy_of(dir + "/seed_2/ste@4/sweep_per_channel_val.json", 2);
  CHECK((*ste_val)["comparison"][0]["difference"]["w4a4"]["mean"].get<double>() ==
        Approx(((seed1 - channel1) + (seed2 - channel2)) / 2));
  const auto sweep = nlohmann::json::parse(util::read_file(dir + "/seed_1/ste@4/sweep_per_tensor_val.json"));
  CHECK(sweep["header"]["split"] == "val");
  CHECK(sweep["header"]["samples"] == 32);
  CHECK(sweep["header"]["calibration_draws"] == 2);
  CHECK(sweep["rows"][2]["accuracy_draws"].size() == 2);
  CHECK(nlohmann::json::parse(util::read_file(dir + "/seed_2/ste@4/sweep_per_channel_test.json"))["header"]["weight_granularity"] ==
        "per_channel");
  CHECK_THAT(util::read_file(dir + "/table.md"), Catch::Contains("Difference from none"));
  CHECK(io::read_checkpoint_info(dir + "/seed_2/none/checkpoint.pt").epoch == 1);
  // Sensitivity where asked for: none, per_tensor, both seeds; and the experiment's summary of it.
  CHECK(fs::exists(dir + "/seed_1/none/sensitivity_per_tensor_test.json"));
  CHECK(fs::exists(dir + "/seed_2/none/sensitivity_per_tensor_test.md"));
  CHECK_FALSE(fs::exists(dir + "/seed_1/ste@4/sensitivity_per_tensor_test.json"));
  CHECK_FALSE(fs::exists(dir + "/seed_1/none/sensitivity_per_channel_test.json"));
  CHECK_THAT(util::read_file(dir + "/sensitivity.md"), Catch::Contains("| W conv1 |"));
  // The gradient-norm figure's data: every variant, every layer.
  const auto norms = nlohmann::json::parse(util::read_file(dir + "/gradient_norms.json"));
  CHECK(norms["weight_l1"].size() == 8);  // resnet8: stem, 6 block convs, classifier
  CHECK(norms["weight_l1"][0]["none"]["n"] == 2);

  // Everything complete: a re-run trains and sweeps nothing.
  const auto checkpoint_time = fs::last_write_time(dir + "/seed_1/none/checkpoint.pt");
  const auto sweep_time = fs::last_write_time(dir + "/seed_1/none/sweep_per_tensor_test.json");
  const auto sensitivity_time = fs::last_write_time(dir + "/seed_1/none/sensitivity_per_tensor_test.json");
  CHECK(experiment::run_experiment(experiment, {}) == table);
  CHECK(fs::last_write_time(dir + "/seed_1/none/checkpoint.pt") == checkpoint_time);
  CHECK(fs::last_write_time(dir + "/seed_1/none/sweep_per_tensor_test.json") == sweep_time);
  CHECK(fs::last_write_time(dir + "/seed_1/none/sensitivity_per_tensor_test.json") == sensitivity_time);
  CHECK_THAT(experiment::describe_plan(experiment), Catch::Contains("seed 1 none: trained; 0 sweeps and 0 sensitivity"));
  CHECK_THROWS_WITH(experiment::run_experiment(experiment, stopped),
                    Catch::StartsWith("interrupted before sweeping seed 1 baseline; run `qrobust run --config"));
  // A lost analysis is the only one planned and redone, with the same result.
  const auto sensitivity_text = util::read_file(dir + "/seed_1/none/sensitivity_per_tensor_test.json");
  report::remove_result_files(dir + "/seed_1/none/sensitivity_per_tensor_test.json");
  CHECK_FALSE(fs::exists(dir + "/seed_1/none/sensitivity_per_tensor_test.md"));
  CHECK_THAT(experiment::describe_plan(experiment), Catch::Contains("seed 1 none: trained; 0 sweeps and 1 sensitivity"));
  CHECK_THAT(experiment::describe_plan(experiment), Catch::Contains("seed 2 none: trained; 0 sweeps and 0 sensitivity"));
  CHECK(experiment::run_experiment(experiment, {}) == table);
  CHECK(nlohmann::json::parse(util::read_file(dir + "/seed_1/none/sensitivity_per_tensor_test.json"))["rows"] ==
        nlohmann::json::parse(sensitivity_text)["rows"]);
  CHECK(fs::last_write_time(dir + "/seed_1/none/sweep_per_tensor_test.json") == sweep_time);

  // A changed calibration sample size is a different request: those sweeps run again.
  util::write_file_atomically(work.file("exp.yaml"), experiment_text(base, "[1, 2]", "16"));
  const auto changed = experiment::load_experiment(work.file("exp.yaml"), work.file("results"));
  CHECK_THAT(experiment::describe_plan(changed), Catch::Contains("seed 1 none: trained; 2 sweeps and 1 sensitivity"));
}

TEST_CASE("seeds resume one by one: adding a seed trains only the new one") {
  testing::TempDir data, work;
  testing::write_cifar10(data.path(), 32);
  experiment::run_experiment(experiment::load_experiment(write_none_experiment(work, data.path(), "[3]"), work.file("results")), {});
  const std::string first = work.file("results/seeds/seed_3/none/checkpoint.pt");
  const auto first_time = fs::last_write_time(first);

  const auto both = experiment::load_experiment(write_none_experiment(work, data.path(), "[3, 4]"), work.file("results"));
  const auto plan = experiment::describe_plan(both);
  CHECK_THAT(plan, Catch::Contains("seed 3 none: trained; 0 sweeps"));
  CHECK_THAT(plan, Catch::Contains("seed 4 none: train 1 epoch;"));
  const auto table = experiment::run_experiment(both, {});
  CHECK(fs::last_write_time(first) == first_time);
  CHECK(fs::exists(work.file("results/seeds/seed_4/none/checkpoint.pt")));
  CHECK(table["tables"][0]["rows"][0]["accuracy"]["w8a8"]["n"] == 2);
  CHECK(table["tables"][0]["comparison"].empty());  // one variant: nothing to compare with
}

TEST_CASE("run with --seeds trains only the seeds it names, the tables take the others where they are complete") {
  testing::TempDir data, work;
  testing::write_cifar10(data.path(), 32);
  auto e = experiment::load_experiment(write_none_experiment(work, data.path(), "[3, 4]"), work.file("results"));
  CHECK_THROWS_WITH(experiment::select_seeds(e, {5}), Catch::Contains("--seeds: " + work.file("exp.yaml") +
                                                                      " has no seed 5 (its seeds: 3, 4)"));
  CHECK_THROWS_WITH(experiment::select_seeds(e, {4, 4}), Catch::Contains("--seeds: lists seed 4 twice"));
  const std::string dir = work.file("results/seeds");
  auto samples = [](const nlohmann::json& table) { return table["tables"][0]["rows"][0]["accuracy"]["w8a8"]["n"]; };

  experiment::select_seeds(e, {4});
  auto plan = experiment::describe_plan(e);
  CHECK_THAT(plan, Catch::Contains("seed 3 none: not selected (--seeds); its seed is not complete: left out of the tables"));
  CHECK_THAT(plan, Catch::Contains("seed 4 none: train 1 epoch;"));
  CHECK(samples(experiment::run_experiment(e, {})) == 1);
  CHECK_FALSE(fs::exists(dir + "/seed_3/none/metrics.json"));
  CHECK(fs::exists(dir + "/seed_4/none/checkpoint.pt"));

  experiment::select_seeds(e, {3});
  plan = experiment::describe_plan(e);
  CHECK_THAT(plan, Catch::Contains("seed 4 none: not selected (--seeds); its seed is complete: in the tables"));
  const auto seed_4_sweep = fs::last_write_time(dir + "/seed_4/none/sweep_default_test.json");
  CHECK(samples(experiment::run_experiment(e, {})) == 2);
  CHECK(fs::last_write_time(dir + "/seed_4/none/sweep_default_test.json") == seed_4_sweep);
}

TEST_CASE("experiment files with mistakes are one-line config errors that name the file and the part") {
  testing::TempDir work;
  const auto base = write_base(work, work.path());
  auto error_for = [&](const std::string& text) {
    util::write_file_atomically(work.file("bad.yaml"), text);
    try {
      experiment::load_experiment(work.file("bad.yaml"), work.file("results"));
    } catch (const config::ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  const std::string head = "base: " + base + "\n";
  CHECK_THAT(error_for(head + "variants: {none: {}}\ncolour: red\n"), Catch::Contains("bad.yaml:3: colour: unknown key"));
  CHECK_THAT(error_for("variants: {none: {}}\n"), Catch::Contains("base: is required"));
  CHECK_THAT(error_for(head), Catch::Contains("variants: is required"));
  CHECK_THAT(error_for(head + "variants: {x: {regularizer.lambda_w: -1}}\n"),
             Catch::Contains("variant \"x\"") && Catch::Contains("regularizer.lambda_w"));
  CHECK_THAT(error_for(head + "variants: {x: {}}\nsweep: {quantizers: {q: {train.lr: 1}}}\n"),
             Catch::Contains("sweep.quantizers.q: may only set quant.* keys, got train.lr"));
  CHECK_THAT(error_for(head + "variants: {x: {}}\nsweep: {splits: [train]}\n"), Catch::Contains("expected val or test"));
  CHECK_THAT(error_for(head + "variants: {a/b: {}}\n"), Catch::Contains("variant name \"a/b\""));
  CHECK_THAT(error_for(head + "variants: {x: {}}\nfinetune: {train.epochs: 1}\n"), Catch::Contains("set baseline: true"));
  CHECK_THAT(error_for(head + "variants: {x: {}}\nsweep: {weight_bits: [1]}\n"), Catch::Contains("sweep.weight_bits"));
  CHECK_THAT(error_for("base: " + work.file("missing.yaml") + "\nvariants: {x: {}}\n"), Catch::Contains("config file not found"));
  CHECK_THAT(error_for(head + "variants: {x: {}}\nseeds: [1, 1]\n"), Catch::Contains("seeds: lists seed 1 twice"));
  CHECK_THAT(error_for(head + "variants: {x: {}}\nreference: y\n"), Catch::Contains("reference: \"y\" is not one of the variants"));
  CHECK_THAT(error_for(head + "variants: {x: {}}\nreference_quantizer: q\n"),
             Catch::Contains("reference_quantizer: \"q\" is not one of sweep.quantizers"));
  CHECK_THAT(error_for(head + "variants: {x: {}}\nalso_compare_with: [y]\n"),
             Catch::Contains("also_compare_with: \"y\" is not one of the variants"));
  CHECK_THAT(error_for(head + "variants: {x: {}}\nsweep: {calibration_draws: 0}\n"),
             Catch::Contains("sweep.calibration_draws: must be 1..1000"));
  CHECK_THAT(error_for(head + "variants: {x: {}}\nsensitivity: {variants: [y]}\n"),
             Catch::Contains("sensitivity.variants: \"y\" is not one of the variants"));
  CHECK_THAT(error_for(head + "variants: {x: {}}\nsensitivity: {bits: 32}\n"), Catch::Contains("sensitivity.bits: must be 2..16"));
  CHECK_THAT(error_for(head + "variants: {x: {}, y: {threads: 2}}\n"),
             Catch::Contains("y sets threads to 2, x to 1; an experiment runs on one thread count"));
  CHECK_THAT(error_for(head + "variants: {x: {}}\nsensitivity: {split: train}\n"), Catch::Contains("sensitivity.split"));
  CHECK_THAT(error_for(head + "variants: {x: {}}\nmixed_precision: {searches: {s: {quant.bn_fold: false}}}\n"),
             Catch::Contains("mixed_precision.searches.s: may only set mixed_precision.* keys, got quant.bn_fold"));
  CHECK_THAT(error_for(head + "variants: {x: {}}\nmixed_precision: {variants: [y]}\n"),
             Catch::Contains("mixed_precision.variants: \"y\" is not one of the variants"));
  CHECK_THAT(error_for(head + "variants: {x: {data.val_size: 0}}\nmixed_precision: {}\n"),
             Catch::Contains("mixed precision scores on the val split, but x holds out no validation images"));
  CHECK_THAT(error_for(head + "variants: {x: {}}\nmixed_precision: {searches: {s: {mixed_precision.budgets: [0]}}}\n"),
             Catch::Contains("mixed-precision search \"s\"") && Catch::Contains("mixed_precision.budgets"));
}

TEST_CASE("an experiment runs its mixed-precision searches per run and tabulates them against uniform") {
  testing::TempDir data, work;
  testing::write_cifar10(data.path(), 32);
  auto config = testing::tiny_config(data.path(), 1);
  config.quant.calibration_samples(16);
  config.data.val_size = 16;
  util::write_file_atomically(work.file("base.yaml"), config::to_yaml(config));
  util::write_file_atomically(
      work.file("exp.yaml"),
      "name: mp\nbase: " + work.file("base.yaml") +
          "\nseeds: [1]\nvariants: {none: {}}\nsweep: {weight_bits: [8], act_bits: [8]}\n"
          "mixed_precision:\n  searches:\n    a8: {mixed_precision.criteria: [first_order], mixed_precision.weight_bits: [8, 4],"
          " mixed_precision.budgets: [6, 4], mixed_precision.score_images: 16}\n");
  auto experiment = experiment::load_experiment(work.file("exp.yaml"), work.file("results"));
  CHECK_THAT(experiment::describe_plan(experiment), Catch::Contains("1 sweeps and 1 mixed-precision searches to run"));
  experiment::run_experiment(experiment, {});
  const std::string dir = work.file("results/mp");
  const auto search = nlohmann::json::parse(util::read_file(dir + "/seed_1/none/mixed_precision_default_a8.json"));
  CHECK(search["plans"].size() == 2);
  CHECK(fs::exists(dir + "/seed_1/none/mixed_precision_default_a8_plans/first_order_4.json"));
  CHECK_THAT(util::read_file(dir + "/mixed_precision.md"), Catch::Contains("| first_order | 4 | none | 1 |"));
  CHECK_THAT(experiment::describe_plan(experiment), Catch::Contains("0 sweeps and 0 mixed-precision searches to run"));
  report::remove_result_files(dir + "/seed_1/none/mixed_precision_default_a8.json");
  CHECK_FALSE(fs::exists(dir + "/seed_1/none/mixed_precision_default_a8_plans"));
  CHECK_THAT(experiment::describe_plan(experiment), Catch::Contains("0 sweeps and 1 mixed-precision searches to run"));
}

TEST_CASE("every experiment file shipped in experiments/ loads: its variants' configs parse and validate") {
  // The files name their base configs relative to the checkout, as `qrobust run` is started there.
  struct RestoreDirectory {
    fs::path previous = fs::current_path();
    ~RestoreDirectory() { fs::current_path(previous); }
  } restore;
  fs::current_path(QROBUST_SOURCE_DIR);
  testing::TempDir results;
  size_t files = 0;
  for (const auto& entry : fs::directory_iterator("experiments")) {
    if (entry.path().extension() != ".yaml") continue;
    INFO(entry.path().string());
    CHECK_NOTHROW(experiment::load_experiment(entry.path().string(), results.path()));
    ++files;
  }
  CHECK(files >= 12);
}

TEST_CASE("branch_epoch: variants continue the baseline's schedule, committed results are reused without checkpoints") {
  testing::TempDir data, work;
  testing::write_cifar10(data.path(), 32);
  auto config = testing::tiny_config(data.path(), 3);
  config.quant.calibration_samples(16);
  util::write_file_atomically(work.file("base.yaml"), config::to_yaml(config));
  auto text = [&](const std::string& variants) {
    return "name: branch\nbase: " + work.file("base.yaml") + "\nbaseline: true\nbranch_epoch: 2\nvariants: {" + variants +
           "}\nsweep: {weight_bits: [8], act_bits: [8]}\n";
  };
  util::write_file_atomically(work.file("exp.yaml"), text("none: {}"));
  const auto experiment = experiment::load_experiment(work.file("exp.yaml"), work.file("results"));
  REQUIRE(experiment.runs.size() == 2);
  CHECK(experiment.runs[0].config.train.stop_after == 2);
  CHECK(experiment.runs[1].config.train.branch_from == work.file("results/branch/seed_7/baseline/checkpoint.pt"));
  CHECK(experiment.runs[1].first_epoch == 2);
  const auto plan = experiment::describe_plan(experiment);
  CHECK_THAT(plan, Catch::Contains("seed 7 baseline: train 2 epochs (1..2 of a 3-epoch schedule)"));
  CHECK_THAT(plan, Catch::Contains("seed 7 none: train 1 epoch (3..3) continuing"));
  const auto table = experiment::run_experiment(experiment, {});
  const std::string dir = work.file("results/branch/seed_7");
  CHECK(io::read_checkpoint_info(dir + "/baseline/checkpoint.pt").epoch == 2);
  CHECK(io::read_checkpoint_info(dir + "/none/checkpoint.pt").epoch == 3);
  // The trunk is a mid-schedule model: trained, not swept, not in the table.
  CHECK_FALSE(fs::exists(dir + "/baseline/sweep_default_test.json"));
  REQUIRE(table["tables"][0]["rows"].size() == 1);
  CHECK(table["tables"][0]["rows"][0]["variant"] == "none");
  const std::string trunk = util::read_file(dir + "/baseline/checkpoint.pt");

  // A fresh clone has the results but no checkpoints: nothing is trained again.
  fs::remove(dir + "/baseline/checkpoint.pt");
  fs::remove(dir + "/none/checkpoint.pt");
  CHECK_THAT(experiment::describe_plan(experiment), Catch::Contains("none: trained (results kept, checkpoint not here)"));
  const auto sweep_time = fs::last_write_time(dir + "/none/sweep_default_test.json");
  CHECK(experiment::run_experiment(experiment, {}) == table);
  CHECK(fs::last_write_time(dir + "/none/sweep_default_test.json") == sweep_time);

  // A new variant needs the baseline's checkpoint: the baseline is trained again, to the same weights.
  util::write_file_atomically(work.file("exp.yaml"),
                              text("none: {}, grad_l1: {regularizer.name: grad_l1, regularizer.lambda_w: 1.0e-4}"));
  const auto grown = experiment::load_experiment(work.file("exp.yaml"), work.file("results"));
  // The trunk was trained with this machine's numerics: it will come out the same, none is kept.
  const auto baseline_metrics = nlohmann::json::parse(util::read_file(dir + "/baseline/metrics.json"));
  REQUIRE(baseline_metrics.contains("numerics_fingerprint"));
  const auto same_plan = experiment::describe_plan(grown);
  CHECK_THAT(same_plan, Catch::Contains("baseline: train again (its checkpoint is needed), 2 epochs (this machine's "
                                        "numerics fingerprint is the old trunk's"));
  CHECK_THAT(same_plan, Catch::Contains("none: trained (results kept, checkpoint not here);"));
  CHECK_THAT(same_plan, !Catch::Contains("other bits"));
  // Trained elsewhere: none trains again too, and the total counts it.
  auto elsewhere = baseline_metrics;
  elsewhere["numerics_fingerprint"] = std::string(40, 'f');
  util::write_file_atomically(dir + "/baseline/metrics.json", elsewhere.dump());
  const auto other_plan = experiment::describe_plan(grown);
  CHECK_THAT(other_plan, Catch::Contains("fingerprint is not the old trunk's: it will have other bits"));
  CHECK_THAT(other_plan, Catch::Contains(" more: the trunk trained again here will have other bits)"));
  CHECK_THAT(other_plan, !Catch::Contains("if the trunks trained again have other bits"));
  // Trained before the fingerprint was recorded: both figures.
  auto unknown = baseline_metrics;
  unknown.erase("numerics_fingerprint");
  util::write_file_atomically(dir + "/baseline/metrics.json", unknown.dump());
  const auto grown_plan = experiment::describe_plan(grown);
  CHECK_THAT(grown_plan, Catch::Contains("baseline: train again (its checkpoint is needed), 2 epochs (the variants"));
  CHECK_THAT(grown_plan, Catch::Contains("none: trained (results kept, checkpoint not here) ("));
  CHECK_THAT(grown_plan, Catch::Contains(" more if the trunk trained again has other bits)"));
  CHECK_THAT(grown_plan, Catch::Contains(" if the trunks trained again have other bits (another machine)"));
  const auto grown_table = experiment::run_experiment(grown, {});
  CHECK(util::read_file(dir + "/baseline/checkpoint.pt") == trunk);
  CHECK(grown_table["tables"][0]["rows"][0] == table["tables"][0]["rows"][0]);  // none, reused
  CHECK(fs::exists(dir + "/grad_l1/checkpoint.pt"));
  CHECK_FALSE(fs::exists(dir + "/none/checkpoint.pt"));

  // A variant that grew from another trunk (the baseline trained again on another machine has
  // other bits) is trained again with its sweeps, so that the seed's variants share one trunk.
  auto none_metrics = nlohmann::json::parse(util::read_file(dir + "/none/metrics.json"));
  CHECK(none_metrics["trunk_sha1"] == util::file_sha1(dir + "/baseline/checkpoint.pt"));
  none_metrics["trunk_sha1"] = std::string(40, '0');
  util::write_file_atomically(dir + "/none/metrics.json", none_metrics.dump());
  CHECK_THAT(experiment::describe_plan(grown),
             Catch::Contains("none: train again (it grew from another trunk than the seed's baseline now), 1 epoch"));
  CHECK_THAT(experiment::describe_plan(grown), Catch::Contains("grad_l1: trained"));
  const auto grad_l1_sweep_time = fs::last_write_time(dir + "/grad_l1/sweep_default_test.json");
  // Stopped while it trains again, it keeps none of the old weights' results.
  std::atomic<bool> stop{true};
  experiment::RunOptions stopped;
  stopped.stop = &stop;
  CHECK_THROWS_AS(experiment::run_experiment(grown, stopped), train::TrainingInterrupted);
  CHECK_FALSE(fs::exists(dir + "/none/sweep_default_test.json"));
  CHECK_FALSE(fs::exists(dir + "/none/sweep_default_test.md"));
  CHECK_FALSE(fs::exists(dir + "/none/metrics.json"));
  CHECK_THAT(experiment::describe_plan(grown), Catch::Contains("none: resume after 0 epochs"));
  experiment::run_experiment(grown, {});
  CHECK(nlohmann::json::parse(util::read_file(dir + "/none/metrics.json"))["trunk_sha1"] ==
        util::file_sha1(dir + "/baseline/checkpoint.pt"));
  CHECK(fs::exists(dir + "/none/checkpoint.pt"));
  CHECK(fs::last_write_time(dir + "/none/sweep_default_test.json") != sweep_time);
  CHECK(fs::last_write_time(dir + "/grad_l1/sweep_default_test.json") == grad_l1_sweep_time);

  // Results from before trunk_sha1 count as grown from the baseline when finished after it.
  auto legacy = nlohmann::json::parse(util::read_file(dir + "/grad_l1/metrics.json"));
  const auto fingerprint = legacy.at("numerics_fingerprint");
  legacy.erase("trunk_sha1");
  legacy.erase("numerics_fingerprint");
  util::write_file_atomically(dir + "/grad_l1/metrics.json", legacy.dump());
  CHECK_THAT(experiment::describe_plan(grown), Catch::Contains("grad_l1: trained"));
  // ... and get the field while the trunk's checkpoint is here, without training again.
  const auto grad_l1_checkpoint = util::read_file(dir + "/grad_l1/checkpoint.pt");
  experiment::run_experiment(grown, {});
  const auto recorded = nlohmann::json::parse(util::read_file(dir + "/grad_l1/metrics.json"));
  CHECK(recorded["trunk_sha1"] == util::file_sha1(dir + "/baseline/checkpoint.pt"));
  CHECK(recorded["numerics_fingerprint"] == fingerprint);  // its checkpoint is here: trained on this machine
  CHECK(util::read_file(dir + "/grad_l1/checkpoint.pt") == grad_l1_checkpoint);
  legacy["provenance"]["time_utc"] = "2000-01-01T00:00:00Z";
  util::write_file_atomically(dir + "/grad_l1/metrics.json", legacy.dump());
  CHECK_THAT(experiment::describe_plan(grown), Catch::Contains("grad_l1: train again (it grew from another trunk"));
}

TEST_CASE("a run another experiment trained on this machine is copied: the weights, log and sweeps of its own training") {
  testing::TempDir data, work, apart;
  testing::write_cifar10(data.path(), 32);
  auto config = testing::tiny_config(data.path(), 3);
  config.quant.calibration_samples(16);
  util::write_file_atomically(work.file("base.yaml"), config::to_yaml(config));
  auto write = [&](const std::string& name, const std::string& variants, const std::string& base = "base.yaml") {
    util::write_file_atomically(work.file(name + ".yaml"),
                                "name: " + name + "\nbase: " + work.file(base) +
                                    "\nbaseline: true\nbranch_epoch: 2\nvariants: {" + variants +
                                    "}\nsweep: {weight_bits: [8, 4], act_bits: [8, 4]}\n"
                                    "sensitivity: {bits: 4, variants: [none]}\n");
    return work.file(name + ".yaml");
  };
  const auto first = write("first", "none: {}, grad_l1: {regularizer.name: grad_l1, regularizer.lambda_w: 1.0e-4}");
  // The second experiment's configs differ from the first's only after training (mixed-precision
  // settings), so its copied baseline is saved with other bytes than the first's, and `none`,
  // grown from the first's baseline, must still be found.
  auto searched = config;
  searched.mixed_precision.score_images(100);
  util::write_file_atomically(work.file("searched.yaml"), config::to_yaml(searched));
  const auto second = write("second", "none: {}, kurtosis: {regularizer.name: kurtosis, regularizer.lambda: 1.0e-2}",
                            "searched.yaml");
  experiment::run_experiment(experiment::load_experiment(first, work.file("results")), {});

  // The second experiment shares the base: its trunk and `none` are the first's, trained here.
  const auto shared = experiment::load_experiment(second, work.file("results"));
  const auto plan = experiment::describe_plan(shared);
  const std::string from = work.file("results/first/seed_7/");
  CHECK_THAT(plan, Catch::Contains("seed 7 baseline: copy " + from + "baseline (the same run, trained on this machine); 0 sweeps"));
  CHECK_THAT(plan, Catch::Contains("seed 7 none: copy " + from + "none (the same run, trained on this machine); 0 sweeps and 0 sensitivity"));
  CHECK_THAT(plan, Catch::Contains("seed 7 kurtosis: train 1 epoch"));
  const auto table = experiment::run_experiment(shared, {});
  const std::string dir = work.file("results/second/seed_7/");
  CHECK(nlohmann::json::parse(util::read_file(dir + "none/metrics.json"))["copied_from"] == from + "none");
  CHECK(nlohmann::json::parse(util::read_file(dir + "none/sweep_default_test.json"))["header"]["checkpoint"] ==
        dir + "none/checkpoint.pt");
  CHECK_FALSE(nlohmann::json::parse(util::read_file(dir + "kurtosis/metrics.json")).contains("copied_from"));

  // The same experiment alone, trained from scratch: the same checkpoints, logs and sweeps.
  const auto alone = experiment::load_experiment(second, apart.file("results"));
  CHECK_THAT(experiment::describe_plan(alone), !Catch::Contains("copy"));
  const auto alone_table = experiment::run_experiment(alone, {});
  const std::string alone_dir = apart.file("results/second/seed_7/");
  // The two differ only by where they are (the checkpoints hold the config, with its paths) and
  // by how long each epoch took.
  auto weights = [&](const std::string& checkpoint) {
    auto model = models::build_model(config.model, data::dataset_info(config.data).input(), 0, torch::kCPU);
    const auto info = io::load_checkpoint(checkpoint, *model, nullptr);
    std::vector<torch::Tensor> tensors = model->parameters();
    for (const auto& buffer : model->buffers()) tensors.push_back(buffer);
    return std::make_pair(info, tensors);
  };
  auto log_without_timing = [](const std::string& file) {
    std::vector<nlohmann::json> records;
    std::istringstream lines(util::read_file(file));
    for (std::string line; std::getline(lines, line);) {
      auto record = nlohmann::json::parse(line);
      record.erase("train_seconds");
      record.erase("images_per_second");
      records.push_back(record);
    }
    return records;
  };
  for (const std::string run : {"baseline/", "none/", "kurtosis/"}) {
    const auto [info, tensors] = weights(dir + run + "checkpoint.pt");
    const auto [alone_info, alone_tensors] = weights(alone_dir + run + "checkpoint.pt");
    CHECK(info.epoch == alone_info.epoch);
    CHECK(std::regex_replace(info.config_yaml, std::regex(work.path()), "ROOT") ==
          std::regex_replace(alone_info.config_yaml, std::regex(apart.path()), "ROOT"));
    REQUIRE(tensors.size() == alone_tensors.size());
    for (size_t i = 0; i < tensors.size(); ++i) CHECK(torch::equal(tensors[i], alone_tensors[i]));
    CHECK(log_without_timing(dir + run + "train_log.jsonl") == log_without_timing(alone_dir + run + "train_log.jsonl"));
  }
  const auto rows = [](const std::string& file) { return nlohmann::json::parse(util::read_file(file))["rows"]; };
  CHECK(rows(dir + "none/sweep_default_test.json") == rows(alone_dir + "none/sweep_default_test.json"));
  CHECK(rows(dir + "none/sensitivity_default_test.json") == rows(alone_dir + "none/sensitivity_default_test.json"));
  CHECK(table["tables"] == alone_table["tables"]);

  // A twin trained with other numerics (another machine) is not copied; trained in its place,
  // the run writes the very bytes of the copy.
  const auto copied = util::read_file(dir + "none/checkpoint.pt");
  fs::remove_all(dir + "none");
  auto other = nlohmann::json::parse(util::read_file(from + "none/metrics.json"));
  other["numerics_fingerprint"] = std::string(40, 'f');
  util::write_file_atomically(from + "none/metrics.json", other.dump());
  CHECK_THAT(experiment::describe_plan(shared), Catch::Contains("seed 7 none: train 1 epoch"));
  experiment::run_experiment(shared, {});
  CHECK_FALSE(nlohmann::json::parse(util::read_file(dir + "none/metrics.json")).contains("copied_from"));
  CHECK(util::read_file(dir + "none/checkpoint.pt") == copied);
}
