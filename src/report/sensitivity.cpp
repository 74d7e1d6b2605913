#include "report/sensitivity.h"

#include <algorithm>
#include <filesystem>
#include <iomanip>
#include <map>
#include <sstream>

#include "report/format.h"
#include "report/gnuplot.h"
#include "stats/summary.h"
#include "util/atomic_file.h"

namespace qrobust::report {

std::vector<std::string> write_sensitivity(const nlohmann::json& doc, const std::string& json_path,
                                           std::string& warning) {
  const auto& h = doc.at("header");
  const int bits = h.at("bits").get<int>();
  std::ostringstream md, csv, data;
  md << "# Sensitivity of " << h.at("model").get<std::string>() << " at " << bits << " bits ("
     << h.at("split").get<std::string>() << " split, " << h.at("samples") << " images)\n\n"
     << "checkpoint `" << h.value("checkpoint", std::string()) << "`; weights " << h.at("weight_granularity").get<std::string>()
     << "; first/last layer " << h.at("first_last").get<std::string>() << "; recipe "
     << h.value("recipe", std::string("round-to-nearest")) << "\n\n"
     << "float: " << fixed(doc.at("fp32").at("accuracy").get<double>(), 2) << " %, loss "
     << fixed(doc.at("fp32").at("loss").get<double>(), 4) << "; everything quantized: "
     << fixed(doc.at("all").at("accuracy").get<double>(), 2) << " %, loss increase "
     << fixed(doc.at("all").at("loss_increase").get<double>(), 4) << ", first-order bound "
     << fixed(doc.at("all").at("bound").get<double>(), 4) << "\n\n"
     << "One in: only this element quantized. One out: everything quantized but this element.\n\n"
     << "| element | kind | bits | one in: accuracy | one in: loss increase | bound term | one out: accuracy |\n"
     << "| --- | --- | --- | --- | --- | --- | --- |\n";
  csv << "kind,name,index,bits,one_in_accuracy,one_in_loss,one_out_accuracy,one_out_loss,bound_term,loss_increase\n";
  for (const auto& row : doc.at("rows")) {
    const auto name = row.at("name").get<std::string>();
    const auto kind = row.at("kind").get<std::string>();
    const double in = row.at("one_in").at("accuracy").get<double>(), out = row.at("one_out").at("accuracy").get<double>();
    md << "| " << name << " | " << kind << " | " << row.at("bits") << " | " << fixed(in, 2) << " | "
       << fixed(row.at("loss_increase").get<double>(), 4) << " | " << fixed(row.at("bound_term").get<double>(), 4) << " | "
       << fixed(out, 2) << " |\n";
    csv << kind << "," << name << "," << row.at("index") << "," << row.at("bits") << "," << row.at("one_in").at("accuracy").dump()
        << "," << row.at("one_in").at("loss").dump() << "," << row.at("one_out").at("accuracy").dump() << ","
        << row.at("one_out").at("loss").dump() << "," << row.at("bound_term").dump() << ","
        << row.at("loss_increase").dump() << "\n";
    data << "\"" << (kind == "weights" ? "W " : "a ") << name << "\" " << in << " " << out << "\n";
  }
  const auto stem = std::filesystem::path(json_path).replace_extension("").string();
  util::write_file_atomically(json_path, doc.dump(2) + "\n");
  util::write_file_atomically(stem + ".md", md.str());
  util::write_file_atomically(stem + ".csv", csv.str());
  if (!has_gnuplot()) {
    warning = "gnuplot not found: no sensitivity chart written (install Debian's gnuplot-nox)";
    return {};
  }
  std::ostringstream setup;
  setup << line_colours() << "set style data histograms\nset style histogram clustered gap 1\n"
        << "set style fill solid 0.8 border -1\nset boxwidth 0.9\nset yrange [0:100]\nset grid ytics\n"
        << "set ylabel 'accuracy (%)'\nset xtics rotate by -60 font ',8'\nset key outside top center horizontal\n"
        << "set title '" << h.at("model").get<std::string>() << " at " << bits << " bits: float "
        << fixed(doc.at("fp32").at("accuracy").get<double>(), 2) << ", all quantized "
        << fixed(doc.at("all").at("accuracy").get<double>(), 2) << "' noenhanced\n";
  return render_gnuplot(stem, data.str(), setup.str(),
                        "plot DATA using 2:xtic(1) title 'only this element quantized' lt 1, "
                        "'' using 3 title 'all but this element quantized' lt 2");
}

void write_sensitivity_table(const std::string& experiment, const std::vector<SensitivityEntry>& entries,
                             const std::string& dir) {
  // quantizer -> element (in model order) -> variant -> per-seed one in, one out, bound term.
  struct Figures {
    std::vector<double> one_in, one_out, bound;
  };
  std::vector<std::string> quantizers, variants;
  std::map<std::string, std::vector<std::string>> elements;
  std::map<std::string, std::map<std::string, std::map<std::string, Figures>>> figures;
  std::map<std::string, nlohmann::json> headers;
  // quantizer -> variant -> per-seed accuracy in float and with everything quantized.
  struct WholeModel {
    std::vector<double> fp32, all;
  };
  std::map<std::string, std::map<std::string, WholeModel>> whole;
  for (const auto& entry : entries) {
    if (std::find(quantizers.begin(), quantizers.end(), entry.quantizer) == quantizers.end())
      quantizers.push_back(entry.quantizer);
    if (std::find(variants.begin(), variants.end(), entry.variant) == variants.end()) variants.push_back(entry.variant);
    headers[entry.quantizer] = entry.sensitivity.at("header");
    auto& w = whole[entry.quantizer][entry.variant];
    w.fp32.push_back(entry.sensitivity.at("fp32").at("accuracy").get<double>());
    w.all.push_back(entry.sensitivity.at("all").at("accuracy").get<double>());
    auto& names = elements[entry.quantizer];
    for (const auto& row : entry.sensitivity.at("rows")) {
      const auto element = (row.at("kind") == "weights" ? "W " : "a ") + row.at("name").get<std::string>();
      if (std::find(names.begin(), names.end(), element) == names.end()) names.push_back(element);
      auto& f = figures[entry.quantizer][element][entry.variant];
      f.one_in.push_back(row.at("one_in").at("accuracy").get<double>());
      f.one_out.push_back(row.at("one_out").at("accuracy").get<double>());
      f.bound.push_back(row.at("bound_term").get<double>());
    }
  }
  std::ostringstream md;
  nlohmann::json doc = {{"experiment", experiment}, {"tables", nlohmann::json::array()}};
  md << "# " << experiment << ": per-layer sensitivity\n\nOne in: accuracy (%) with only this element quantized. "
     << "One out: everything quantized but this element. Bound: the element's first-order bound term. "
     << "Mean ± std over seeds.\n";
  for (const auto& quantizer : quantizers) {
    const auto& h = headers[quantizer];
    md << "\n## " << quantizer << " at " << h.at("bits") << " bits, " << h.at("split").get<std::string>()
       << " split (first/last layer " << h.at("first_last").get<std::string>() << ")\n\n";
    // Per variant: the element most fragile by itself (lowest one-in accuracy) and the one
    // whose float copy recovers the most (highest one-out accuracy).
    for (const auto& v : variants) {
      if (!whole[quantizer].count(v)) continue;
      std::string fragile, recovering;
      double lowest_in = 101, highest_out = -1;
      for (const auto& element : elements[quantizer]) {
        auto found = figures[quantizer][element].find(v);
        if (found == figures[quantizer][element].end()) continue;
        const double in = stats::summarize(found->second.one_in).mean, out = stats::summarize(found->second.one_out).mean;
        if (in < lowest_in) lowest_in = in, fragile = element;
        if (out > highest_out) highest_out = out, recovering = element;
      }
      const auto& w = whole[quantizer][v];
      md << "- " << v << ": float " << mean_std(w.fp32, 2) << " %, everything quantized " << mean_std(w.all, 2)
         << " %. Most fragile alone: **" << fragile << "** (only it quantized: "
         << mean_std(figures[quantizer][fragile][v].one_in, 2) << " %). Left float, **" << recovering
         << "** recovers the most (everything else quantized: " << mean_std(figures[quantizer][recovering][v].one_out, 2)
         << " %).\n";
    }
    md << "\n| element |";
    for (const auto& v : variants) md << " " << v << ": one in | " << v << ": one out | " << v << ": bound |";
    md << "\n| --- |";
    for (size_t i = 0; i < variants.size(); ++i) md << " --- | --- | --- |";
    md << "\n";
    nlohmann::json rows = nlohmann::json::array();
    for (const auto& element : elements[quantizer]) {
      md << "| " << element << " |";
      nlohmann::json row = {{"element", element}};
      for (const auto& v : variants) {
        auto found = figures[quantizer][element].find(v);
        if (found == figures[quantizer][element].end()) {
          md << " | | |";
          continue;
        }
        const auto& f = found->second;
        md << " " << mean_std(f.one_in, 2) << " | " << mean_std(f.one_out, 2) << " | " << mean_std(f.bound, 4) << " |";
        row[v] = {{"one_in", stats::summarize(f.one_in).mean},
                  {"one_out", stats::summarize(f.one_out).mean},
                  {"bound_term", stats::summarize(f.bound).mean},
                  {"seeds", f.one_in.size()}};
      }
      md << "\n";
      rows.push_back(row);
    }
    doc["tables"].push_back({{"quantizer", quantizer}, {"header", h}, {"rows", rows}});
  }
  util::write_file_atomically(dir + "/sensitivity.json", doc.dump(2) + "\n");
  util::write_file_atomically(dir + "/sensitivity.md", md.str());
}

}  // namespace qrobust::report
