// The numbers of denoise-bench, audit and bound do not move: each run of tests/golden/commands.txt
// is repeated in a copy of tests/golden/inputs/ (a small GMM data set and two small trained
// networks) and every JSON and CSV file it wrote is compared with the one captured in
// tests/golden/expected/ (tests/golden/make_golden.sh), exactly, apart from wall and CPU times.
// The runs use one thread: the same seed and thread count give bitwise-identical numbers.
#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/temp_dir.hpp"

namespace fs = std::filesystem;
using dpm::testing::TempDir;

namespace {

const fs::path kGoldenDir = fs::path(DPMLAB_SOURCE_DIR) / "tests" / "golden";

// Fields and CSV columns that hold times, which no two runs share.
bool is_timing(const std::string& name) {
  static const std::set<std::string> timings = {"seconds", "cpu_seconds", "wall_seconds",
                                                "elapsed_seconds"};
  return timings.count(name) > 0;
}

nlohmann::json without_timings(const nlohmann::json& value) {
  if (value.is_object()) {
    nlohmann::json kept = nlohmann::json::object();
    for (const auto& [key, item] : value.items())
      if (!is_timing(key)) kept[key] = without_timings(item);
    return kept;
  }
  if (value.is_array()) {
    nlohmann::json kept = nlohmann::json::array();
    for (const auto& item : value) kept.push_back(without_timings(item));
    return kept;
  }
  return value;
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE(in.good());
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::vector<std::string> split(const std::string& text, char separator) {
  std::vector<std::string> parts;
  std::stringstream in(text);
  for (std::string part; std::getline(in, part, separator);) parts.push_back(part);
  return parts;
}

// The CSV's lines with its timing columns (named in the header) removed.
std::vector<std::string> csv_without_timings(const std::string& text) {
  const std::vector<std::string> lines = split(text, '\n');
  REQUIRE(!lines.empty());
  const std::vector<std::string> header = split(lines[0], ',');
  std::vector<std::string> kept;
  for (const std::string& line : lines) {
    const std::vector<std::string> cells = split(line, ',');
    std::string row;
    bool first = true;
    for (size_t i = 0; i < cells.size(); ++i) {
      if (i < header.size() && is_timing(header[i])) continue;
      row += (first ? "" : ",") + cells[i];
      first = false;
    }
    kept.push_back(row);
  }
  return kept;
}

struct GoldenRun {
  std::string name, arguments;
};

std::vector<GoldenRun> golden_runs() {
  std::vector<GoldenRun> runs;
  std::ifstream in(kGoldenDir / "commands.txt");
  REQUIRE(in.good());
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    const size_t space = line.find(' ');
    REQUIRE(space != std::string::npos);
    runs.push_back({line.substr(0, space), line.substr(space + 1)});
  }
  return runs;
}

int run_dpmlab(const fs::path& dir, const std::string& arguments, std::string& output) {
  const std::string line = "cd '" + dir.string() + "' && '" + DPMLAB_BINARY + "' " + arguments +
                           " 2>&1";
  FILE* pipe = popen(line.c_str(), "r");
  REQUIRE(pipe != nullptr);
  char buffer[4096];
  for (size_t n; (n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0;) output.append(buffer, n);
  const int status = pclose(pipe);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace

TEST_CASE("denoise-bench, audit and bound write the golden numbers", "[golden]") {
  const std::vector<GoldenRun> runs = golden_runs();
  REQUIRE(runs.size() >= 5);
  for (const GoldenRun& run : runs) {
    DYNAMIC_SECTION(run.name) {
      TempDir dir("dpm_golden");
      const fs::path work = dir.path / "run";
      fs::copy(kGoldenDir / "inputs", work, fs::copy_options::recursive);
      std::string output;
      const int code = run_dpmlab(
          work, run.arguments + " --out " + run.name + " --threads 1 --quiet", output);
      INFO("dpmlab " << run.arguments << "\n" << output);
      REQUIRE(code == 0);
      const fs::path expected_dir = kGoldenDir / "expected" / run.name;
      REQUIRE(fs::is_directory(expected_dir));
      int compared = 0;
      for (const fs::directory_entry& entry : fs::directory_iterator(expected_dir)) {
        const fs::path expected = entry.path();
        const fs::path actual = work / run.name / expected.filename();
        INFO(expected.filename().string());
        REQUIRE(fs::exists(actual));
        if (expected.extension() == ".json") {
          const nlohmann::json want = without_timings(nlohmann::json::parse(read_text(expected)));
          const nlohmann::json got = without_timings(nlohmann::json::parse(read_text(actual)));
          INFO("diff (RFC 6902): " << nlohmann::json::diff(want, got).dump());
          CHECK(got == want);
        } else {
          CHECK(csv_without_timings(read_text(actual)) ==
                csv_without_timings(read_text(expected)));
        }
        ++compared;
      }
      CHECK(compared >= 2);
    }
  }
}
