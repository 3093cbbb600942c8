#pragma once
// Writing report files: every file is written to a temporary name beside it and renamed, so a
// reader never sees half a report.
#include <filesystem>
#include <string>
#include <vector>

namespace dpm::experiments::report {

// What a report writer wrote into its directory: the markdown report (which a command also
// prints) and the names of the files, plots last.
struct Written {
  std::string markdown;
  std::vector<std::string> files;
  std::vector<std::string> plots;  // the PNGs gnuplot made (none without gnuplot)
};

// Throws std::runtime_error naming the file when it cannot be written.
void write_text(const std::filesystem::path& path, const std::string& text);

// A CSV: the header line, then one line per row, each row's cells already formatted
// (csv_number) and joined by commas.
void write_csv(const std::filesystem::path& path, const std::string& header,
               const std::vector<std::vector<std::string>>& rows);

}  // namespace dpm::experiments::report
