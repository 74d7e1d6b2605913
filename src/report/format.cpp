#include "report/format.h"

#include <iomanip>
#include <sstream>

#include "stats/summary.h"

namespace qrobust::report {

std::string fixed(double value, int digits) {
  std::ostringstream out;
  out << std::fixed << std::setprecision(digits) << value;
  return out.str();
}

std::string mean_std(const std::vector<double>& values, int digits) {
  const auto s = stats::summarize(values);
  if (s.n < 2) return fixed(s.mean, digits);
  return fixed(s.mean, digits) + " ± " + fixed(s.std, digits);
}

}  // namespace qrobust::report
