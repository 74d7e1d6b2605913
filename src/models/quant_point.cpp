#include "models/quant_point.h"

#include "models/trace.h"

namespace qrobust::models {

torch::Tensor QuantPointImpl::forward(torch::Tensor x) {
  if (observer_) observer_(x);
  if (tracing()) record({TracedOp::Kind::kPoint, this, {x}, x, {}});
  if (quantizer_) x = quantizer_(x);
  if (perturbation_.defined()) x = x + perturbation_;
  if (recording_) recorded_ = x;
  return x;
}

void QuantPointImpl::set_recording(bool on) {
  recording_ = on;
  if (!on) recorded_ = torch::Tensor();
}

QuantPointScope::~QuantPointScope() {
  for (auto undo = undo_.rbegin(); undo != undo_.rend(); ++undo) (*undo)();
}

RecordScope::RecordScope(const std::vector<QuantPoint>& points) {
  for (const auto& holder : points) {
    auto point = holder.ptr();  // a shared_ptr: the undo lambda may call non-const setters
    const bool before = point->recording();
    undo_.push_back([point, before] { point->set_recording(before); });
    point->set_recording(true);
  }
}

ObserveScope::ObserveScope(const std::vector<QuantPoint>& points,
                           std::function<void(size_t, const torch::Tensor&)> observer) {
  for (size_t i = 0; i < points.size(); ++i) {
    auto point = points[i].ptr();  // a shared_ptr: the undo lambda may call non-const setters
    undo_.push_back([point, before = point->observer()] { point->set_observer(before); });
    point->set_observer([observer, i](const torch::Tensor& x) { observer(i, x); });
  }
}

QuantizeScope::QuantizeScope(const std::vector<QuantPoint>& points,
                             const std::vector<QuantPointImpl::Quantizer>& quantizers) {
  TORCH_CHECK(points.size() == quantizers.size(), "QuantizeScope: ", points.size(), " points but ", quantizers.size(),
              " quantizers");
  for (size_t i = 0; i < points.size(); ++i) {
    auto point = points[i].ptr();  // a shared_ptr: the undo lambda may call non-const setters
    undo_.push_back([point, before = point->quantizer()] { point->set_quantizer(before); });
    point->set_quantizer(quantizers[i]);
  }
}

PerturbScope::PerturbScope(const std::vector<QuantPoint>& points, const std::vector<torch::Tensor>& perturbations) {
  TORCH_CHECK(points.size() == perturbations.size(), "PerturbScope: ", points.size(), " points but ",
              perturbations.size(), " perturbations");
  for (size_t i = 0; i < points.size(); ++i) {
    auto point = points[i].ptr();  // a shared_ptr: the undo lambda may call non-const setters
    undo_.push_back([point, before = point->perturbation()] { point->set_perturbation(before); });
    point->set_perturbation(perturbations[i]);
  }
}

}  // namespace qrobust::models
