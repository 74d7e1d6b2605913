#include "quant/range_estimator.h"


namespace qrobust::quant {
namespace {

// values as rows: one per channel, or a single row.
torch::Tensor rows_of(const torch::Tensor& values, bool per_channel) {
  const auto v = values.detach().to(torch::kFloat);
  return per_channel ? v.reshape({v.size(0), -1}) : v.reshape({1, -1});
}

Range shaped(torch::Tensor min, torch::Tensor max, bool per_channel) {
  if (!per_channel) return {min.reshape({}), max.reshape({})};
  return {min, max};
}

Range minmax_range(const torch::Tensor& rows) { return {std::get<0>(rows.min(1)), std::get<0>(rows.max(1))}; }

Range percentile_range(const torch::Tensor& rows, double percentile, bool symmetric) {
  const double q = percentile / 100.0;
  if (symmetric) {
    const auto magnitude = torch::quantile(rows.abs(), q, 1);
    return {-magnitude, magnitude};
  }
  return {torch::quantile(rows, 1.0 - q, 1), torch::quantile(rows, q, 1)};
}

// Tries clipping ranges [α·min, α·max] for α on a grid and keeps, per row, the one with the
// smallest quantization MSE at spec.bits.
Range mse_range(const torch::Tensor& rows, const QuantizerSpec& spec) {
  const auto full = minmax_range(rows);
  torch::Tensor best_error = torch::full({rows.size(0)}, std::numeric_limits<float>::infinity());
  torch::Tensor best_min = full.min.clone(), best_max = full.max.clone();
  QuantizerSpec row_spec = spec;
  row_spec.per_channel = true;  // one quantizer per row of `rows`
  for (int step = 1; step <= 100; ++step) {
    const double alpha = step / 100.0;
    const auto lo = full.min * alpha, hi = full.max * alpha;
    const auto params = affine_params(lo, hi, row_spec);
    const auto error = (fake_quantize(rows, params) - rows).pow(2).mean(1);
    const auto better = error < best_error;
    best_error = torch::where(better, error, best_error);
    best_min = torch::where(better, lo, best_min);
    best_max = torch::where(better, hi, best_max);
  }
  return {best_min, best_max};
}

}  // namespace

Range estimate_range(const torch::Tensor& values, const EstimatorSpec& estimator, const QuantizerSpec& spec) {
  const auto rows = rows_of(values, spec.per_channel);
  Range range;
  switch (estimator.kind) {
    case Estimator::kMinMax: range = minmax_range(rows); break;
    case Estimator::kPercentile: range = percentile_range(rows, estimator.percentile, spec.symmetric); break;
    case Estimator::kMse: range = mse_range(rows, spec); break;
  }
  return shaped(range.min, range.max, spec.per_channel);
}

ActivationObserver::ActivationObserver(EstimatorSpec estimator, int64_t sample_limit, uint64_t seed)
    : estimator_(std::move(estimator)), sample_limit_(sample_limit), generator_(at::detail::createCPUGenerator(seed)) {}

void ActivationObserver::observe(const torch::Tensor& activation) {
  const auto values = activation.detach().to(torch::kFloat).flatten();
  const auto lo = values.min().cpu(), hi = values.max().cpu();
  min_ = min_.defined() ? torch::minimum(min_, lo) : lo;
  max_ = max_.defined() ? torch::maximum(max_, hi) : hi;
  seen_ += values.numel();
  if (estimator_.kind == Estimator::kMinMax) return;
  // A uniform sample without replacement of everything seen so far, whatever the batch sizes:
  // every value gets a uniform random key and the sample_limit_ smallest keys are kept.
  const auto cpu = values.cpu();
  const auto keys = torch::rand({cpu.numel()}, generator_);
  auto merged = sample_.defined() ? torch::cat({sample_, cpu}) : cpu;
  auto merged_keys = keys_.defined() ? torch::cat({keys_, keys}) : keys;
  if (merged.numel() > sample_limit_) {
    const auto kept = std::get<1>(merged_keys.topk(sample_limit_, 0, /*largest=*/false, /*sorted=*/false));
    merged = merged.index_select(0, kept);
    merged_keys = merged_keys.index_select(0, kept);
  }
  sample_ = merged;
  keys_ = merged_keys;
}

Range ActivationObserver::range(const QuantizerSpec& spec) const {
  TORCH_CHECK(seen_ > 0, "ActivationObserver: nothing observed");
  QuantizerSpec tensor_spec = spec;
  tensor_spec.per_channel = false;
  if (estimator_.kind == Estimator::kMinMax) return {min_.reshape({}), max_.reshape({})};
  auto sample = sample_;
  if (estimator_.kind == Estimator::kMse && sample.numel() > (1 << 16)) {  // the error search needs fewer values
    auto generator = at::detail::createCPUGenerator(0);
    sample = sample.index_select(0, torch::randperm(sample.numel(), generator, torch::kLong).narrow(0, 0, 1 << 16));
  }
  return estimate_range(sample, estimator_, tensor_spec);
}

}  // namespace qrobust::quant
