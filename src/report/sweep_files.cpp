#include "report/sweep_files.h"

#include <filesystem>
#include <iomanip>
#include <sstream>

#include "config/quant_settings.h"
#include "report/gnuplot.h"
#include "util/atomic_file.h"

namespace qrobust::report {

void write_sweep(const nlohmann::json& sweep, const std::string& json_path) {
  const auto& rows = sweep["rows"];
  const bool top5 = rows[0].contains("top5");
  const auto& h = sweep["header"];
  const bool draws = h.value("calibration_draws", 1) > 1;
  std::ostringstream md, csv;
  md << "# " << h["model"].get<std::string>() << " on " << h["dataset"].get<std::string>() << " ("
     << h["split"].get<std::string>() << " split, " << h["samples"] << " images)\n\n"
     << "checkpoint `" << h["checkpoint"].get<std::string>() << "`; "
     << config::QuantSettings::from_json(h, json_path).describe() << "; " << h["calibration_samples"] << " calibration images"
     << (draws ? " x " + std::to_string(h["calibration_draws"].get<int64_t>()) + " draws (accuracy: mean ± std [min, max]; other columns: means)"
               : std::string())
     << "\n\n"
     << "| config | W bits | A bits | accuracy |" << (top5 ? " top-5 |" : "")
     << " loss | KL to fp32 | first-order bound | loss increase |\n"
     << "| --- | --- | --- | --- |" << (top5 ? " --- |" : "") << " --- | --- | --- | --- |\n";
  csv << "config,weight_bits,act_bits,accuracy,accuracy_std,accuracy_min,accuracy_max," << (top5 ? "top5," : "")
      << "loss,kl_to_fp32,first_order_bound,loss_increase\n";
  md << std::fixed;
  for (const auto& row : rows) {
    md << "| " << row["config"].get<std::string>() << " | " << row["weight_bits"] << " | " << row["act_bits"] << " | "
       << std::setprecision(2) << row["accuracy"].get<double>();
    if (draws)
      md << " ± " << row["accuracy_std"].get<double>() << " [" << row["accuracy_min"].get<double>() << ", "
         << row["accuracy_max"].get<double>() << "]";
    md << " | ";
    if (top5) md << row["top5"].get<double>() << " | ";
    md << std::setprecision(4) << row["loss"].get<double>() << " | " << row["kl_to_fp32"].get<double>() << " | "
       << row["first_order_bound"].get<double>() << " | " << row["loss_increase"].get<double>() << " |\n";
    csv << row["config"].get<std::string>() << "," << row["weight_bits"] << "," << row["act_bits"] << ","
        << row["accuracy"].dump() << "," << row["accuracy_std"].dump() << "," << row["accuracy_min"].dump() << ","
        << row["accuracy_max"].dump() << "," << (top5 ? row["top5"].dump() + "," : "") << row["loss"].dump() << ","
        << row["kl_to_fp32"].dump() << "," << row["first_order_bound"].dump() << "," << row["loss_increase"].dump() << "\n";
  }
  const auto stem = std::filesystem::path(json_path).replace_extension("").string();
  util::write_file_atomically(json_path, sweep.dump(2) + "\n");
  util::write_file_atomically(stem + ".md", md.str());
  util::write_file_atomically(stem + ".csv", csv.str());
}

void remove_result_files(const std::string& json_path) {
  const auto stem = std::filesystem::path(json_path).replace_extension("").string();
  for (const char* extension : {".json", ".md", ".csv"}) std::filesystem::remove(stem + extension);
  std::filesystem::remove_all(stem + "_plans");  // a mixed-precision search's plans
  remove_rendering(stem);
}

}  // namespace qrobust::report
