#pragma once
// The one gnuplot driver of the reports: each plot is a script NAME.gp written into the run
// directory beside the data it reads and run there to make NAME.png, so a user can edit and
// re-run it. Without gnuplot the scripts are still written, with a warning.
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace dpm::experiments::report {

struct Plot {
  std::string name;  // NAME.gp makes NAME.png
  std::string script;
};

// One curve of a curve plot: its key title, a gnuplot style ("linespoints pt 7", "lines dt 2")
// and its points.
struct Curve {
  std::string title, style;
  std::vector<std::pair<double, double>> xy;
};

// Writes DIR/NAME.dat (one data block per curve, numbers as plot_number) and returns the plot
// drawing every curve from it; `settings` are gnuplot commands before `plot` (title, labels,
// axes), each line ending in '\n'. A plot should hold the handful of curves it is about.
Plot curve_plot(const std::filesystem::path& dir, const std::string& name,
                const std::string& settings, const std::vector<Curve>& curves);

// Writes every DIR/NAME.gp and runs gnuplot on it inside DIR (its messages go to
// DIR/gnuplot.log, this run's only). Returns the PNG files made. A missing gnuplot or a script it
// rejects is a warning on stderr starting "dpmlab <command>: warning:", never an error.
std::vector<std::string> render_plots(const std::vector<Plot>& plots,
                                      const std::filesystem::path& dir, const std::string& command);

}  // namespace dpm::experiments::report
