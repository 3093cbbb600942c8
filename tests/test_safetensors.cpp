#include <sys/resource.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>

#include "autograd/io/safetensors.hpp"
#include "autograd/rng.hpp"
#include "tests/temp_dir.hpp"

using dpm::Rng;
using dpm::SafeTensors;
using dpm::SafetensorsError;
using dpm::Shape;
using dpm::Tensor;
namespace fs = std::filesystem;
using dpm::testing::TempDir;

namespace {

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string le64(uint64_t value) {
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[static_cast<size_t>(i)] = static_cast<char>(value >> (8 * i));
  return bytes;
}

// A file with the given header text (unpadded: the reader must not require padding) and data.
std::string file_with(const std::string& header, const std::string& data) {
  return le64(header.size()) + header + data;
}

std::string float_bytes(std::initializer_list<float> values) {
  std::string bytes;
  for (float v : values) bytes.append(reinterpret_cast<const char*>(&v), sizeof(float));
  return bytes;
}

// The message of the SafetensorsError that reading `path` throws; fails the test otherwise.
std::string read_error(const std::string& path) {
  try {
    dpm::read_safetensors(path);
  } catch (const SafetensorsError& e) {
    return e.what();
  } catch (const std::exception& e) {
    FAIL("expected SafetensorsError, got another exception: " << e.what());
  }
  FAIL("expected SafetensorsError, reading succeeded");
  return "";
}

bool bitwise_equal(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape()) return false;
  std::vector<float> va = a.to_vector(), vb = b.to_vector();
  // memcmp with the null data() of an empty vector is undefined even for size 0 (UBSan).
  return va.empty() || std::memcmp(va.data(), vb.data(), va.size() * sizeof(float)) == 0;
}

Tensor random_tensor(const Shape& shape, Rng& rng) {
  Tensor t = Tensor::empty(shape);
  rng.fill_normal(t.data(), t.numel());
  return t;
}

bool has_temp_files(const fs::path& dir) {
  for (const auto& entry : fs::directory_iterator(dir))
    if (entry.path().filename().string().find(".tmp.") != std::string::npos) return true;
  return false;
}

}  // namespace

TEST_CASE("safetensors round trip is bitwise, in order, with metadata", "[safetensors]") {
  TempDir dir;
  Rng rng(7);
  float nan = std::numeric_limits<float>::quiet_NaN();
  float inf = std::numeric_limits<float>::infinity();
  float denormal = std::numeric_limits<float>::denorm_min();
  Tensor matrix = random_tensor({4, 3}, rng);
  std::vector<std::pair<std::string, Tensor>> tensors = {
      {"z.matrix", random_tensor({2, 3}, rng)},
      {"scalar", Tensor::scalar(-1.25f)},
      {"empty", Tensor::zeros({0, 4})},
      {"five_dims", random_tensor({1, 2, 3, 2, 2}, rng)},
      {"special", Tensor::from_vector({6}, {nan, -0.0f, inf, -inf, denormal, 3.0f})},
      {"transposed", matrix.transpose(0, 1)},  // non-contiguous: written in logical order
      {"also_empty", Tensor::zeros({3, 0})},
      {"unicode ü \"quoted\"", random_tensor({5}, rng)},
  };
  std::map<std::string, std::string> metadata = {
      {"format", "pt"}, {"note", "line1\nline2 \"q\" \\ ü"}, {"empty", ""}};
  std::string path = dir.file("model.safetensors");
  dpm::write_safetensors(path, tensors, metadata);

  std::string bytes = read_bytes(path);
  REQUIRE(bytes.size() >= 8);
  uint64_t header_size = 0;
  for (int i = 7; i >= 0; --i)
    header_size = (header_size << 8) | static_cast<unsigned char>(bytes[static_cast<size_t>(i)]);
  CHECK(header_size % 8 == 0);  // padded to 8-byte alignment like the reference
  CHECK(bytes.size() == 8 + header_size + 54 * sizeof(float));
  CHECK_FALSE(has_temp_files(dir.path));
  SafeTensors loaded = dpm::read_safetensors(path);
  CHECK(loaded.metadata == metadata);
  CHECK(loaded.source == path);
  REQUIRE(loaded.tensors.size() == tensors.size());
  // File order is data order; the two empty tensors share an offset with their successor, so
  // compare by name for those and check the order of the others.
  std::vector<std::string> sized_order;
  for (const auto& [name, t] : loaded.tensors)
    if (t.numel() > 0) sized_order.push_back(name);
  CHECK(sized_order == std::vector<std::string>{"z.matrix", "scalar", "five_dims", "special",
                                                "transposed", "unicode ü \"quoted\""});
  for (const auto& [name, original] : tensors) {
    INFO(name);
    CHECK(bitwise_equal(loaded.get(name), original));
  }
  CHECK(loaded.get("scalar").ndim() == 0);
  CHECK(loaded.get("empty").shape() == Shape{0, 4});
  CHECK_THROWS_WITH(loaded.get("absent"), Catch::Contains("absent") && Catch::Contains(path));

  // No metadata: "__metadata__" is omitted and reads back empty.
  dpm::write_safetensors(path, {{"a", Tensor::ones({2})}});
  CHECK(read_bytes(path).find("__metadata__") == std::string::npos);
  CHECK(dpm::read_safetensors(path).metadata.empty());
  // No tensors at all is a valid file.
  dpm::write_safetensors(path, {}, {{"only", "metadata"}});
  CHECK(dpm::read_safetensors(path).tensors.empty());
}

