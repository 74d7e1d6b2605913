#pragma once
// A deployed model (deploy/deployed_model.h) as an ONNX graph in the QDQ format that ONNX
// Runtime, TensorRT and the other integer runtimes read (opset 13):
//   - every quantized point is QuantizeLinear → DequantizeLinear with the point's grid, uint8
//     where the grid is unsigned, else int8. A grid of b < 8 bits stays inside the 8-bit type:
//     Q → DQ → Clip to the b-bit range → Q → DQ, so the values are those of the b-bit grid and
//     the first pair still lets the runtime fuse the layer before it;
//   - every quantized weight is an int8 (or uint8) initializer with DequantizeLinear, per tensor
//     or along axis 0; dequantized, it is qrobust's fake-quantized weight bit for bit;
//   - a quantized layer whose input is a quantized point has its bias as int32 with scale
//     input scale × weight scale (what integer kernels add to their accumulator; runtimes fuse
//     a layer into an integer kernel only then): the one value the export rounds, which
//     qrobust's fake quantization does not (BiasEncoding::kFloat keeps it float, unfused).
//     Elsewhere biases stay float;
//   - max pooling and flattening of values on a grid are followed by Q → DQ on the same grid,
//     which changes nothing and lets the runtime run them, and the layer after, on integers.
// The graph is the model's own forward pass, traced (models/trace.h); batch norms must be folded.
#include <onnx/onnx_pb.h>

#include <string>

#include "deploy/deployed_model.h"
#include "models/classifier.h"
#include "util/names.h"

namespace qrobust::deploy {

enum class BiasEncoding { kInt32, kFloat };
inline constexpr util::Names<BiasEncoding, 2> kBiasEncodingNames{{{BiasEncoding::kInt32, "int32"}, {BiasEncoding::kFloat, "float"}}};

// The graph of `model` (BN-folded, its float weights in place) with `deployed`'s weights and grids,
// checked with onnx::checker::check_model; a model the checker rejects is a RuntimeFailure.
onnx::ModelProto onnx_model(models::ClassifierImpl& model, const DeployedModel& deployed, const std::string& doc,
                            BiasEncoding bias = BiasEncoding::kInt32);

// Writes it atomically.
void write_onnx(const onnx::ModelProto& proto, const std::string& path);

}  // namespace qrobust::deploy
