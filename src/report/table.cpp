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

// One table: a row per variant (or per quantizer setting), a column per configuration.
struct Grid {
  std::string group, split;  // the quantizer setting (or variant) the table is about
  nlohmann::json settings;
  std::vector<std::string> rows;
  std::map<std::string, std::map<std::string, SeedValues>> values;  // row -> column -> seed -> accuracy
};

// The sweep header without what differs between the runs of one table.
nlohmann::json table_settings(const nlohmann::json& sweep) {
  auto settings = sweep.at("header");
  for (const char* key : {"checkpoint", "elapsed_seconds", "git_sha", "libtorch", "seed"}) settings.erase(key);
  return settings;
}

// Groups the entries into one Grid per (group, split), in the entries' order, and collects the
// columns. `by_variant`: groups are quantizer settings and rows variants; otherwise the reverse.
std::vector<Grid> grids(const std::vector<SweepEntry>& entries, bool by_variant, std::vector<std::string>& columns) {
  std::vector<Grid> out;
  for (const auto& entry : entries) {
    const auto& group = by_variant ? entry.quantizer : entry.variant;
    const auto& row = by_variant ? entry.variant : entry.quantizer;
    auto grid = std::find_if(out.begin(), out.end(),
                             [&](const Grid& g) { return g.group == group && g.split == entry.split; });
    if (grid == out.end()) {
      out.push_back({group, entry.split, by_variant ? table_settings(entry.sweep) : nlohmann::json::object(), {}, {}});
      grid = out.end() - 1;
    }
    if (std::find(grid->rows.begin(), grid->rows.end(), row) == grid->rows.end()) {
      grid->rows.push_back(row);
      if (!by_variant) grid->settings[row] = table_settings(entry.sweep);
    }
    for (const auto& sweep_row : entry.sweep.at("rows")) {
      const auto config = sweep_row.at("config").get<std::string>();
      grid->values[row][config][entry.seed] = sweep_row.at("accuracy").get<double>();
      if (std::find(columns.begin(), columns.end(), config) == columns.end()) columns.push_back(config);
    }
  }
  return out;
}

// {group_key, "split", "settings", "rows": [{row_key, "accuracy"}], "comparison": [{row_key, "difference"}]};
// the comparison only when the grid has the reference row.
nlohmann::json grid_json(const Grid& g, const std::string& reference, const char* group_key, const char* row_key) {
  nlohmann::json rows = nlohmann::json::array(), comparison = nlohmann::json::array();
  for (const auto& row : g.rows) {
    nlohmann::json accuracy = nlohmann::json::object();
    for (const auto& [column, values] : g.values.at(row)) accuracy[column] = summary_json(values);
    rows.push_back({{row_key, row}, {"accuracy", accuracy}});
  }
  nlohmann::json table = {{group_key, g.group}, {"split", g.split}, {"settings", g.settings}, {"rows", rows}};
  const auto reference_values = g.values.find(reference);
  if (reference_values == g.values.end()) return table;
  for (const auto& row : g.rows) {
    if (row == reference) continue;
    nlohmann::json difference = nlohmann::json::object();
    for (const auto& [column, values] : g.values.at(row))
      if (reference_values->second.count(column))
        difference[column] = difference_json(values, reference_values->second.at(column));
    comparison.push_back({{row_key, row}, {"difference", difference}});
  }
  table["comparison"] = comparison;
  return table;
}

nlohmann::json make(const std::string& experiment, const std::vector<SweepEntry>& entries, const std::string& reference,
                    bool by_variant) {
  std::vector<std::string> columns;
  nlohmann::json tables = nlohmann::json::array();
  for (const auto& g : grids(entries, by_variant, columns))
    tables.push_back(by_variant ? grid_json(g, reference, "quantizer", "variant") : grid_json(g, reference, "variant", "quantizer"));
  return {{"experiment", experiment},
          {"rows_are", by_variant ? "variant" : "quantizer"},
          {"reference", reference},
          {"columns", columns},
          {"tables", tables}};
}

}  // namespace

nlohmann::json make_table(const std::string& experiment, const std::vector<SweepEntry>& entries,
                          const std::string& reference) {
  return make(experiment, entries, reference, true);
}

nlohmann::json make_quantizer_table(const std::string& experiment, const std::vector<SweepEntry>& entries,
                                    const std::string& reference_quantizer) {
  return make(experiment, entries, reference_quantizer, false);
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
  const bool by_variant = table.value("rows_are", std::string("variant")) == "variant";
  const char* row_key = by_variant ? "variant" : "quantizer";
  const char* group_key = by_variant ? "quantizer" : "variant";
  std::ostringstream md, csv;
  md << "# " << table.at("experiment").get<std::string>() << ": accuracy (%)"
     << (by_variant ? "" : " by quantizer setting, one table per variant")
     << "\n\nCells: mean ± std (number of seeds) over seeds; each seed's value is the mean over its "
        "calibration draws. Differences: mean paired difference from "
     << (by_variant ? "" : "the quantizer setting ") << reference
     << " (paired by seed) [95 % t-interval]; bold where the interval excludes 0.\n";
  csv << "table,variant,quantizer,split,column,mean,std,n,low,high\n";
  auto header_row = [&]() {
    md << "| " << row_key << " |";
    for (const auto& c : columns) md << " " << c << " |";
    md << "\n| --- |";
    for (size_t i = 0; i < columns.size(); ++i) md << " --- |";
    md << "\n";
  };
  for (const auto& t : table.at("tables")) {
    const auto group = t.at(group_key).get<std::string>();
    const auto split = t.at("split").get<std::string>();
    const std::string source = "table " + group + ", " + split;
    md << "\n## " << group << ", " << split << " split\n\n";
    if (by_variant) {
      md << settings_text(t.at("settings"), source) << "\n\n";
    } else {
      for (const auto& row : t.at("rows")) {
        const auto quantizer = row.at("quantizer").get<std::string>();
        md << "- " << quantizer << ": " << settings_text(t.at("settings").at(quantizer), source + ", " + quantizer) << "\n";
      }
      md << "\n";
    }
    // A CSV line names the variant and the quantizer setting whichever the rows are.
    auto csv_names = [&](const std::string& row) {
      return by_variant ? row + "," + group : group + "," + row;
    };
    header_row();
    for (const auto& row : t.at("rows")) {
      const auto label = row.at(row_key).get<std::string>();
      md << "| " << label << " |";
      for (const auto& c : columns) md << " " << cell(row.at("accuracy"), c) << " |";
      md << "\n";
      for (const auto& [column, s] : row.at("accuracy").items())
        csv << "accuracy," << csv_names(label) << "," << split << "," << column << "," << s.at("mean").dump() << ","
            << s.at("std").dump() << "," << s.at("n") << ",,\n";
    }
    if (!t.contains("comparison")) continue;
    md << "\nDifference from " << reference << ":\n\n";
    header_row();
    for (const auto& row : t.at("comparison")) {
      const auto label = row.at(row_key).get<std::string>();
      md << "| " << label << " |";
      for (const auto& c : columns) md << " " << difference_cell(row.at("difference"), c) << " |";
      md << "\n";
      for (const auto& [column, d] : row.at("difference").items())
        csv << "difference," << csv_names(label) << "," << split << "," << column << "," << d.at("mean").dump() << ","
            << d.at("std").dump() << "," << d.at("n") << ","
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