TEST_CASE("safetensors byte layout matches the format exactly", "[safetensors]") {
  TempDir dir;
  std::string path = dir.file("tiny.safetensors");
  dpm::write_safetensors(
      path, {{"b", Tensor::from_vector({2}, {1.0f, -2.0f})}, {"a", Tensor::scalar(0.5f)}},
      {{"k", "v"}});
  // Hand-built: 132 bytes of JSON padded with 4 spaces to 136 = 0x88; tensors in the given order.
  std::string json =
      R"({"__metadata__":{"k":"v"},"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
      R"("a":{"dtype":"F32","shape":[],"data_offsets":[8,12]}})";
  REQUIRE(json.size() == 132);
  std::string expected = std::string("\x88\0\0\0\0\0\0\0", 8) + json + "    " +
                         std::string("\x00\x00\x80\x3f", 4) +  // 1.0f
                         std::string("\x00\x00\x00\xc0", 4) +  // -2.0f
                         std::string("\x00\x00\x00\x3f", 4);   // 0.5f
  CHECK(read_bytes(path) == expected);
}

TEST_CASE("safetensors reader rejects hostile and corrupt files with a clear error",
          "[safetensors]") {
  TempDir dir;
  const std::string f32_2 = R"({"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  const std::string data8 = float_bytes({1, 2});
  std::string valid = dir.file("valid.safetensors");
  dpm::write_safetensors(valid, {{"w", Tensor::ones({4})}});
  std::string valid_bytes = read_bytes(valid);

  std::string many_keys = "{";
  for (int i = 0; i <= dpm::kSafetensorsMaxTensors + 1; ++i)
    many_keys += (i ? ",\"t" : "\"t") + std::to_string(i) + "\":0";
  many_keys += "}";

  struct Case {
    std::string label;
    std::string bytes;
    std::vector<std::string> expected;  // substrings of the message
  };
  std::vector<Case> cases = {
      {"empty file", "", {"0 bytes", "shorter than the 8-byte"}},
      {"7 bytes", std::string(7, '\0'), {"7 bytes", "shorter than the 8-byte"}},
      {"header length 2^63", le64(uint64_t{1} << 63) + "{}", {"9223372036854775808", "limit"}},
      {"header length beyond the file", le64(100) + "{}", {"header length 100", "2 bytes"}},
      {"zero header length", le64(0), {"JSON header is invalid"}},
      {"invalid JSON", file_with(R"({"w": {"dtype": )", ""), {"JSON header is invalid", "column"}},
      {"JSON array", file_with("[1, 2]", ""), {"of type array, expected an object"}},
      {"JSON string", file_with(R"("text")", ""), {"of type string, expected an object"}},
      {"invalid UTF-8", file_with("{\"\xff\":1}", ""), {"JSON header is invalid", "UTF-8"}},
      {"dtype F16",
       file_with(R"({"w":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}})", "abcd"),
       {"tensor 'w'", "\"F16\"", "F32"}},
      {"dtype not a string",
       file_with(R"({"w":{"dtype":3,"shape":[2],"data_offsets":[0,8]}})", data8),
       {"tensor 'w'", "dtype is 3"}},
      {"negative dimension",
       file_with(R"({"w":{"dtype":"F32","shape":[2,-1],"data_offsets":[0,8]}})", data8),
       {"tensor 'w'", "holds -1", "non-negative"}},
      {"fractional dimension",
       file_with(R"({"w":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}})", data8),
       {"tensor 'w'", "holds 2.5"}},
      {"shape not an array",
       file_with(R"({"w":{"dtype":"F32","shape":2,"data_offsets":[0,8]}})", data8),
       {"tensor 'w'", "shape is of type number"}},
      {"6 dimensions",
       file_with(R"({"w":{"dtype":"F32","shape":[1,1,1,1,1,2],"data_offsets":[0,8]}})", data8),
       {"tensor 'w'", "6 dimensions", "at most 5"}},
      {"shape product overflow",
       file_with(
           R"({"w":{"dtype":"F32","shape":[1099511627776,1099511627776],"data_offsets":[0,8]}})",
           data8),
       {"tensor 'w'", "more elements than fit in 64 bits"}},
      {"dimension beyond int64",
       file_with(R"({"w":{"dtype":"F32","shape":[18446744073709551615],"data_offsets":[0,8]}})",
                 data8),
       {"tensor 'w'", "18446744073709551615"}},
      {"offsets reversed",
       file_with(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", data8),
       {"tensor 'w'", "[8,0]", "begin after end"}},
      {"offsets beyond the data",
       file_with(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})", data8),
       {"tensor 'w'", "beyond the data region of 8 bytes"}},
      {"offsets not a pair",
       file_with(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8,16]}})", data8),
       {"tensor 'w'", "expected [begin, end]"}},
      {"negative offset",
       file_with(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}})", data8),
       {"tensor 'w'", "expected [begin, end]"}},
      {"overlapping tensors",
       file_with(R"({"a":)" + f32_2 + R"(,"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                 float_bytes({1, 2, 3})),
       {"tensor 'b'", "overlap tensor 'a'"}},
      {"gap between tensors",
       file_with(R"({"a":)" + f32_2 + R"(,"b":{"dtype":"F32","shape":[2],"data_offsets":[12,20]}})",
                 float_bytes({1, 2, 3, 4, 5})),
       {"tensor 'b'", "gap of 4 bytes after tensor 'a'"}},
      {"data not starting at 0",
       file_with(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                 float_bytes({1, 2, 3})),
       {"tensor 'w'", "gap of 4 bytes after the start"}},
      {"trailing bytes",
       file_with(R"({"w":)" + f32_2 + "}", data8 + "xy"),
       {"2 bytes after the last tensor"}},
      {"element count mismatch",
       file_with(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", data8),
       {"tensor 'w'", "[3] has 3 elements (12 bytes)", "span 8 bytes"}},
      {"duplicate tensor",
       file_with(R"({"w":)" + f32_2 + R"(,"w":)" + f32_2 + "}", data8),
       {"key 'w' twice"}},
      {"duplicate field",
       file_with(R"({"w":{"dtype":"F32","dtype":"F32","shape":[2],"data_offsets":[0,8]}})", data8),
       {"key 'dtype' twice"}},
      {"missing field",
       file_with(R"({"w":{"dtype":"F32","shape":[2]}})", data8),
       {"tensor 'w'", "missing field 'data_offsets'"}},
      {"unknown field",
       file_with(R"({"w":{"dtype":"F32","shape":[2],"data_offset":[0,8],"data_offsets":[0,8]}})",
                 data8),
       {"tensor 'w'", "unexpected field 'data_offset'"}},
      {"entry not an object",
       file_with(R"({"w":[0,8]})", ""),
       {"tensor 'w'", "entry is of type array"}},
      {"metadata value not a string",
       file_with(R"({"__metadata__":{"k":1},"w":)" + f32_2 + "}", data8),
       {"__metadata__ value of key 'k'", "number"}},
      {"metadata not an object",
       file_with(R"({"__metadata__":"text"})", ""),
       {"__metadata__ is of type string"}},
      {"nesting deeper than the format",
       file_with(R"({"w":{"shape":{"x":[1]}}})", ""),
       {"nests deeper"}},
      {"too many tensors", file_with(many_keys, ""), {"more than 100000 tensors"}},
      {"truncated data",
       valid_bytes.substr(0, valid_bytes.size() - 4),
       {"tensor 'w'", "beyond the data region of 12 bytes", "truncated"}},
  };
  for (const Case& c : cases) {
    INFO("case: " << c.label);
    std::string path = dir.file("hostile.safetensors");
    write_bytes(path, c.bytes);
    std::string message = read_error(path);
    INFO("message: " << message);
    CHECK_THAT(message, Catch::Contains("'" + path + "'"));
    for (const std::string& part : c.expected) CHECK_THAT(message, Catch::Contains(part));
  }

  CHECK_THAT(read_error(dir.file("absent.safetensors")),
             Catch::Contains("absent.safetensors") && Catch::Contains("cannot open"));
  CHECK_THAT(read_error(dir.path.string()), Catch::Contains("not a regular file"));
}

