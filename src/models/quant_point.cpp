#include "models/quant_point.h"

namespace qrobust::models {

torch::Tensor QuantPointImpl::forward(torch::Tensor x) {
  switch (mode_) {
    case QuantPointMode::kRecord: recorded_ = x; return x;
    case QuantPointMode::kPerturb: return x + perturbation_;
    case QuantPointMode::kObserve: observer_(x); return x;
    case QuantPointMode::kQuantize: return quantizer_ ? quantizer_(x) : x;
    default: return x;
  }
}

void QuantPointImpl::set_mode(QuantPointMode mode) {
  mode_ = mode;
  recorded_ = torch::Tensor();
  perturbation_ = torch::Tensor();
}

}  // namespace qrobust::models
