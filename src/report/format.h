#pragma once
// Numbers as the Markdown tables print them.
#include <string>
#include <vector>

namespace qrobust::report {

// `value` with `digits` decimals.
std::string fixed(double value, int digits);
// "mean ± std" of `values` (the mean alone for fewer than two).
std::string mean_std(const std::vector<double>& values, int digits);

}  // namespace qrobust::report
