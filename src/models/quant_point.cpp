#include "models/quant_point.h"

namespace qrobust::models {

torch::Tensor QuantPointImpl::forward(torch::Tensor x) {
  if (mode_ == QuantPointMode::kRecord) recorded_ = x;
  return x;
}

void QuantPointImpl::set_mode(QuantPointMode mode) {
  mode_ = mode;
  recorded_ = torch::Tensor();
}

}  // namespace qrobust::models
