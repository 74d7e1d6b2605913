#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <map>

#include "deploy/export.h"
#include "deploy/onnx_export.h"
#include "deploy/torch_export.h"
#include "models/registry.h"
#include "quant/bit_plan_file.h"
#include "quant/bn_fold.h"
#include "test_support.h"
#include "train/trainer.h"
#include "util/atomic_file.h"
#include "util/errors.h"

using namespace qrobust;

namespace {

// A randomly initialized model with non-trivial batch norms, folded and calibrated.
struct Prepared {
  models::Classifier model;
  std::unique_ptr<quant::PostTrainingQuantizer> quantizer;
};

Prepared prepare(const std::string& name, int64_t width, const quant::QuantOptions& options, int64_t size = 16) {
  torch::manual_seed(5);
  Prepared p;
  p.model = models::make_model(name, {3, size, size, 10}, width);
  p.model->train();
  {
    torch::NoGradGuard no_grad;
    for (int i = 0; i < 2; ++i) p.model->forward(torch::randn({8, 3, size, size}));
  }
  p.model->eval();
  quant::fold_batch_norms(*p.model);
  p.quantizer = std::make_unique<quant::PostTrainingQuantizer>(*p.model, options);
  // Two calibration draws, the second with wider ranges.
  p.quantizer->calibrate({torch::randn({16, 3, size, size})});
  p.quantizer->calibrate({torch::randn({16, 3, size, size}) * 1.5});
  return p;
}

std::map<std::string, const onnx::TensorProto*> initializers(const onnx::ModelProto& proto) {
  std::map<std::string, const onnx::TensorProto*> out;
  for (const auto& t : proto.graph().initializer()) out[t.name()] = &t;
  return out;
}

torch::Tensor tensor_of(const onnx::TensorProto& t) {
  std::vector<int64_t> dims(t.dims().begin(), t.dims().end());
  const auto& raw = t.raw_data();
  switch (t.data_type()) {
    case onnx::TensorProto::FLOAT:
      return torch::from_blob(const_cast<char*>(raw.data()), dims, torch::kFloat).clone();
    case onnx::TensorProto::INT8:
      return torch::from_blob(const_cast<char*>(raw.data()), dims, torch::kChar).clone();
    case onnx::TensorProto::UINT8:
      return torch::from_blob(const_cast<char*>(raw.data()), dims, torch::kByte).clone();
    case onnx::TensorProto::INT32:
      return torch::from_blob(const_cast<char*>(raw.data()), dims, torch::kInt).clone();
    default:
      FAIL("unexpected initializer type " << t.data_type());
  }
  return {};
}

int count_ops(const onnx::ModelProto& proto, const std::string& op) {
  int n = 0;
  for (const auto& node : proto.graph().node()) n += node.op_type() == op;
  return n;
}

// A mixed plan: layers cycle through 8, 4, 3, 32 bits and points through 8, 4, 32.
quant::BitPlan cycled_plan(const models::ClassifierImpl& model) {
  quant::BitPlan plan;
  const int layer_cycle[] = {8, 4, 3, quant::kFloatBits}, point_cycle[] = {8, 4, quant::kFloatBits};
  for (size_t i = 0; i < model.quant_layers().size(); ++i) plan.layer_bits.push_back(layer_cycle[i % 4]);
  for (size_t i = 0; i < model.quant_points().size(); ++i) plan.point_bits.push_back(point_cycle[i % 3]);
  return plan;
}

}  // namespace

TEST_CASE("the exported QDQ graph passes the ONNX checker: ResNet-8, ResNet-20, VGG-like, every policy and a mixed plan") {
  for (const auto& [name, width] : std::vector<std::pair<std::string, int64_t>>{{"resnet8", 4}, {"resnet20", 4}, {"vgg_like", 8}}) {
    for (const auto granularity : {quant::Granularity::kPerTensor, quant::Granularity::kPerChannel}) {
      for (const auto policy : {quant::FirstLast::kQuantize, quant::FirstLast::kInt8, quant::FirstLast::kFloat}) {
        auto options = quant::QuantOptions().weight_granularity(granularity).first_last(policy);
        auto p = prepare(name, width, options);
        const auto layers = p.model->quant_layers().size();
        for (const auto& [label, plan] : std::vector<std::pair<std::string, quant::BitPlan>>{
                 {"w8a8", p.quantizer->plan(8, 8)}, {"w4a4", p.quantizer->plan(4, 4)}, {"w3a32", p.quantizer->plan(3, 32)},
                 {"float", p.quantizer->float_plan()}, {"mixed", cycled_plan(*p.model)}}) {
          INFO(name << " " << util::name_of(granularity, quant::kGranularityNames) << " "
                    << util::name_of(policy, quant::kFirstLastNames) << " " << label);
          const auto deployed = deploy::deployed_model(*p.quantizer, plan, 1);
          onnx::ModelProto proto;
          REQUIRE_NOTHROW(proto = deploy::onnx_model(*p.model, deployed, label));  // the checker runs inside
          CHECK(count_ops(proto, "Conv") + count_ops(proto, "Gemm") == static_cast<int>(layers));
          size_t quantized_layers = 0, quantized_points = 0, low_points = 0;
          for (const auto bits : plan.layer_bits) quantized_layers += bits != quant::kFloatBits;
          for (const auto bits : plan.point_bits) {
            quantized_points += bits != quant::kFloatBits;
            low_points += bits < 8;
          }
          const auto inits = initializers(proto);
          size_t int8_weights = 0;
          for (const auto& layer : p.model->quant_layers()) int8_weights += inits.count(layer.name + ".weight_quantized");
          CHECK(int8_weights == quantized_layers);
          // A pair per point, a second pair and a Clip below 8 bits, a pair after each pool or
          // flatten of a quantized value (VGG-like only).
          CHECK(count_ops(proto, "Clip") == static_cast<int>(low_points));
          CHECK(count_ops(proto, "QuantizeLinear") >= static_cast<int>(quantized_points + low_points));
          if (name != "vgg_like") CHECK(count_ops(proto, "QuantizeLinear") == static_cast<int>(quantized_points + low_points));
        }
      }
    }
  }
}

