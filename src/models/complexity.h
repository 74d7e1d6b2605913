#pragma once
// How much a model computes: multiply-accumulates per image of one forward pass.
#include <cstdint>

#include "models/classifier.h"

namespace qrobust::models {

// Every convolution (output elements × fan-in) and matrix product (rows × inner × columns) of
// one eval-mode forward pass on one image of the model's input shape, as ATen runs them
// (counted through a RecordFunction observer on this thread). The model's mode and batch-norm
// statistics are left as they were.
int64_t macs_per_image(ClassifierImpl& model);

}  // namespace qrobust::models