TEST_CASE("safetensors reader takes int64 tensors as float32 only when asked", "[safetensors]") {
  auto int64_bytes = [](std::initializer_list<int64_t> values) {
    std::string bytes;
    for (int64_t v : values) bytes.append(reinterpret_cast<const char*>(&v), sizeof(int64_t));
    return bytes;
  };
  const std::string mixed =
      R"({"n":{"dtype":"I64","shape":[3],"data_offsets":[0,24]},)"
      R"("w":{"dtype":"F32","shape":[1],"data_offsets":[24,28]}})";
  const dpm::SafetensorsReadOptions int64_as_float32{.int64_as_float32 = true};

  SafeTensors file = dpm::read_safetensors_from_memory(
      file_with(mixed, int64_bytes({7, -16777216, 16777216}) + float_bytes({0.5f})), "mixed",
      int64_as_float32);
  CHECK(file.get("n").to_vector() == std::vector<float>{7, -16777216, 16777216});
  CHECK(file.get("w").to_vector() == std::vector<float>{0.5f});

  CHECK_THROWS_WITH(dpm::read_safetensors_from_memory(
                        file_with(mixed, int64_bytes({7, 0, 0}) + float_bytes({0.5f})), "mixed"),
                    Catch::Contains("tensor 'n'") && Catch::Contains("only \"F32\" (float32)"));
  CHECK_THROWS_WITH(
      dpm::read_safetensors_from_memory(
          file_with(mixed, int64_bytes({7, 16777217, 0}) + float_bytes({0.5f})), "mixed",
          int64_as_float32),
      Catch::Contains("tensor 'n'") && Catch::Contains("16777217 at index 1") &&
          Catch::Contains("beyond 2^24"));
  // An int64 takes 8 bytes: a shape [3] spans 24, not 12.
  CHECK_THROWS_WITH(
      dpm::read_safetensors_from_memory(
          file_with(R"({"n":{"dtype":"I64","shape":[3],"data_offsets":[0,12]}})",
                    int64_bytes({1}) + "abcd"),
          "short", int64_as_float32),
      Catch::Contains("[3] has 3 elements (24 bytes)") && Catch::Contains("span 12 bytes"));
  CHECK_THROWS_WITH(
      dpm::read_safetensors_from_memory(
          file_with(R"({"d":{"dtype":"F64","shape":[1],"data_offsets":[0,8]}})", "abcdefgh"),
          "f64", int64_as_float32),
      Catch::Contains("tensor 'd'") && Catch::Contains("\"F64\"") &&
          Catch::Contains("\"I64\" (int64)"));
}