TEST_CASE("every shipped model exports: the trace sees its whole forward pass") {
  for (const auto& [name, small_width] : testing::shipped_models()) {
    INFO(name);
    auto p = prepare(name, small_width, quant::QuantOptions(), 32);
    const auto deployed = deploy::deployed_model(*p.quantizer, p.quantizer->plan(8, 8), 0);
    onnx::ModelProto proto;
    REQUIRE_NOTHROW(proto = deploy::onnx_model(*p.model, deployed, name));
    CHECK(count_ops(proto, "Conv") + count_ops(proto, "Gemm") == static_cast<int>(p.model->quant_layers().size()));
  }
}

TEST_CASE("every weight initializer, dequantized, is qrobust's fake-quantized weight bit for bit") {
  for (const auto granularity : {quant::Granularity::kPerTensor, quant::Granularity::kPerChannel}) {
    INFO(util::name_of(granularity, quant::kGranularityNames));
    auto p = prepare("resnet20", 4, quant::QuantOptions().weight_granularity(granularity));
    for (const int bits : {8, 6, 4, 3, 2}) {
      INFO(bits << " bits");
      const auto plan = p.quantizer->plan(bits, 8);
      const auto proto = deploy::onnx_model(*p.model, deploy::deployed_model(*p.quantizer, plan, 0), "");
      const auto inits = initializers(proto);
      for (size_t i = 0; i < p.model->quant_layers().size(); ++i) {
        const auto& layer = p.model->quant_layers()[i];
        INFO(layer.name);
        const auto integers = tensor_of(*inits.at(layer.name + ".weight_quantized"));
        const auto scale = tensor_of(*inits.at(layer.name + ".weight_scale"));
        const auto zero = tensor_of(*inits.at(layer.name + ".weight_zero_point"));
        CHECK(inits.at(layer.name + ".weight_quantized")->data_type() == onnx::TensorProto::INT8);
        CHECK(integers.abs().max().item<int>() <= (1 << (bits - 1)) - 1);
        auto shape = std::vector<int64_t>(static_cast<size_t>(integers.dim()), 1);
        if (granularity == quant::Granularity::kPerChannel) shape[0] = -1;
        // DequantizeLinear's arithmetic: (q - z) * s in float.
        const auto dequantized = (integers.to(torch::kInt) - zero.to(torch::kInt).reshape(shape)).to(torch::kFloat) *
                                 scale.reshape(shape);
        // LibTorch's own fake quantization of the folded float weight on the same grid.
        const auto& grid = p.quantizer->weight_params(i, bits);
        const auto w = layer.weight().detach();
        const auto expected =
            granularity == quant::Granularity::kPerChannel
                ? at::fake_quantize_per_channel_affine(w, grid.scale, grid.zero_point, 0, grid.quant_min, grid.quant_max)
                : at::fake_quantize_per_tensor_affine(w, grid.scale.item<double>(), grid.zero_point.item<int64_t>(),
                                                      grid.quant_min, grid.quant_max);
        CHECK(torch::equal(dequantized, expected));
      }
    }
  }
}

