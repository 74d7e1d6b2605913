#include "report/gradient_norms.h"

#include <algorithm>
#include <fstream>
#include <map>
#include <sstream>

#include "report/gnuplot.h"
#include "stats/summary.h"
#include "util/atomic_file.h"

namespace qrobust::report {

nlohmann::json last_gradient_norms(const std::string& train_log_path) {
  std::ifstream log(train_log_path);
  std::string line;
  nlohmann::json last;
  while (std::getline(log, line)) {
    const auto record = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (record.is_object() && record.contains("gradient_norms")) last = record["gradient_norms"];
  }
  return last;
}

std::vector<std::string> write_gradient_norms(const std::string& experiment, const std::vector<GradientNormEntry>& entries,
                                              const std::vector<std::string>& layers,
                                              const std::vector<std::string>& points, const std::string& dir,
                                              std::string& warning) {
  std::vector<std::string> variants;
  // kind -> variant -> element -> per-seed values
  std::map<std::string, std::map<std::string, std::map<std::string, std::vector<double>>>> values;
  for (const auto& entry : entries) {
    if (!entry.gradient_norms.is_object()) continue;
    if (std::find(variants.begin(), variants.end(), entry.variant) == variants.end()) variants.push_back(entry.variant);
    for (const char* kind : {"weight_l1", "activation_l1"}) {
      const auto norms = entry.gradient_norms.value(kind, nlohmann::json::object());
      for (const auto& [element, value] : norms.items())
        if (value.is_number()) values[kind][entry.variant][element].push_back(value.get<double>());
    }
  }
  nlohmann::json doc = {{"experiment", experiment}};
  std::ostringstream data;
  for (const auto& [kind, elements] : {std::pair<const char*, const std::vector<std::string>*>{"weight_l1", &layers},
                                       {"activation_l1", &points}}) {
    nlohmann::json rows = nlohmann::json::array();
    for (size_t i = 0; i < elements->size(); ++i) {
      const auto& element = (*elements)[i];
      nlohmann::json row = {{"element", element}};
      data << i << " \"" << element << "\"";
      for (const auto& variant : variants) {
        const auto& per_seed = values[kind][variant][element];
        const auto s = stats::summarize(per_seed);
        if (s.n > 0) row[variant] = {{"mean", s.mean}, {"std", s.std}, {"n", s.n}};
        data << " " << (s.n > 0 ? std::to_string(s.mean) + " " + std::to_string(s.std) : std::string("NaN NaN"));
      }
      data << "\n";
      rows.push_back(row);
    }
    doc[kind] = rows;
    data << "\n\n";  // a new gnuplot data block
  }
  util::write_file_atomically(dir + "/gradient_norms.json", doc.dump(2) + "\n");
  if (!has_gnuplot()) {
    warning = "gnuplot not found: no gradient-norm plot written (install Debian's gnuplot-nox)";
    return {};
  }
  std::ostringstream setup, plot;
  setup << "set datafile missing 'NaN'\n" << line_colours() << "set logscale y\nset grid ytics\nset bars small\n"
        << "set xtics rotate by -60 font ',7'\nset key top right font ',9'\n";
  plot << "set multiplot layout 1,2 title '" << experiment << ": gradient l1 norms on the probe batch, last epoch' noenhanced\n";
  for (const auto& [block, title] : {std::pair<int, const char*>{0, "|dCE/dW_l|_1 per layer"}, {1, "|dCE/da_l|_1 per point"}}) {
    plot << "set title '" << title << "' noenhanced\nplot ";
    for (size_t i = 0; i < variants.size(); ++i)
      plot << (i ? ", " : "") << (i ? "''" : "DATA") << " index " << block << " using 1:" << 3 + 2 * i << ":" << 4 + 2 * i
           << (i ? "" : ":xtic(2)") << " with yerrorlines lt " << i + 1 << " lw 2 pt " << (i + 1) % 7 + 4 << " title '"
           << variants[i] << "'";
    plot << "\n";
  }
  plot << "unset multiplot";
  return render_gnuplot(dir + "/plot_gradient_norms", data.str(), setup.str(), plot.str());
}

}  // namespace qrobust::report
