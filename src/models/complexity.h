#pragma once
// How much a model computes: multiply-accumulates per image of one forward pass, in all and per
// quantizable layer, and which quantization point each layer reads (what a bit-operation count
// multiplies a layer's weight bits with).
#include <cstdint>
#include <vector>

#include "models/classifier.h"

namespace qrobust::models {

// Every convolution (output elements × fan-in) and matrix product (rows × inner × columns) of
// one eval-mode forward pass on one image of the model's input shape, as ATen runs them
// (counted through a RecordFunction observer on this thread). The model's mode and batch-norm
// statistics are left as they were.
int64_t macs_per_image(ClassifierImpl& model);

// One quantizable layer's share, per image.
struct LayerCost {
  int64_t weights = 0;  // elements of its weight
  int64_t macs = 0;     // its convolution or matrix product
  // The quantization point whose output it reads, directly or through max pooling, flattening
  // or reshaping (index into quant_points()).
  size_t input_point = 0;
};

// Every quantizable layer's cost, in quant_layers() order, from one eval-mode forward pass as
// macs_per_image counts it. A layer whose input comes from no quantization point is a
// std::logic_error: every model declares a point before each layer.
std::vector<LayerCost> layer_costs(ClassifierImpl& model);

}  // namespace qrobust::models
