#include "deploy/onnx_export.h"

#include <onnx/checker.h>

#include <limits>
#include <map>
#include <unordered_map>

#include "models/trace.h"
#include "util/atomic_file.h"
#include "util/errors.h"

namespace qrobust::deploy {
namespace {

constexpr int64_t kOpset = 13;

int32_t element_type(const quant::AffineParams& grid) {
  return grid.quant_min < 0 ? onnx::TensorProto::INT8 : onnx::TensorProto::UINT8;
}

torch::ScalarType scalar_type(int32_t type) {
  switch (type) {
    case onnx::TensorProto::FLOAT:
      return torch::kFloat;
    case onnx::TensorProto::INT64:
      return torch::kLong;
    case onnx::TensorProto::INT32:
      return torch::kInt;
    case onnx::TensorProto::INT8:
      return torch::kChar;
    case onnx::TensorProto::UINT8:
      return torch::kByte;
    default:
      TORCH_CHECK(false, "ONNX export: unsupported initializer type ", type);
  }
}

// Builds the graph node by node; value names are unique by construction.
class GraphWriter {
 public:
  explicit GraphWriter(onnx::GraphProto& graph) : graph_(graph) {}

  std::string fresh(const std::string& stem) {
    const int count = used_[stem]++;
    return count == 0 ? stem : stem + "_" + std::to_string(count);
  }

  onnx::NodeProto& node(const std::string& op, const std::vector<std::string>& inputs, const std::string& output) {
    auto& n = *graph_.add_node();
    n.set_op_type(op);
    n.set_name(fresh(output + "/" + op));
    for (const auto& input : inputs) n.add_input(input);
    n.add_output(output);
    return n;
  }

  // A float or integer initializer from a CPU tensor.
  std::string initializer(const std::string& stem, const torch::Tensor& values, int32_t type) {
    const std::string name = fresh(stem);
    auto& t = *graph_.add_initializer();
    t.set_name(name);
    t.set_data_type(type);
    for (const auto size : values.sizes()) t.add_dims(size);
    const auto flat = values.detach().cpu().flatten().to(scalar_type(type)).contiguous();
    t.set_raw_data(flat.data_ptr(), flat.nbytes());  // little-endian, as ONNX stores raw data
    return name;
  }

  // Scale and zero point of `grid` as initializers: scalars per tensor, vectors per channel.
  std::pair<std::string, std::string> grid_initializers(const std::string& stem, const quant::AffineParams& grid) {
    auto scale = grid.scale.detach().cpu().to(torch::kFloat).flatten();
    auto zero = grid.zero_point.detach().cpu().flatten();
    if (!grid.per_channel) {
      scale = scale.reshape({});
      zero = zero.reshape({});
    }
    return {initializer(stem + "_scale", scale, onnx::TensorProto::FLOAT),
            initializer(stem + "_zero_point", zero, element_type(grid))};
  }

  static void set_ints(onnx::NodeProto& n, const std::string& name, const std::vector<int64_t>& values) {
    auto& a = *n.add_attribute();
    a.set_name(name);
    a.set_type(onnx::AttributeProto::INTS);
    for (const auto v : values) a.add_ints(v);
  }
  static void set_int(onnx::NodeProto& n, const std::string& name, int64_t value) {
    auto& a = *n.add_attribute();
    a.set_name(name);
    a.set_type(onnx::AttributeProto::INT);
    a.set_i(value);
  }

 private:
  onnx::GraphProto& graph_;
  std::map<std::string, int> used_;
};

// What the graph knows of a value: its name, and the grid it lies on (a point's output).
struct Value {
  std::string name;
  const quant::AffineParams* grid = nullptr;
};

class Exporter {
 public:
  Exporter(models::ClassifierImpl& model, const DeployedModel& deployed, BiasEncoding bias, onnx::GraphProto& graph)
      : model_(model), deployed_(deployed), bias_(bias), writer_(graph) {
    for (size_t i = 0; i < model.quant_layers().size(); ++i) layer_index_[model.quant_layers()[i].layer.get()] = i;
    for (size_t i = 0; i < model.quant_points().size(); ++i) point_index_[model.quant_points()[i].get()] = i;
  }