TEST_CASE("safetensors writer rejects bad input", "[safetensors]") {
  TempDir dir;
  std::string path = dir.file("bad.safetensors");
  CHECK_THROWS_WITH(dpm::write_safetensors(path, {{"a", Tensor::ones({1})}, {"a", Tensor()}}),
                    Catch::Contains("'a' is undefined"));
  CHECK_THROWS_WITH(
      dpm::write_safetensors(path, {{"a", Tensor::ones({1})}, {"a", Tensor::ones({1})}}),
      Catch::Contains("'a' given twice"));
  CHECK_THROWS_WITH(dpm::write_safetensors(path, {{"__metadata__", Tensor::ones({1})}}),
                    Catch::Contains("reserved"));
  CHECK_THROWS_WITH(dpm::write_safetensors(path, {{"bad\xff", Tensor::ones({1})}}),
                    Catch::Contains("not valid UTF-8"));
  CHECK_THROWS_AS(dpm::write_safetensors(path, {}, {{"k", "\xff"}}), std::invalid_argument);
  CHECK_FALSE(fs::exists(path));
  CHECK_FALSE(has_temp_files(dir.path));
}

TEST_CASE("safetensors writes atomically and reports unwritable destinations", "[safetensors]") {
  TempDir dir;
  std::string missing_dir = (dir.path / "no_such_dir").string();
  std::string in_missing = missing_dir + "/model.safetensors";
  CHECK_THROWS_WITH(dpm::write_safetensors(in_missing, {{"a", Tensor::ones({2})}}),
                    Catch::Contains(in_missing) && Catch::Contains("'" + missing_dir + "'") &&
                        Catch::Contains("No such file or directory"));

  // A write that fails midway (here: the file size limit, standing in for a full disk) reports
  // the error, removes its temporary file and leaves the previous checkpoint intact.
  std::string path = dir.file("model.safetensors");
  dpm::write_safetensors(path, {{"old", Tensor::full({4}, 3.0f)}}, {{"version", "1"}});
  std::string old_bytes = read_bytes(path);

  rlimit saved{};
  REQUIRE(::getrlimit(RLIMIT_FSIZE, &saved) == 0);
  rlimit small = saved;
  small.rlim_cur = 4096;
  auto old_handler = std::signal(SIGXFSZ, SIG_IGN);  // make write() return EFBIG instead
  REQUIRE(::setrlimit(RLIMIT_FSIZE, &small) == 0);
  std::string message;
  try {
    dpm::write_safetensors(path, {{"big", Tensor::zeros({100000})}});
  } catch (const SafetensorsError& e) {
    message = e.what();
  }
  ::setrlimit(RLIMIT_FSIZE, &saved);
  std::signal(SIGXFSZ, old_handler);

  CHECK_THAT(message, Catch::Contains(path) && Catch::Contains("cannot write") &&
                          Catch::Contains("File too large"));
  CHECK(read_bytes(path) == old_bytes);
  CHECK_FALSE(has_temp_files(dir.path));
  CHECK(dpm::read_safetensors(path).metadata.at("version") == "1");

  // Overwriting succeeds and replaces the file completely.
  dpm::write_safetensors(path, {{"new", Tensor::full({2}, 5.0f)}});
  SafeTensors replaced = dpm::read_safetensors(path);
  REQUIRE(replaced.tensors.size() == 1);
  CHECK(replaced.tensors[0].first == "new");
  CHECK_FALSE(has_temp_files(dir.path));
}
