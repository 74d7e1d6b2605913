#pragma once
// Drawing with gnuplot (Debian's gnuplot-nox): one script per figure, rendered to SVG and PNG.
#include <string>
#include <vector>

namespace qrobust::report {

bool has_gnuplot();

// Writes STEM.dat (`data`) and STEM.gp (`setup`, then `plot` once per terminal), runs gnuplot
// and moves STEM.svg and STEM.png into place, each only once complete. `plot` may name the data
// file as DATA. Returns the two images; a gnuplot error is a RuntimeFailure with its message.
std::vector<std::string> render_gnuplot(const std::string& stem, const std::string& data, const std::string& setup,
                                        const std::string& plot);

// Removes what render_gnuplot(stem, ...) writes, where it is there.
void remove_rendering(const std::string& stem);

// Colours that stay apart on a white background, for up to twelve lines before they repeat
// (gnuplot's default cycle is eight), as `set linetype` commands.
std::string line_colours();

}  // namespace qrobust::report
