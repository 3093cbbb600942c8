#include "experiments/report/files.hpp"

#include <unistd.h>

#include <fstream>
#include <stdexcept>

namespace dpm::experiments::report {

void write_text(const std::filesystem::path& path, const std::string& text) {
  const std::filesystem::path tmp = path.string() + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream out(tmp);
    out << text;
    if (!out) throw std::runtime_error("cannot write '" + path.string() + "'");
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) throw std::runtime_error("cannot write '" + path.string() + "': " + ec.message());
}

void write_csv(const std::filesystem::path& path, const std::string& header,
               const std::vector<std::vector<std::string>>& rows) {
  std::string text = header + "\n";
  for (const auto& row : rows) {
    for (size_t i = 0; i < row.size(); ++i) text += (i ? "," : "") + row[i];
    text += "\n";
  }
  write_text(path, text);
}

}  // namespace dpm::experiments::report