  // Writes the graph of one traced forward pass from `images` to `logits`.
  void write(const std::vector<models::TracedOp>& ops, const torch::Tensor& images, const torch::Tensor& logits) {
    values_[images.unsafeGetTensorImpl()] = {"images", nullptr};
    for (const auto& op : ops) values_[op.output.unsafeGetTensorImpl()] = convert(op);
    writer_.node("Identity", {value_of(logits).name}, "logits");
  }

 private:
  const Value& value_of(const torch::Tensor& t) const {
    const auto found = values_.find(t.unsafeGetTensorImpl());
    if (found == values_.end())
      throw RuntimeFailure("ONNX export: the " + model_.architecture() +
                           " forward pass uses an operation outside models/layer_ops.h, which the trace cannot see");
    return found->second;
  }

  // QuantizeLinear → DequantizeLinear with the initializers `scale` and `zero`; the DQ's output.
  std::string qdq(const std::string& input, const std::string& scale, const std::string& zero, const std::string& stem) {
    const std::string q = writer_.fresh(stem + "_quantized");
    writer_.node("QuantizeLinear", {input, scale, zero}, q);
    const std::string dq = writer_.fresh(stem + "_dequantized");
    writer_.node("DequantizeLinear", {q, scale, zero}, dq);
    return dq;
  }

  // Q → DQ on `grid`; below 8 bits, the b-bit range is kept by a Clip between two such pairs.
  Value quantize(const std::string& input, const quant::AffineParams& grid, int bits, const std::string& stem) {
    const auto [scale, zero] = writer_.grid_initializers(stem, grid);
    std::string out = qdq(input, scale, zero, stem);
    if (bits < 8) {
      const float step = grid.scale.item<float>();
      const auto zero_point = grid.zero_point.item<int64_t>();
      const auto low = torch::tensor(static_cast<float>(grid.quant_min - zero_point) * step);
      const auto high = torch::tensor(static_cast<float>(grid.quant_max - zero_point) * step);
      const std::string clipped = writer_.fresh(stem + "_clipped");
      writer_.node("Clip",
                   {out, writer_.initializer(stem + "_min", low, onnx::TensorProto::FLOAT),
                    writer_.initializer(stem + "_max", high, onnx::TensorProto::FLOAT)},
                   clipped);
      out = qdq(clipped, scale, zero, stem + "_" + std::to_string(bits) + "bit");
    }
    return {out, &grid};
  }

  // The layer's weight (DQ of its integers where quantized) and bias (int32 with DQ where both
  // the input and the weights are on grids, else float).
  std::vector<std::string> layer_inputs(size_t index, const Value& input) {
    const auto& layer = deployed_.layers[index];
    std::vector<std::string> names{input.name};
    if (!layer.grid) {
      names.push_back(writer_.initializer(layer.name + ".weight", layer.weight, onnx::TensorProto::FLOAT));
    } else {
      const auto& grid = *layer.grid;
      const auto integers = writer_.initializer(layer.name + ".weight_quantized", grid_integers(layer.weight, grid),
                                                element_type(grid));
      const auto [scale, zero] = writer_.grid_initializers(layer.name + ".weight", grid);
      const std::string weight = writer_.fresh(layer.name + ".weight");
      auto& dq = writer_.node("DequantizeLinear", {integers, scale, zero}, weight);
      if (grid.per_channel) GraphWriter::set_int(dq, "axis", 0);
      names.push_back(weight);
    }
    if (!layer.bias.defined()) return names;
    if (bias_ == BiasEncoding::kFloat || !layer.grid || input.grid == nullptr || input.grid->per_channel) {
      names.push_back(writer_.initializer(layer.name + ".bias", layer.bias, onnx::TensorProto::FLOAT));
      return names;
    }
    const auto input_scale = input.grid->scale.detach().cpu().to(torch::kFloat).reshape({});
    auto scale = (input_scale * layer.grid->scale.detach().cpu().to(torch::kFloat).flatten()).contiguous();
    const auto bias = layer.bias.detach().cpu().to(torch::kFloat);
    if (!layer.grid->per_channel) scale = scale.expand(bias.sizes()).contiguous();
    const auto integers = (bias / scale).round();
    if ((integers.abs() > static_cast<double>(std::numeric_limits<int32_t>::max())).any().item<bool>())
      throw RuntimeFailure("ONNX export: the bias of " + layer.name + " does not fit int32 at its accumulator's scale");
    const auto quantized = writer_.initializer(layer.name + ".bias_quantized", integers.to(torch::kInt), onnx::TensorProto::INT32);
    const auto scale_name = writer_.initializer(layer.name + ".bias_scale", scale, onnx::TensorProto::FLOAT);
    const auto zero_name = writer_.initializer(layer.name + ".bias_zero_point", torch::zeros(scale.sizes(), torch::kInt),
                                               onnx::TensorProto::INT32);
    const std::string name = writer_.fresh(layer.name + ".bias");
    auto& dq = writer_.node("DequantizeLinear", {quantized, scale_name, zero_name}, name);
    GraphWriter::set_int(dq, "axis", 0);
    names.push_back(name);
    return names;
  }

