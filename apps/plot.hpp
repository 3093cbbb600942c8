#pragma once
// Plots of the commands that write them (audit, denoise-bench): each is a gnuplot script NAME.gp
// written into the run directory beside the data it reads and run there to make NAME.png, so a
// user can edit and re-run it. Without gnuplot the scripts are still written, with a warning.
#include <filesystem>
#include <string>
#include <vector>

namespace dpm::cli {

struct Plot {
  std::string name;  // NAME.gp makes NAME.png
  std::string script;
};

// A number for a data file gnuplot reads: %.10g, and "NaN" (which gnuplot skips) when not finite.
std::string plot_cell(double v);

// A number for a table a person reads, printf-formatted by `pattern`.
std::string format_number(double v, const char* pattern = "%.4g");

// Writes `text` to `path`; throws std::runtime_error naming the file when it cannot.
void write_text(const std::filesystem::path& path, const std::string& text);

// Writes every DIR/NAME.gp and runs gnuplot on it inside DIR (its messages go to
// DIR/gnuplot.log, this run's only). Returns the PNG files made. A missing gnuplot or a script it
// rejects is a warning on stderr starting "dpmlab <command>: warning:", never an error.
std::vector<std::string> render_plots(const std::vector<Plot>& plots,
                                      const std::filesystem::path& dir, const std::string& command);

}  // namespace dpm::cli
