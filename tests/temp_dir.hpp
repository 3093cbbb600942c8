#pragma once
// TempDir: a fresh directory per test case (unique per process and instance), removed afterwards.
#include <unistd.h>

#include <filesystem>
#include <string>

namespace dpm::testing {

struct TempDir {
  std::filesystem::path path;
  explicit TempDir(const std::string& prefix = "dpm_test") {
    static int counter = 0;
    path = std::filesystem::temp_directory_path() /
           (prefix + "_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    std::filesystem::create_directories(path);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string file(const std::string& name) const { return (path / name).string(); }
};

}  // namespace dpm::testing
