#include "report/mixed_precision.h"

#include <algorithm>
#include <filesystem>
#include <iomanip>
#include <map>
#include <optional>
#include <sstream>

#include "report/format.h"
#include "report/gnuplot.h"
#include "stats/summary.h"
#include "util/atomic_file.h"

namespace qrobust::report {
namespace {

std::string budget_text(double budget) {
  std::ostringstream out;
  out << budget;
  return out.str();
}

std::string axis_unit(const std::string& axis) {
  return axis == "size" ? "average weight bits" : "average bit operations per MAC (w bits x a bits)";
}

std::string describe_plan(const nlohmann::json& plan) {
  std::ostringstream out;
  out << "weights";
  for (const auto& element : plan.at("layers")) out << " " << element.at("bits");
  out << "; activations";
  for (const auto& element : plan.at("points")) out << " " << element.at("bits");
  return out.str();
}

// The uniform row with the largest average at or below `average` (null when none is).
const nlohmann::json* uniform_at_or_below(const nlohmann::json& uniform, double average) {
  const nlohmann::json* best = nullptr;
  for (const auto& row : uniform) {
    const double a = row.at("average").get<double>();
    if (a <= average + 1e-9 && (best == nullptr || a > best->at("average").get<double>() ||
                                (a == best->at("average").get<double>() &&
                                 row.at("accuracy").get<double>() > best->at("accuracy").get<double>())))
      best = &row;
  }
  return best;
}

}  // namespace

std::string plan_file_path(const std::string& json_path, const std::string& criterion, double budget) {
  const auto stem = std::filesystem::path(json_path).replace_extension("").string();
  return stem + "_plans/" + criterion + "_" + budget_text(budget) + ".json";
}

std::vector<std::string> write_mixed_precision(const nlohmann::json& doc, const std::string& json_path,
                                               std::string& warning) {
  const auto& h = doc.at("header");
  const auto& settings = h.at("mixed_precision");
  const auto axis = settings.at("axis").get<std::string>();
  std::ostringstream md, csv, data;
  md << "# Mixed precision of " << h.at("model").get<std::string>() << " (" << h.at("split").get<std::string>()
     << " split, " << h.at("samples") << " images; criteria scored on " << h.at("scored_images") << " "
     << h.at("scored_split").get<std::string>() << " images)\n\n"
     << "checkpoint `" << h.value("checkpoint", std::string()) << "`; weights "
     << h.at("weight_granularity").get<std::string>() << "; first/last layer " << h.at("first_last").get<std::string>()
     << "; recipe " << h.value("recipe", std::string("round-to-nearest")) << "; " << h.at("calibration_draws")
     << " calibration draws; budgets in " << axis_unit(axis) << "; candidates: weights "
     << settings.at("weight_bits").dump() << ", activations " << settings.at("act_bits").dump() << "\n\n"
     << "float: " << fixed(doc.at("fp32").at("accuracy").get<double>(), 2) << " %\n\n"
     << "## What each criterion cost\n\n| criterion | seconds | passes over the scored images |\n| --- | --- | --- |\n";
  for (const auto& c : doc.at("criteria"))
    md << "| " << c.at("criterion").get<std::string>() << " | " << fixed(c.at("seconds").get<double>(), 1) << " | "
       << c.at("passes") << " |\n";
  md << "\n## Chosen plans (exact knapsack per budget)\n\n"
     << "| criterion | budget | average | accuracy | loss | predicted increase | uniform at or below | its accuracy | plan |\n"
     << "| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n";
  csv << "kind,criterion,budget,weight_bits,act_bits,average,size_bits,bit_ops,accuracy,accuracy_std,loss,predicted_increase\n";
  const auto& uniform = doc.at("uniform");
  std::map<std::string, std::vector<const nlohmann::json*>> by_criterion;
  std::vector<std::string> order;
  for (const auto& row : doc.at("plans")) {
    const auto criterion = row.at("criterion").get<std::string>();
    if (!by_criterion.count(criterion)) order.push_back(criterion);
    by_criterion[criterion].push_back(&row);
    const double average = row.at("average").get<double>();
    const auto* below = uniform_at_or_below(uniform, row.at("budget").get<double>());
    md << "| " << criterion << " | " << budget_text(row.at("budget").get<double>()) << " | " << fixed(average, 3)
       << " | " << mean_std(row.at("accuracy_draws").get<std::vector<double>>(), 2) << " | "
       << fixed(row.at("loss").get<double>(), 4) << " | " << fixed(row.at("predicted_increase").get<double>(), 4) << " | "
       << (below ? "w" + below->at("weight_bits").dump() + "a" + below->at("act_bits").dump() : "–") << " | "
       << (below ? fixed(below->at("accuracy").get<double>(), 2) : "–") << " | " << describe_plan(row.at("plan")) << " |\n";
    csv << "plan," << criterion << "," << row.at("budget").dump() << ",,," << row.at("average").dump() << ","
        << row.at("size_bits") << "," << row.at("bit_ops") << "," << row.at("accuracy").dump() << ","
        << row.at("accuracy_std").dump() << "," << row.at("loss").dump() << "," << row.at("predicted_increase").dump() << "\n";
  }
  md << "\n## Uniform\n\n| weights | activations | average | accuracy | loss |\n| --- | --- | --- | --- | --- |\n";
  data << "# uniform: average accuracy\n";
  for (const auto& row : uniform) {
    md << "| " << row.at("weight_bits") << " | " << row.at("act_bits") << " | " << fixed(row.at("average").get<double>(), 3)
       << " | " << mean_std(row.at("accuracy_draws").get<std::vector<double>>(), 2) << " | "
       << fixed(row.at("loss").get<double>(), 4) << " |\n";
    csv << "uniform,," << "," << row.at("weight_bits") << "," << row.at("act_bits") << "," << row.at("average").dump()
        << "," << row.at("size_bits") << "," << row.at("bit_ops") << "," << row.at("accuracy").dump() << ","
        << row.at("accuracy_std").dump() << "," << row.at("loss").dump() << ",\n";
    data << row.at("average").get<double>() << " " << row.at("accuracy").get<double>() << "\n";
  }
  for (const auto& criterion : order) {
    auto rows = by_criterion[criterion];
    std::sort(rows.begin(), rows.end(), [](const auto* a, const auto* b) {
      return a->at("average").template get<double>() < b->at("average").template get<double>();
    });
    data << "\n\n# " << criterion << "\n";
    for (const auto* row : rows) data << row->at("average").get<double>() << " " << row->at("accuracy").get<double>() << "\n";
  }

  const auto stem = std::filesystem::path(json_path).replace_extension("").string();
  for (const auto& row : doc.at("plans")) {
    const auto path = plan_file_path(json_path, row.at("criterion").get<std::string>(), row.at("budget").get<double>());
    std::filesystem::create_directories(std::filesystem::path(path).parent_path());
    util::write_file_atomically(path, row.at("plan").dump(2) + "\n");
  }
  util::write_file_atomically(json_path, doc.dump(2) + "\n");
  util::write_file_atomically(stem + ".md", md.str());
  util::write_file_atomically(stem + ".csv", csv.str());
  if (!has_gnuplot()) {
    warning = "gnuplot not found: no Pareto chart written (install Debian's gnuplot-nox)";
    return {};
  }
  std::ostringstream setup, plot;
  setup << line_colours() << "set grid\nset key bottom right\nset xlabel '" << axis_unit(axis)
        << "'\nset ylabel 'test accuracy (%)'\nset title '" << h.at("model").get<std::string>()
        << ": mixed precision against uniform'\n";
  plot << "plot DATA index 0 with points pt 7 ps 1.2 lc rgb 'black' title 'uniform'";
  for (size_t i = 0; i < order.size(); ++i)
    plot << ", DATA index " << i + 1 << " with linespoints lt " << i + 1 << " pt " << i + 4 << " title '" << order[i] << "'";
  return render_gnuplot(stem, data.str(), setup.str(), plot.str());
}

void write_mixed_precision_table(const std::string& experiment, const std::vector<MixedPrecisionEntry>& entries,
                                 const std::string& dir, const std::string& reference) {
  // Per (quantizer, criterion, budget), per variant, per seed: the plan's accuracy and the uniform's at or below.
  struct Seed {
    double plan = 0, average = 0;
    std::optional<double> uniform;
  };
  struct Cell {
    std::map<int64_t, Seed> seeds;
    std::string uniform_label;
  };
  std::map<std::string, std::map<std::string, std::map<double, std::map<std::string, Cell>>>> cells;
  std::vector<std::string> variants;
  for (const auto& entry : entries) {
    if (std::find(variants.begin(), variants.end(), entry.variant) == variants.end()) variants.push_back(entry.variant);
    const auto& uniform = entry.search.at("uniform");
    for (const auto& row : entry.search.at("plans")) {
      const double budget = row.at("budget").get<double>();
      auto& cell = cells[entry.quantizer][row.at("criterion").get<std::string>()][budget][entry.variant];
      auto& seed = cell.seeds[entry.seed];
      seed.plan = row.at("accuracy").get<double>();
      seed.average = row.at("average").get<double>();
      if (const auto* below = uniform_at_or_below(uniform, budget)) {
        seed.uniform = below->at("accuracy").get<double>();
        cell.uniform_label = "w" + below->at("weight_bits").dump() + "a" + below->at("act_bits").dump();
      }
    }
  }
  // "mean [low, high]" of a − b, the mean alone from one pair, "–" from none.
  auto difference_text = [](const std::vector<double>& a, const std::vector<double>& b) {
    if (a.empty()) return std::string("–");
    const auto d = stats::paired_difference(a, b);
    if (!d.defined) return fixed(d.difference.mean, 2);
    return fixed(d.difference.mean, 2) + " [" + fixed(d.low, 2) + ", " + fixed(d.high, 2) + "]";
  };
  std::ostringstream md;
  nlohmann::json doc{{"experiment", experiment}, {"reference", reference}, {"rows", nlohmann::json::array()}};
  md << "# " << experiment << ": mixed precision against uniform\n\n"
     << "Per budget and criterion: test accuracy of the chosen plan, mean ± std over seeds (each seed's figure is "
        "the mean over its calibration draws), its paired difference from the uniform configuration at the "
        "nearest budget at or below, and from "
     << reference << "'s plan at the same budget and criterion, each with its 95 % t-interval over seeds "
        "(defined from 2 seeds).\n";
  for (const auto& [quantizer, by_criterion] : cells) {
    md << "\n## " << quantizer << "\n\n| criterion | budget | variant | seeds | plan accuracy | uniform | uniform accuracy | "
          "plan − uniform [95 % CI] | plan − " << reference << " [95 % CI] |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n";
    for (const auto& [criterion, by_budget] : by_criterion)
      for (auto it = by_budget.rbegin(); it != by_budget.rend(); ++it)
        for (const auto& variant : variants) {
          const auto found = it->second.find(variant);
          if (found == it->second.end()) continue;
          const auto& cell = found->second;
          std::vector<int64_t> seeds;
          std::vector<double> plan, average, uniform;
          for (const auto& [seed, figures] : cell.seeds) {
            seeds.push_back(seed), plan.push_back(figures.plan), average.push_back(figures.average);
            if (figures.uniform) uniform.push_back(*figures.uniform);
          }
          const bool paired = uniform.size() == plan.size();
          const auto from_uniform = paired ? stats::paired_difference(plan, uniform) : stats::PairedDifference{};
          // Against the reference variant's plan, on the seeds both have.
          std::vector<double> mine, theirs;
          const auto reference_cell = it->second.find(reference);
          if (variant != reference && reference_cell != it->second.end())
            for (const auto& [seed, figures] : cell.seeds)
              if (const auto other = reference_cell->second.seeds.find(seed); other != reference_cell->second.seeds.end())
                mine.push_back(figures.plan), theirs.push_back(other->second.plan);
          md << "| " << criterion << " | " << budget_text(it->first) << " | " << variant << " | " << plan.size() << " | "
             << mean_std(plan, 2) << " | " << (paired ? cell.uniform_label : "–") << " | "
             << (paired ? mean_std(uniform, 2) : "–") << " | " << (paired ? difference_text(plan, uniform) : "–")
             << " | " << difference_text(mine, theirs) << " |\n";
          nlohmann::json row{{"quantizer", quantizer},
                             {"criterion", criterion},
                             {"budget", it->first},
                             {"variant", variant},
                             {"seeds", seeds},
                             {"plan_accuracy", plan},
                             {"average", average},
                             {"uniform", paired ? cell.uniform_label : ""},
                             {"uniform_accuracy", paired ? uniform : std::vector<double>{}},
                             {"difference_low", from_uniform.defined ? from_uniform.low : 0.0},
                             {"difference_high", from_uniform.defined ? from_uniform.high : 0.0}};
          if (!mine.empty()) {
            const auto d = stats::paired_difference(mine, theirs);
            row["versus_reference"] = {{"mean", d.difference.mean}, {"n", d.difference.n}, {"defined", d.defined},
                                       {"low", d.low},              {"high", d.high},      {"excludes_zero", d.excludes_zero()}};
          }
          doc["rows"].push_back(row);
        }
  }
  util::write_file_atomically(dir + "/mixed_precision.json", doc.dump(2) + "\n");
  util::write_file_atomically(dir + "/mixed_precision.md", md.str());
}

}  // namespace qrobust::report