TEST_CASE("a recipe's weights and corrected biases are what the export holds") {
  auto options = quant::QuantOptions().bias_correction(quant::BiasCorrection::kEmpirical).rounding(quant::Rounding::kAdaRound);
  options.adaround().iterations(20).batch_size(8);
  auto p = prepare("resnet8", 4, options);
  const auto plan = p.quantizer->plan(4, 8);
  const auto learned = p.quantizer->layer_weights(plan.layer_bits, 1);
  const auto proto = deploy::onnx_model(*p.model, deploy::deployed_model(*p.quantizer, plan, 1), "");
  const auto inits = initializers(proto);
  size_t rounded_otherwise = 0;
  for (size_t i = 0; i < p.model->quant_layers().size(); ++i) {
    const auto& layer = p.model->quant_layers()[i];
    INFO(layer.name);
    const auto integers = tensor_of(*inits.at(layer.name + ".weight_quantized")).to(torch::kFloat);
    const auto scale = tensor_of(*inits.at(layer.name + ".weight_scale"));
    CHECK(torch::equal(integers * scale, learned[i].weight));
    rounded_otherwise += !torch::equal(learned[i].weight, p.quantizer->quantized_weight(i, 4));
    // The bias: int32 at input scale x weight scale where the input is quantized (every layer here).
    REQUIRE(inits.count(layer.name + ".bias_quantized"));
    const auto bias = tensor_of(*inits.at(layer.name + ".bias_quantized")).to(torch::kFloat) *
                      tensor_of(*inits.at(layer.name + ".bias_scale"));
    CHECK(((bias - learned[i].bias).abs() - tensor_of(*inits.at(layer.name + ".bias_scale")) / 2).max().item<float>() <= 1e-6);
  }
  CHECK(rounded_otherwise > 0);  // AdaRound moved some weights off round-to-nearest, and the export kept that
}

TEST_CASE("export requests are checked before any work: draw, bits, plan architecture, batch norms") {
  testing::TempDir dir;
  auto config = testing::tiny_config(dir.path(), 1);
  deploy::ExportRequest request;
  request.out = dir.file("model.onnx");
  CHECK_NOTHROW(deploy::check_request(config, request));
  auto bad = request;
  bad.draw = -1;
  CHECK_THROWS_AS(deploy::check_request(config, bad), UsageError);
  bad.draw = deploy::kMaxDraw + 1;
  CHECK_THROWS_AS(deploy::check_request(config, bad), UsageError);
  for (const auto& [w, a] : std::vector<std::pair<int, int>>{{16, 8}, {1, 8}, {8, 9}, {4, 0}}) {
    bad = request;
    bad.weight_bits = w;
    bad.act_bits = a;
    INFO(w << "/" << a);
    CHECK_THROWS_AS(deploy::check_request(config, bad), UsageError);
  }
  auto vgg = models::make_model("vgg_like", {3, 32, 32, 10}, 8);
  util::write_file_atomically(dir.file("vgg_plan.json"),
                              quant::bit_plan_json(quant::uniform_plan(*vgg, quant::FirstLast::kQuantize, 4, 4), *vgg).dump());
  bad = request;
  bad.plan_path = dir.file("vgg_plan.json");
  CHECK_THROWS_AS(deploy::check_request(config, bad), UsageError);
  auto unfolded = config;
  unfolded.quant.bn_fold(false);
  CHECK_THROWS_AS(deploy::check_request(unfolded, request), UsageError);
  CHECK_FALSE(std::filesystem::exists(request.out));
}

namespace {

// A ResNet-8 trained for one epoch on 5 x 300 generated images, tested on 300.
struct TrainedForExport {
  testing::TempDir data, runs;
  config::ExperimentConfig config;
  std::string checkpoint;
  TrainedForExport() {
    testing::write_cifar10(data.path(), 300);
    config = testing::tiny_config(data.path(), 1);
    config.quant.calibration_samples(128);
    train::TrainOptions options;
    options.run_dir = runs.file("run");
    train::train(config, options);
    checkpoint = train::checkpoint_path(options.run_dir);
  }
};

// Where scripts/install_onnxruntime.sh puts onnxruntime-node: beside the qrobust binary.
std::string onnxruntime_modules() {
  return (std::filesystem::path(QROBUST_BINARY).parent_path() / "onnxruntime" / "node_modules").string();
}

}  // namespace

