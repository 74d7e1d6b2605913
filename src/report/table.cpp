#include "report/table.h"

#include <cstdlib>
#include <filesystem>
#include <iomanip>
#include <map>
#include <sstream>

#include "util/atomic_file.h"
#include "util/errors.h"

namespace qrobust::report {
namespace fs = std::filesystem;

nlohmann::json make_table(const std::string& experiment, const std::vector<SweepEntry>& entries) {
  std::vector<std::string> columns;
  nlohmann::json tables = nlohmann::json::array();
  for (const auto& entry : entries) {
    nlohmann::json accuracy = nlohmann::json::object();
    for (const auto& row : entry.sweep.at("rows")) {
      const auto config = row.at("config").get<std::string>();
      accuracy[config] = row.at("accuracy");
      if (std::find(columns.begin(), columns.end(), config) == columns.end()) columns.push_back(config);
    }
    auto table = std::find_if(tables.begin(), tables.end(), [&](const nlohmann::json& t) {
      return t["quantizer"] == entry.quantizer && t["split"] == entry.split;
    });
    if (table == tables.end()) {
      auto settings = entry.sweep.at("header");
      for (const char* key : {"checkpoint", "elapsed_seconds", "git_sha", "libtorch"}) settings.erase(key);
      tables.push_back({{"quantizer", entry.quantizer}, {"split", entry.split}, {"settings", settings},
                        {"rows", nlohmann::json::array()}});
      table = tables.end() - 1;
    }
    (*table)["rows"].push_back({{"variant", entry.variant}, {"accuracy", accuracy}});
  }
  return {{"experiment", experiment}, {"columns", columns}, {"tables", tables}};
}

namespace {

std::string settings_text(const nlohmann::json& s) {
  std::ostringstream out;
  out << "weights " << s.value("weight_granularity", "?") << (s.value("weight_symmetric", true) ? " symmetric " : " asymmetric ")
      << s.value("weight_estimator", "?") << ", activations " << (s.value("act_symmetric", false) ? "symmetric " : "asymmetric ")
      << s.value("act_estimator", "?") << ", first/last layer " << s.value("first_last", "?") << ", BN folded "
      << (s.value("bn_fold", true) ? "yes" : "no") << ", " << s.value("samples", 0) << " images";
  return out.str();
}

std::string cell(const nlohmann::json& accuracy, const std::string& column) {
  if (!accuracy.contains(column)) return "";
  std::ostringstream out;
  out << std::fixed << std::setprecision(2) << accuracy[column].get<double>();
  return out.str();
}

}  // namespace

void write_table(const nlohmann::json& table, const std::string& dir) {
  const auto columns = table.at("columns").get<std::vector<std::string>>();
  std::ostringstream md, csv;
  md << "# " << table.at("experiment").get<std::string>() << ": accuracy (%)\n";
  csv << "variant,quantizer,split";
  for (const auto& c : columns) csv << "," << c;
  csv << "\n";
  for (const auto& t : table.at("tables")) {
    const auto quantizer = t.at("quantizer").get<std::string>();
    const auto split = t.at("split").get<std::string>();
    md << "\n## " << quantizer << ", " << split << " split\n\n" << settings_text(t.at("settings")) << "\n\n| variant |";
    for (const auto& c : columns) md << " " << c << " |";
    md << "\n| --- |";
    for (size_t i = 0; i < columns.size(); ++i) md << " --- |";
    md << "\n";
    for (const auto& row : t.at("rows")) {
      const auto variant = row.at("variant").get<std::string>();
      md << "| " << variant << " |";
      csv << variant << "," << quantizer << "," << split;
      for (const auto& c : columns) {
        md << " " << cell(row.at("accuracy"), c) << " |";
        csv << "," << (row.at("accuracy").contains(c) ? row.at("accuracy")[c].dump() : "");
      }
      md << "\n";
      csv << "\n";
    }
  }
  util::write_file_atomically(dir + "/table.json", table.dump(2) + "\n");
  util::write_file_atomically(dir + "/table.md", md.str());
  util::write_file_atomically(dir + "/table.csv", csv.str());
}

std::vector<std::string> write_plots(const nlohmann::json& table, const std::string& dir, std::string& warning) {
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0) {
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
    // Data: one line per configuration, one column per variant.
    std::ostringstream data;
    data << "config";
    for (const auto& row : rows) data << " \"" << row.at("variant").get<std::string>() << "\"";
    data << "\n";
    for (const auto& c : columns) {
      data << c;
      for (const auto& row : rows) data << " " << (row.at("accuracy").contains(c) ? cell(row.at("accuracy"), c) : "NaN");
      data << "\n";
    }
    const std::string stem = dir + "/plot_" + quantizer;
    util::write_file_atomically(stem + ".dat", data.str());
    std::ostringstream script;
    // Twelve distinguishable colours before they repeat (gnuplot's default cycle is eight).
    script << "set datafile missing 'NaN'\n";
    const char* colours[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
                             "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#000000", "#aec7e8"};
    for (int i = 0; i < 12; ++i) script << "set linetype " << i + 1 << " lc rgb '" << colours[i] << "'\n";
    script << "set linetype cycle 12\nset key autotitle columnhead\nset key outside right\n"
           << "set ylabel 'accuracy (%)'\nset xlabel 'weight / activation bits'\nset yrange [0:100]\nset grid ytics\n"
           << "set title '" << table.at("experiment").get<std::string>() << ": " << quantizer << ", "
           << t.at("split").get<std::string>() << " split' noenhanced\n";
    const std::string plot = "plot for [i=2:" + std::to_string(rows.size() + 1) + "] '" + stem +
                             ".dat' using 0:i:xtic(1) with linespoints lt (i - 1) lw 2 pt (i % 7 + 4)\n";
    for (const auto& [terminal, extension] : {std::pair<const char*, const char*>{"svg size 800,450 noenhanced", "svg"},
                                              {"pngcairo size 800,450 noenhanced", "png"}}) {
      const std::string target = stem + "." + extension;
      script << "set terminal " << terminal << "\nset output '" << target << ".tmp'\n" << plot << "set output\n";
    }
    util::write_file_atomically(stem + ".gp", script.str());
    const std::string command = "gnuplot '" + stem + ".gp' 2>'" + stem + ".log'";
    if (std::system(command.c_str()) != 0) {
      // gnuplot echoes the offending line first; its message is the last line.
      std::istringstream log(util::read_file(stem + ".log"));
      std::string line, message;
      while (std::getline(log, line))
        if (!line.empty()) message = line;
      throw RuntimeFailure("gnuplot failed on " + stem + ".gp: " + message);
    }
    fs::remove(stem + ".log");
    for (const char* extension : {"svg", "png"}) {
      fs::rename(stem + "." + extension + ".tmp", stem + "." + extension);
      written.push_back(stem + "." + extension);
    }
  }
  return written;
}

}  // namespace qrobust::report
