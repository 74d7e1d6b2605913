#include "report/table.h"

#include <algorithm>
#include <iomanip>
#include <map>
#include <sstream>

#include "config/quant_settings.h"
#include "report/gnuplot.h"
#include "stats/summary.h"
#include "util/atomic_file.h"

namespace qrobust::report {

namespace {

// Per (quantizer, split) table, per variant, per column: seed -> accuracy.
using SeedValues = std::map<int64_t, double>;

nlohmann::json summary_json(const SeedValues& values) {
  std::vector<double> v;
  std::vector<int64_t> seeds;
  for (const auto& [seed, value] : values) seeds.push_back(seed), v.push_back(value);
  const auto s = stats::summarize(v);
  return {{"mean", s.mean}, {"std", s.std}, {"n", s.n}, {"min", s.min}, {"max", s.max}, {"seeds", seeds}, {"values", v}};
}

nlohmann::json difference_json(const SeedValues& variant, const SeedValues& reference) {
  std::vector<double> a, b;
  for (const auto& [seed, value] : variant) {
    auto found = reference.find(seed);
    if (found == reference.end()) continue;
    a.push_back(value);
    b.push_back(found->second);
  }
  const auto d = stats::paired_difference(a, b);
  return {{"mean", d.difference.mean}, {"std", d.difference.std}, {"n", d.difference.n}, {"low", d.low},
          {"high", d.high},           {"defined", d.defined},      {"excludes_zero", d.excludes_zero()}};
}

}  // namespace

nlohmann::json make_table(const std::string& experiment, const std::vector<SweepEntry>& entries,
                          const std::string& reference) {
  std::vector<std::string> columns;
  struct Table {
    std::string quantizer, split;
    nlohmann::json settings;
    std::vector<std::string> variants;
    std::map<std::string, std::map<std::string, SeedValues>> values;  // variant -> column -> seed -> accuracy
  };
  std::vector<Table> tables;
  for (const auto& entry : entries) {
    auto table = std::find_if(tables.begin(), tables.end(),
                              [&](const Table& t) { return t.quantizer == entry.quantizer && t.split == entry.split; });
    if (table == tables.end()) {
      auto settings = entry.sweep.at("header");
      for (const char* key : {"checkpoint", "elapsed_seconds", "git_sha", "libtorch", "seed"}) settings.erase(key);
      tables.push_back({entry.quantizer, entry.split, settings, {}, {}});
      table = tables.end() - 1;
    }
    if (std::find(table->variants.begin(), table->variants.end(), entry.variant) == table->variants.end())
      table->variants.push_back(entry.variant);
    for (const auto& row : entry.sweep.at("rows")) {
      const auto config = row.at("config").get<std::string>();
      table->values[entry.variant][config][entry.seed] = row.at("accuracy").get<double>();
      if (std::find(columns.begin(), columns.end(), config) == columns.end()) columns.push_back(config);
    }
  }
  nlohmann::json out_tables = nlohmann::json::array();
  for (const auto& t : tables) {
    nlohmann::json rows = nlohmann::json::array(), comparison = nlohmann::json::array();
    for (const auto& variant : t.variants) {
      nlohmann::json accuracy = nlohmann::json::object();
      for (const auto& [column, values] : t.values.at(variant)) accuracy[column] = summary_json(values);
      rows.push_back({{"variant", variant}, {"accuracy", accuracy}});
    }
    auto reference_values = t.values.find(reference);
    if (reference_values != t.values.end())
      for (const auto& variant : t.variants) {
        if (variant == reference) continue;
        nlohmann::json difference = nlohmann::json::object();
        for (const auto& [column, values] : t.values.at(variant))
          if (reference_values->second.count(column))
            difference[column] = difference_json(values, reference_values->second.at(column));
        comparison.push_back({{"variant", variant}, {"difference", difference}});
      }
    nlohmann::json table = {{"quantizer", t.quantizer}, {"split", t.split}, {"settings", t.settings}, {"rows", rows}};
    if (reference_values != t.values.end()) table["comparison"] = comparison;
    out_tables.push_back(table);
  }
  return {{"experiment", experiment}, {"reference", reference}, {"columns", columns}, {"tables", out_tables}};
}

namespace {

std::string settings_text(const nlohmann::json& s, const std::string& source) {
  std::ostringstream out;
  out << config::QuantSettings::from_json(s, source).describe() << ", " << s.value("samples", 0) << " images, "
      << s.value("calibration_samples", 0) << " calibration images x " << s.value("calibration_draws", 1) << " draws";
  return out.str();
}

std::string number(double value, bool sign = false) {
  std::ostringstream out;
  out << std::fixed << std::setprecision(2) << (sign && value >= 0 ? "+" : "") << value;
  return out.str();
}

// mean ± std (n), or the value alone for one seed.
std::string cell(const nlohmann::json& accuracy, const std::string& column) {
  if (!accuracy.contains(column)) return "";
  const auto& s = accuracy[column];
  if (s.at("n").get<int64_t>() < 2) return number(s.at("mean").get<double>());
  return number(s.at("mean").get<double>()) + " ± " + number(s.at("std").get<double>()) + " (" +
         std::to_string(s.at("n").get<int64_t>()) + ")";
}

// +mean [low, high], bold when the interval excludes 0.
std::string difference_cell(const nlohmann::json& difference, const std::string& column) {
  if (!difference.contains(column)) return "";
  const auto& d = difference[column];
  const std::string mean = number(d.at("mean").get<double>(), true);
  if (!d.at("defined").get<bool>()) return mean + " (n=" + std::to_string(d.at("n").get<int64_t>()) + ")";
  const std::string shown = d.at("excludes_zero").get<bool>() ? "**" + mean + "**" : mean;
  return shown + " [" + number(d.at("low").get<double>(), true) + ", " + number(d.at("high").get<double>(), true) + "]";
}

}  // namespace

void write_table(const nlohmann::json& table, const std::string& dir, const std::string& name) {
  const auto columns = table.at("columns").get<std::vector<std::string>>();
  const auto reference = table.value("reference", std::string("none"));
  std::ostringstream md, csv;
  md << "# " << table.at("experiment").get<std::string>()
     << ": accuracy (%)\n\nCells: mean ± std (number of seeds) over seeds; each seed's value is the mean over its "
        "calibration draws. Differences: mean paired difference from "
     << reference << " (paired by seed) [95 % t-interval]; bold where the interval excludes 0.\n";
  csv << "table,variant,quantizer,split,column,mean,std,n,low,high\n";
  auto header_row = [&](const char* first) {
    md << "| " << first << " |";
    for (const auto& c : columns) md << " " << c << " |";
    md << "\n| --- |";
    for (size_t i = 0; i < columns.size(); ++i) md << " --- |";
    md << "\n";
  };
  for (const auto& t : table.at("tables")) {
    const auto quantizer = t.at("quantizer").get<std::string>();
    const auto split = t.at("split").get<std::string>();
    md << "\n## " << quantizer << ", " << split << " split\n\n" << settings_text(t.at("settings"), "table " + quantizer + ", " + split) << "\n\n";
    header_row("variant");
    for (const auto& row : t.at("rows")) {
      const auto variant = row.at("variant").get<std::string>();
      md << "| " << variant << " |";
      for (const auto& c : columns) md << " " << cell(row.at("accuracy"), c) << " |";
      md << "\n";
      for (const auto& [column, s] : row.at("accuracy").items())
        csv << "accuracy," << variant << "," << quantizer << "," << split << "," << column << "," << s.at("mean").dump()
            << "," << s.at("std").dump() << "," << s.at("n") << ",,\n";
    }
    if (!t.contains("comparison")) continue;
    md << "\nDifference from " << reference << ":\n\n";
    header_row("variant");
    for (const auto& row : t.at("comparison")) {
      const auto variant = row.at("variant").get<std::string>();
      md << "| " << variant << " |";
      for (const auto& c : columns) md << " " << difference_cell(row.at("difference"), c) << " |";
      md << "\n";
      for (const auto& [column, d] : row.at("difference").items())
        csv << "difference," << variant << "," << quantizer << "," << split << "," << column << "," << d.at("mean").dump()
            << "," << d.at("std").dump() << "," << d.at("n") << ","
            << (d.at("defined").get<bool>() ? d.at("low").dump() + "," + d.at("high").dump() : std::string(",")) << "\n";
    }
  }
  util::write_file_atomically(dir + "/" + name + ".json", table.dump(2) + "\n");
  util::write_file_atomically(dir + "/" + name + ".md", md.str());
  util::write_file_atomically(dir + "/" + name + ".csv", csv.str());
}

std::vector<std::string> write_plots(const nlohmann::json& table, const std::string& dir, std::string& warning) {
  if (!has_gnuplot()) {
    warning = "gnuplot not found: no plots written (install Debian's gnuplot-nox)";
    return {};
  }
  const auto columns = table.at("columns").get<std::vector<std::string>>();
  // One plot per quantizer: its test table, or its first table when it has none.
  std::vector<std::string> quantizers;
  std::map<std::string, nlohmann::json> chosen;
  for (const auto& t : table.at("tables")) {
    const auto quantizer = t.at("quantizer").get<std::string>();
    if (!chosen.count(quantizer)) quantizers.push_back(quantizer), chosen[quantizer] = t;
    else if (t.at("split") == "test") chosen[quantizer] = t;
  }
  std::vector<std::string> written;
  for (const auto& quantizer : quantizers) {
    const auto& t = chosen[quantizer];
    const auto& rows = t.at("rows");
    // Data: one line per configuration, a (mean, std) pair of columns per variant.
    std::ostringstream data;
    for (const auto& c : columns) {
      data << c;
      for (const auto& row : rows) {
        const auto& accuracy = row.at("accuracy");
        if (accuracy.contains(c)) data << " " << accuracy[c].at("mean").dump() << " " << accuracy[c].at("std").dump();
        else data << " NaN NaN";
      }
      data << "\n";
    }
    std::ostringstream setup, plot;
    setup << "set datafile missing 'NaN'\n" << line_colours() << "set key outside right\nset ylabel 'accuracy (%)'\n"
          << "set xlabel 'weight / activation bits'\nset yrange [0:100]\nset grid ytics\nset bars small\n"
          << "set title '" << table.at("experiment").get<std::string>() << ": " << quantizer << ", "
          << t.at("split").get<std::string>() << " split, mean ± std over seeds' noenhanced\n";
    plot << "plot ";
    for (size_t i = 0; i < rows.size(); ++i) {
      const size_t mean_column = 2 + 2 * i;
      plot << (i ? ", " : "") << (i ? "''" : "DATA") << " using 0:" << mean_column << ":" << mean_column + 1
           << (i ? "" : ":xtic(1)") << " with yerrorlines lt " << i + 1 << " lw 2 pt " << (i + 1) % 7 + 4 << " title '"
           << rows[i].at("variant").get<std::string>() << "'";
    }
    for (const auto& file : render_gnuplot(dir + "/plot_" + quantizer, data.str(), setup.str(), plot.str()))
      written.push_back(file);
  }
  return written;
}

}  // namespace qrobust::report