TEST_CASE("ONNX Runtime runs the export: float logits within 1e-4, w8a8 and w4a4 predictions as qrobust's", "[onnxruntime]") {
  const auto modules = onnxruntime_modules();
  if (std::system("node --version > /dev/null 2>&1") != 0 ||
      !std::filesystem::exists(modules + "/onnxruntime-node/package.json")) {
    WARN("no node, or no onnxruntime-node in " << modules << " (scripts/install_onnxruntime.sh): not checked");
    return;
  }
  TrainedForExport run;
  for (const auto& [w, a] : std::vector<std::pair<int, int>>{{32, 32}, {8, 8}, {4, 4}}) {
    for (const auto bias : {deploy::BiasEncoding::kInt32, deploy::BiasEncoding::kFloat}) {
      INFO("w" << w << "a" << a << ", " << util::name_of(bias, deploy::kBiasEncodingNames) << " biases");
      deploy::ExportRequest request;
      request.weight_bits = w;
      request.act_bits = a;
      request.draw = 1;
      request.bias = bias;
      request.out = run.runs.file("model.onnx");
      request.reference = run.runs.file("reference");
      const auto exported = deploy::run_export(run.config, run.checkpoint, request);
      const auto result = testing::run_command("NODE_PATH=" + modules + " node " + std::string(QROBUST_SOURCE_DIR) +
                                               "/scripts/onnx_runtime.js " + request.out + " " + request.reference +
                                               " --batch 64 --threads 1");
      INFO(result.output);
      REQUIRE(result.exit_code == 0);
      const auto doc = nlohmann::json::parse(result.output);
      CHECK(doc["images"] == 300);
      CHECK(doc["reference_accuracy"].get<double>() == Approx(exported["reference"]["accuracy"].get<double>()));
      const double share = doc["disagreement_share"].get<double>();
      if (w == 32) {
        CHECK(doc["max_abs_logit_difference"].get<double>() < 1e-4);
        CHECK(doc["disagreements"] == 0);
      } else if (bias == deploy::BiasEncoding::kFloat) {
        // The same arithmetic up to rounding ties: at most a few images near a decision boundary.
        CHECK(share <= 0.01);
      } else {
        // Integer kernels: the runtime fused the QDQ convolutions, and their int32 biases are
        // the one thing qrobust's fake quantization does not round.
        CHECK(doc["graph"]["qdq_groups_fused"].value("Conv", 0) > 0);
        CHECK(share <= (w == 8 ? 0.02 : 0.05));
      }
    }
  }
}

TEST_CASE("the PyTorch export (--format torch) loads in Python: weights on their grid, equal to qrobust's", "[python]") {
  if (std::system("/usr/bin/python3 -c 'import torch' > /dev/null 2>&1") != 0) {
    WARN("no /usr/bin/python3 with torch (Debian: python3-torch): not checked");
    return;
  }
  for (const auto granularity : {quant::Granularity::kPerTensor, quant::Granularity::kPerChannel}) {
    INFO(util::name_of(granularity, quant::kGranularityNames));
    auto p = prepare("resnet8", 4, quant::QuantOptions().weight_granularity(granularity));
    const auto plan = cycled_plan(*p.model);
    const auto deployed = deploy::deployed_model(*p.quantizer, plan, 0);
    testing::TempDir dir;
    deploy::write_torch(*p.model, deployed, "name: test\n", quant::bit_plan_json(plan, *p.model).dump(), 0, dir.file("q.pt"));
    // Python checks the grid and prints every dequantized weight, which must be qrobust's.
    const std::string script =
        "import json, torch\n"
        "d = torch.load('" + dir.file("q.pt") + "')\n"
        "assert d['format'] == 'qrobust-quantized-model' and d['version'] == 1\n"
        "out = {}\n"
        "for name, l in d['layers'].items():\n"
        "    if 'weight_int' not in l:\n"
        "        out[name] = None\n"
        "        continue\n"
        "    q = l['weight_int']\n"
        "    assert q.dtype == torch.int8, q.dtype\n"
        "    assert int(q.min()) >= l['quant_min'] and int(q.max()) <= l['quant_max']\n"
        "    shape = [-1] + [1] * (q.dim() - 1) if l['axis'] == 0 else []\n"
        "    deq = (q.int() - l['zero_point'].reshape(shape)).float() * l['scale'].reshape(shape)\n"
        "    assert torch.equal(deq, l['weight']), name\n"
        "    out[name] = deq.flatten().tolist()\n"
        "print(json.dumps({'layers': out, 'points': {n: p['bits'] for n, p in d['points'].items()}}))\n";
    util::write_file_atomically(dir.file("check.py"), script);
    const auto result = testing::run_command("/usr/bin/python3 " + dir.file("check.py"));
    INFO(result.output);
    REQUIRE(result.exit_code == 0);
    const auto doc = nlohmann::json::parse(result.output.substr(result.output.find('{')));
    for (size_t i = 0; i < deployed.layers.size(); ++i) {
      const auto& layer = deployed.layers[i];
      INFO(layer.name);
      if (!layer.grid) {
        CHECK(doc["layers"][layer.name].is_null());
        continue;
      }
      const auto values = doc["layers"][layer.name].get<std::vector<double>>();
      const auto expected = p.quantizer->quantized_weight(i, layer.bits).flatten().to(torch::kDouble);
      REQUIRE(values.size() == static_cast<size_t>(expected.numel()));
      CHECK(torch::equal(torch::tensor(values, torch::kDouble), expected));
    }
    for (size_t i = 0; i < deployed.points.size(); ++i) CHECK(doc["points"][deployed.points[i].name] == plan.point_bits[i]);
  }
}
