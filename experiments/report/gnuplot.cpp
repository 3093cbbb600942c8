#include "experiments/report/gnuplot.hpp"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <sstream>

#include "experiments/report/files.hpp"
#include "experiments/report/format.hpp"

namespace dpm::experiments::report {
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

Plot curve_plot(const fs::path& dir, const std::string& name, const std::string& settings,
                const std::vector<Curve>& curves) {
  std::ostringstream data;
  std::string plot = "plot ";
  for (size_t i = 0; i < curves.size(); ++i) {
    data << "# " << curves[i].title << "\n";
    for (const auto& [x, y] : curves[i].xy) data << plot_number(x) << ' ' << plot_number(y) << '\n';
    data << "\n\n";
    std::string title = curves[i].title;
    for (char& c : title)
      if (c == '\'') c = '"';
    plot += (i ? ", \\\n     " : "") +
            ("'" + name + ".dat' index " + std::to_string(i) + " using 1:2 with " +
             curves[i].style + " title '" + title + "'");
  }
  write_text(dir / (name + ".dat"), data.str());
  return {name, "set terminal pngcairo size 1000,750 noenhanced\nset output '" + name +
                    ".png'\nset key outside right top\nset grid\n" + settings + plot + "\n"};
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

}  // namespace dpm::experiments::report
