#include "apps/plot.hpp"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <stdexcept>

namespace dpm::cli {
namespace {

namespace fs = std::filesystem;

// An executable `name` on PATH, or empty.
std::string find_on_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path ? path : "");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    const fs::path candidate = fs::path(dir.empty() ? "." : dir) / name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate.string();
  }
  return "";
}

// Runs `gnuplot script` inside dir, its messages appended to dir/gnuplot.log; returns its exit
// status. Everything exec needs is prepared before fork (only async-signal-safe calls after it).
int run_gnuplot(const std::string& gnuplot, const fs::path& dir, const std::string& script) {
  const std::string dir_text = dir.string();
  std::vector<char*> argv = {const_cast<char*>(gnuplot.c_str()), const_cast<char*>(script.c_str()),
                             nullptr};
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    if (::chdir(dir_text.c_str()) != 0) ::_exit(127);
    const int log = ::open("gnuplot.log", O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (log >= 0) ::dup2(log, STDERR_FILENO);
    ::execv(gnuplot.c_str(), argv.data());
    ::_exit(127);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace

std::string plot_cell(double v) {
  if (!std::isfinite(v)) return "NaN";
  char buffer[40];
  std::snprintf(buffer, sizeof buffer, "%.10g", v);
  return buffer;
}

std::string format_number(double v, const char* pattern) {
  char buffer[40];
  std::snprintf(buffer, sizeof buffer, pattern, v);
  return buffer;
}

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  if (!out) throw std::runtime_error("cannot write '" + path.string() + "'");
}

std::vector<std::string> render_plots(const std::vector<Plot>& plots, const fs::path& dir,
                                      const std::string& command) {
  for (const Plot& plot : plots) write_text(dir / (plot.name + ".gp"), plot.script);
  const std::string gnuplot = find_on_path("gnuplot");
  if (gnuplot.empty()) {
    std::cerr << "dpmlab " << command
              << ": warning: gnuplot not found on PATH; the plot scripts (*.gp) are written, run "
                 "`gnuplot NAME.gp` in "
              << dir.string() << "\n";
    return {};
  }
  fs::remove(dir / "gnuplot.log");  // this run's messages only
  std::vector<std::string> made;
  for (const Plot& plot : plots) {
    const int status = run_gnuplot(gnuplot, dir, plot.name + ".gp");
    if (status != 0)
      std::cerr << "dpmlab " << command << ": warning: gnuplot " << plot.name << ".gp exited with "
                << status << " (its messages are in " << (dir / "gnuplot.log").string() << ")\n";
    else
      made.push_back(plot.name + ".png");
  }
  return made;
}

}  // namespace dpm::cli
