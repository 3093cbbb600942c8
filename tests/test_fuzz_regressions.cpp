// Untrusted input. Replays every seed (fuzz/corpus/<target>/) and every input that once broke a
// parser (fuzz/regressions/<target>/) through the fuzz targets themselves (fuzz/targets.hpp), so
// each past finding stays fixed in every build, sanitized or not (a target throws for a finding);
// and checks that every loader of safetensors files applies the reader's limits.
#include <catch2/catch.hpp>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "autograd/io/safetensors.hpp"
#include "datasets/gmm.hpp"
#include "diffusion/checkpoint.hpp"
#include "fuzz/fixtures.hpp"
#include "fuzz/targets.hpp"
#include "nn/checkpoint.hpp"
#include "tests/temp_dir.hpp"

namespace fs = std::filesystem;
using dpm::testing::TempDir;
using namespace dpm;

namespace {

std::vector<uint8_t> file_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Feeds every file below fuzz/<folder>/<target>/ to its target; returns how many there were.
size_t replay(const std::string& folder) {
  size_t count = 0;
  for (const auto& target : fuzz::all_targets()) {
    fs::path dir = fs::path(DPM_FUZZ_DIR) / folder / target.name;
    if (!fs::is_directory(dir)) continue;
    for (const auto& entry : fs::directory_iterator(dir)) {
      if (!entry.is_regular_file()) continue;
      std::vector<uint8_t> bytes = file_bytes(entry.path());
      INFO("fuzz target " << target.name << " on " << entry.path().string());
      REQUIRE_NOTHROW(target.run(bytes.data(), bytes.size()));
      ++count;
    }
  }
  return count;
}

std::string le64(uint64_t value) {
  std::string bytes;
  for (int i = 0; i < 8; ++i) bytes.push_back(static_cast<char>((value >> (8 * i)) & 0xff));
  return bytes;
}

std::string safetensors_bytes(const std::string& header, const std::string& data) {
  return le64(header.size()) + header + data;
}

// The message of the SafetensorsError `load` throws; fails the test for anything else.
std::string reader_error(const std::function<void()>& load) {
  try {
    load();
  } catch (const SafetensorsError& e) {
    return e.what();
  }
  FAIL("no SafetensorsError");
  return "";
}

}  // namespace

TEST_CASE("every fuzz seed passes its target", "[fuzz]") {
  CHECK(replay("corpus") >= fuzz::all_targets().size());
}

TEST_CASE("every input that once broke a parser is handled", "[fuzz]") {
  CHECK(replay("regressions") > 0);
}

TEST_CASE("every loader of safetensors files refuses absurd files before allocating", "[limits]") {
  // One key beyond the limit plus the allowance for "__metadata__".
  std::string many_tensors = "{";
  for (int64_t i = 0; i < kSafetensorsMaxTensors + 2; ++i)
    many_tensors += (i ? ",\"t" : "\"t") + std::to_string(i) + "\":0";
  many_tensors += "}";
  struct Case {
    std::string label;
    std::string bytes;
    std::string expected;  // part of the message
  };
  const std::vector<Case> cases = {
      {"header length over the limit", le64(kSafetensorsMaxHeaderBytes + 1) + "{}",
       "exceeds the limit of 100000000 bytes"},
      {"2^40 elements declared over 4 bytes",
       safetensors_bytes(R"({"w":{"dtype":"F32","shape":[1099511627776],"data_offsets":[0,4]}})",
                         std::string(4, '\0')),
       "has 1099511627776 elements"},
      {"offsets beyond the file",
       safetensors_bytes(R"({"w":{"dtype":"F32","shape":[2305843009213693952],)"
                         R"("data_offsets":[0,9223372036854775808]}})",
                         std::string(4, '\0')),
       "ends beyond the data region of 4 bytes"},
      {"more tensors than the limit", safetensors_bytes(many_tensors, ""),
       "more than 100000 tensors"},
  };

  TempDir dir("dpm_limits");
  const std::string path = dir.file("absurd.safetensors");
  auto model = fuzz::make_small_model();
  fuzz::TinyTrainer tiny = fuzz::make_tiny_trainer();
  const std::vector<std::pair<std::string, std::function<void()>>> loaders = {
      {"read_safetensors", [&] { read_safetensors(path); }},
      {"nn::load_state", [&] { nn::load_state(*model, path); }},
      {"nn::load_model", [&] { nn::load_model(path); }},
      {"diffusion::load_dpm_checkpoint", [&] { diffusion::load_dpm_checkpoint(path); }},
      {"Trainer::resume", [&] { tiny.trainer->resume(path); }},
      {"datasets::load_gmm", [&] { datasets::load_gmm(path); }},
  };
  for (const Case& c : cases) {
    INFO("case: " << c.label);
    {
      std::ofstream out(path, std::ios::binary);
      out.write(c.bytes.data(), static_cast<std::streamsize>(c.bytes.size()));
    }
    for (const auto& [name, load] : loaders) {
      INFO("loader: " << name);
      CHECK_THAT(reader_error(load), Catch::Contains(path) && Catch::Contains(c.expected));
    }
    INFO("loader: read_safetensors_from_memory");
    CHECK_THAT(reader_error([&] { read_safetensors_from_memory(c.bytes, "in-memory copy"); }),
               Catch::Contains("in-memory copy") && Catch::Contains(c.expected));
  }
}

TEST_CASE("the header parser's value budget bounds what a header can make it allocate",
          "[limits]") {
  // 32 values per allowed tensor; this budget is hit inside one shape, before any check of the
  // entry could run.
  std::string header = R"({"w":{"shape":[0)";
  for (int64_t i = 0; i < 32 * kSafetensorsMaxTensors; ++i) header += ",0";
  header += "]}}";
  CHECK_THAT(reader_error([&] { read_safetensors_from_memory(safetensors_bytes(header, "")); }),
             Catch::Contains("holds more than 3200000 values"));
}

TEST_CASE("the memory reader and the file reader agree", "[limits]") {
  TempDir dir("dpm_memory_reader");
  const std::string path = dir.file("model.safetensors");
  auto model = fuzz::make_small_model();
  nn::save_state(path, *model, {{"note", "x"}});
  std::vector<uint8_t> raw = file_bytes(path);
  const std::string bytes(raw.begin(), raw.end());
  SafeTensors from_file = read_safetensors(path);
  SafeTensors from_memory = read_safetensors_from_memory(bytes, path);
  CHECK(from_memory.source == path);
  CHECK(from_memory.metadata == from_file.metadata);
  REQUIRE(from_memory.tensors.size() == from_file.tensors.size());
  for (size_t i = 0; i < from_file.tensors.size(); ++i) {
    CHECK(from_memory.tensors[i].first == from_file.tensors[i].first);
    CHECK(from_memory.tensors[i].second.to_vector() == from_file.tensors[i].second.to_vector());
  }
  // Cut anywhere, both report the same problem.
  for (size_t cut : {size_t{0}, size_t{7}, size_t{8}, size_t{100}, bytes.size() - 1}) {
    INFO("cut at " << cut);
    std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(cut));
    CHECK(reader_error([&] { read_safetensors(path); }) ==
          reader_error([&] { read_safetensors_from_memory(bytes.substr(0, cut), path); }));
  }
}
