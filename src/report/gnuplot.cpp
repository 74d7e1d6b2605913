#include "report/gnuplot.h"

#include <cstdlib>
#include <filesystem>
#include <sstream>

#include "util/atomic_file.h"
#include "util/errors.h"

namespace qrobust::report {
namespace fs = std::filesystem;

bool has_gnuplot() { return std::system("command -v gnuplot >/dev/null 2>&1") == 0; }

std::string line_colours() {
  std::ostringstream out;
  const char* colours[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
                           "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#000000", "#aec7e8"};
  for (int i = 0; i < 12; ++i) out << "set linetype " << i + 1 << " lc rgb '" << colours[i] << "'\n";
  out << "set linetype cycle 12\n";
  return out.str();
}

std::vector<std::string> render_gnuplot(const std::string& stem, const std::string& data, const std::string& setup,
                                        const std::string& plot) {
  util::write_file_atomically(stem + ".dat", data);
  std::string body = plot;
  for (size_t at = body.find("DATA"); at != std::string::npos; at = body.find("DATA", at))
    body.replace(at, 4, "'" + stem + ".dat'");
  std::ostringstream script;
  script << setup;
  for (const auto& [terminal, extension] : {std::pair<const char*, const char*>{"svg size 800,450 noenhanced", "svg"},
                                            {"pngcairo size 800,450 noenhanced", "png"}})
    script << "set terminal " << terminal << "\nset output '" << stem << "." << extension << ".tmp'\n"
           << body << "\nset output\n";
  util::write_file_atomically(stem + ".gp", script.str());
  const std::string command = "gnuplot '" + stem + ".gp' 2>'" + stem + ".log'";
  if (std::system(command.c_str()) != 0) {
    // gnuplot echoes the offending line first; its message is the last line.
    std::istringstream log(util::read_file(stem + ".log", util::kMaxResultFileBytes));
    std::string line, message;
    while (std::getline(log, line))
      if (!line.empty()) message = line;
    throw RuntimeFailure("gnuplot failed on " + stem + ".gp: " + message);
  }
  fs::remove(stem + ".log");
  std::vector<std::string> written;
  for (const char* extension : {"svg", "png"}) {
    fs::rename(stem + "." + extension + ".tmp", stem + "." + extension);
    written.push_back(stem + "." + extension);
  }
  return written;
}

void remove_rendering(const std::string& stem) {
  for (const char* extension : {".dat", ".gp", ".log", ".svg", ".png", ".svg.tmp", ".png.tmp"}) fs::remove(stem + extension);
}

}  // namespace qrobust::report