  // Values on a grid stay on it through max pooling and flattening; saying so again lets the
  // runtime keep them integer.
  Value keep_grid(const std::string& output, const Value& input) {
    if (input.grid == nullptr) return {output, nullptr};
    const auto [scale, zero] = writer_.grid_initializers(output, *input.grid);
    return {qdq(output, scale, zero, output), input.grid};
  }

  Value convert(const models::TracedOp& op) {
    using Kind = models::TracedOp::Kind;
    const Value input = value_of(op.inputs.at(0));
    switch (op.kind) {
      case Kind::kPoint: {
        const auto& point = deployed_.points.at(point_index_.at(op.module));
        if (!point.grid) return input;
        return quantize(input.name, *point.grid, point.bits, point.name);
      }
      case Kind::kConv: {
        const size_t index = layer_index_.at(op.module);
        const auto& o = dynamic_cast<const torch::nn::Conv2dImpl&>(*op.module).options;
        const auto* padding = c10::get_if<torch::ExpandingArray<2>>(&o.padding());
        if (padding == nullptr || !c10::get_if<torch::enumtype::kZeros>(&o.padding_mode()))
          throw RuntimeFailure("ONNX export: " + deployed_.layers[index].name + " uses a padding mode the export does not write");
        const std::string out = writer_.fresh(deployed_.layers[index].name);
        auto& n = writer_.node("Conv", layer_inputs(index, input), out);
        GraphWriter::set_ints(n, "kernel_shape", {(*o.kernel_size())[0], (*o.kernel_size())[1]});
        GraphWriter::set_ints(n, "strides", {(*o.stride())[0], (*o.stride())[1]});
        GraphWriter::set_ints(n, "pads", {(**padding)[0], (**padding)[1], (**padding)[0], (**padding)[1]});
        GraphWriter::set_ints(n, "dilations", {(*o.dilation())[0], (*o.dilation())[1]});
        GraphWriter::set_int(n, "group", o.groups());
        return {out, nullptr};
      }
      case Kind::kLinear: {
        const size_t index = layer_index_.at(op.module);
        const std::string out = writer_.fresh(deployed_.layers[index].name);
        auto& n = writer_.node("Gemm", layer_inputs(index, input), out);
        GraphWriter::set_int(n, "transB", 1);
        return {out, nullptr};
      }
      case Kind::kBatchNorm:
        throw UsageError("ONNX export writes BN-folded models: set quant.bn_fold: true");
      case Kind::kRelu: {
        const std::string out = writer_.fresh("relu");
        writer_.node("Relu", {input.name}, out);
        return {out, nullptr};
      }
      case Kind::kAdd: {
        const std::string out = writer_.fresh("add");
        writer_.node("Add", {input.name, value_of(op.inputs.at(1)).name}, out);
        return {out, nullptr};
      }
      case Kind::kMaxPool: {
        const auto& a = op.attributes;  // kernel, stride, padding, ceil mode
        const std::string out = writer_.fresh("max_pool");
        auto& n = writer_.node("MaxPool", {input.name}, out);
        GraphWriter::set_ints(n, "kernel_shape", {a[0], a[0]});
        GraphWriter::set_ints(n, "strides", {a[1], a[1]});
        GraphWriter::set_ints(n, "pads", {a[2], a[2], a[2], a[2]});
        GraphWriter::set_int(n, "ceil_mode", a[3]);
        return keep_grid(out, input);
      }
      case Kind::kGlobalAveragePool: {
        const std::string pooled = writer_.fresh("global_average_pool");
        writer_.node("GlobalAveragePool", {input.name}, pooled);
        const std::string out = writer_.fresh("pooled");
        GraphWriter::set_int(writer_.node("Flatten", {pooled}, out), "axis", 1);
        return {out, nullptr};
      }
      case Kind::kFlatten: {
        const std::string out = writer_.fresh("flatten");
        GraphWriter::set_int(writer_.node("Flatten", {input.name}, out), "axis", 1);
        return keep_grid(out, input);
      }
      case Kind::kSubsampleAndPad: {
        const int64_t stride = op.attributes[0], channels = op.attributes[1];
        const int64_t end = std::numeric_limits<int64_t>::max();
        const std::string sliced = writer_.fresh("subsampled");
        writer_.node("Slice",
                     {input.name, writer_.initializer("subsample_starts", torch::tensor({int64_t{0}, int64_t{0}}), onnx::TensorProto::INT64),
                      writer_.initializer("subsample_ends", torch::tensor({end, end}), onnx::TensorProto::INT64),
                      writer_.initializer("subsample_axes", torch::tensor({int64_t{2}, int64_t{3}}), onnx::TensorProto::INT64),
                      writer_.initializer("subsample_steps", torch::tensor({stride, stride}), onnx::TensorProto::INT64)},
                     sliced);
        const std::string out = writer_.fresh("shortcut");
        writer_.node("Pad",
                     {sliced, writer_.initializer("shortcut_pads", torch::tensor({int64_t{0}, channels, int64_t{0}, int64_t{0},
                                                                                   int64_t{0}, channels, int64_t{0}, int64_t{0}}),
                                                  onnx::TensorProto::INT64)},
                     out);
        return {out, nullptr};
      }
    }
    throw RuntimeFailure("ONNX export: unknown traced operation");
  }

  models::ClassifierImpl& model_;
  const DeployedModel& deployed_;
  BiasEncoding bias_;
  GraphWriter writer_;
  std::unordered_map<const torch::nn::Module*, size_t> layer_index_;
  std::unordered_map<const torch::nn::Module*, size_t> point_index_;
  std::unordered_map<const void*, Value> values_;
};

void set_tensor_type(onnx::ValueInfoProto& info, const std::string& name, const std::vector<int64_t>& dims) {
  info.set_name(name);
  auto& tensor = *info.mutable_type()->mutable_tensor_type();
  tensor.set_elem_type(onnx::TensorProto::FLOAT);
  auto& shape = *tensor.mutable_shape();
  shape.add_dim()->set_dim_param("batch");
  for (const auto d : dims) shape.add_dim()->set_dim_value(d);
}

}  // namespace

onnx::ModelProto onnx_model(models::ClassifierImpl& model, const DeployedModel& deployed, const std::string& doc,
                            BiasEncoding bias) {
  const auto& spec = model.input_spec();
  onnx::ModelProto proto;
  proto.set_ir_version(onnx::IR_VERSION);
  proto.set_producer_name("qrobust");
  proto.set_doc_string(doc);
  auto& opset = *proto.add_opset_import();
  opset.set_domain("");
  opset.set_version(kOpset);
  auto& graph = *proto.mutable_graph();
  graph.set_name(model.architecture());
  set_tensor_type(*graph.add_input(), "images", {spec.channels, spec.height, spec.width});
  set_tensor_type(*graph.add_output(), "logits", {spec.num_classes});

  const bool was_training = model.is_training();
  model.eval();
  torch::NoGradGuard no_grad;
  const auto device = model.parameters().empty() ? torch::Device(torch::kCPU) : model.parameters().front().device();
  const auto images = torch::zeros({1, spec.channels, spec.height, spec.width}, torch::TensorOptions().device(device));
  {
    models::TraceScope trace;
    const auto logits = model.forward(images);
    Exporter(model, deployed, bias, graph).write(trace.ops(), images, logits);
  }
  model.train(was_training);
  try {
    onnx::checker::check_model(proto);
  } catch (const std::exception& e) {
    throw RuntimeFailure(std::string("ONNX export: the checker rejects the graph: ") + e.what());
  }
  return proto;
}

void write_onnx(const onnx::ModelProto& proto, const std::string& path) {
  std::string bytes;
  if (!proto.SerializeToString(&bytes)) throw RuntimeFailure(path + ": cannot serialize the ONNX model");
  util::write_file_atomically(path, bytes);
}

}  // namespace qrobust::deploy
