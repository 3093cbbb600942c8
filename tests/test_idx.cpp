#include <sys/resource.h>
#include <unistd.h>
#include <zlib.h>
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "datasets/idx.hpp"
#include "tests/temp_dir.hpp"

namespace fs = std::filesystem;
using dpm::testing::TempDir;
using dpm::Shape;
using dpm::datasets::read_idx;
using dpm::datasets::read_idx_images;
using dpm::datasets::read_idx_labels;

namespace {

using Bytes = std::vector<uint8_t>;

Bytes idx_header(uint8_t type, const std::vector<uint32_t>& dims) {
  Bytes b = {0, 0, type, static_cast<uint8_t>(dims.size())};
  for (uint32_t d : dims) {
    b.push_back(static_cast<uint8_t>(d >> 24));
    b.push_back(static_cast<uint8_t>(d >> 16));
    b.push_back(static_cast<uint8_t>(d >> 8));
    b.push_back(static_cast<uint8_t>(d));
  }
  return b;
}

Bytes concat(Bytes a, const Bytes& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

void write_plain(const std::string& path, const Bytes& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(f.good());
}

void write_gzip(const std::string& path, const Bytes& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  REQUIRE(f != nullptr);
  REQUIRE(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())) ==
          static_cast<int>(bytes.size()));
  REQUIRE(gzclose(f) == Z_OK);
}

// 2 images of 3x4 with values 0, 17, 34, ... and 3 labels.
const Bytes kImagePixels = [] {
  Bytes p;
  for (int i = 0; i < 24; ++i) p.push_back(static_cast<uint8_t>((i * 17) % 256));
  return p;
}();
const Bytes kImageFile = concat(idx_header(0x08, {2, 3, 4}), kImagePixels);
const Bytes kLabelFile = concat(idx_header(0x08, {3}), {7, 0, 9});

void check_images(const dpm::Tensor& images) {
  REQUIRE(images.shape() == Shape{2, 1, 3, 4});
  std::vector<float> v = images.to_vector();
  for (size_t i = 0; i < v.size(); ++i) CHECK(v[i] == static_cast<float>(kImagePixels[i]) / 255.0f);
}

long peak_rss_kib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss;
}

}  // namespace

TEST_CASE("IDX reads plain and gzipped files with exact values and shapes", "[idx]") {
  TempDir dir;
  write_plain(dir.file("images"), kImageFile);
  write_gzip(dir.file("images.gz"), kImageFile);
  // The compression is detected from the content, not the name.
  write_gzip(dir.file("gzipped-without-suffix"), kImageFile);
  write_plain(dir.file("plain-with-suffix.gz"), kImageFile);
  for (const char* name :
       {"images", "images.gz", "gzipped-without-suffix", "plain-with-suffix.gz"}) {
    INFO(name);
    dpm::datasets::IdxArray raw = read_idx(dir.file(name));
    CHECK(raw.dims == std::vector<int64_t>{2, 3, 4});
    CHECK(raw.data == kImagePixels);
    check_images(read_idx_images(dir.file(name)));
  }

  write_gzip(dir.file("labels.gz"), kLabelFile);
  CHECK(read_idx_labels(dir.file("labels.gz")) == std::vector<int64_t>{7, 0, 9});
  CHECK_THROWS_WITH(read_idx_labels(dir.file("images")),
                    Catch::Contains("images") && Catch::Contains("expected 1 dimension"));
  CHECK_THROWS_WITH(read_idx_images(dir.file("labels.gz")),
                    Catch::Contains("labels.gz") && Catch::Contains("expected 3 dimensions"));

  // Four dimensions is the most the format allows here, and reads fine.
  write_plain(dir.file("four"), concat(idx_header(0x08, {1, 2, 1, 2}), {1, 2, 3, 4}));
  CHECK(read_idx(dir.file("four")).dims == std::vector<int64_t>{1, 2, 1, 2});
}

TEST_CASE("malformed IDX files give errors naming the file", "[idx]") {
  TempDir dir;
  struct Case {
    const char* name;
    Bytes bytes;
    const char* message;
  };
  const std::vector<Case> cases = {
      {"empty", {}, "expected a 4-byte header, found 0"},
      {"short_header", {0, 0, 8}, "expected a 4-byte header, found 3"},
      {"bad_magic", concat({0x50, 0x4b, 8, 1, 0, 0, 0, 1}, {5}), "bad magic"},
      {"float_type", concat(idx_header(0x0D, {1}), {0, 0, 0, 0}),
       "unsupported element type 0x0d (32-bit float)"},
      {"zero_dims", {0, 0, 8, 0}, "declares 0 dimensions; expected 1 to 4"},
      {"five_dims", concat(idx_header(0x08, {1, 1, 1, 1, 1}), {1}),
       "declares 5 dimensions; expected 1 to 4"},
      {"zero_extent", idx_header(0x08, {2, 0, 3}), "dimension 1 is zero"},
      {"short_dims", concat({0, 0, 8, 3}, {0, 0, 0, 2, 0, 0}),
       "expected 12 bytes of dimensions, found 6"},
      {"truncated", concat(idx_header(0x08, {2, 3, 4}), Bytes(20, 1)),
       "header declares dims [2, 3, 4] = 24 data bytes, found 20"},
      {"trailing", concat(kImageFile, {1, 2, 3}), "3 trailing bytes after the 24 data bytes"},
      // 60000 x 28 x 28 declared over 10 bytes: must fail without allocating 47 MB up front (the
      // reader grows with the data it finds) ...
      {"huge_vs_tiny", concat(idx_header(0x08, {60000, 28, 28}), Bytes(10, 1)),
       "= 47040000 data bytes, found 10"},
      // ... and 2^32-1 cubed is refused from the header alone.
      {"over_limit",
       concat(idx_header(0x08, {0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu}), Bytes(10, 1)),
       "more than 2^31 elements"},
  };
  for (const Case& c : cases) {
    for (bool gzip : {false, true}) {
      std::string path = dir.file(std::string(c.name) + (gzip ? "_gz" : ""));
      if (gzip) {
        write_gzip(path, c.bytes);
      } else {
        write_plain(path, c.bytes);
      }
      INFO(path);
      CHECK_THROWS_WITH(read_idx(path), Catch::Contains(path) && Catch::Contains(c.message));
    }
  }
  // 2^31 elements (2 GiB) declared over a 10-byte file: the error comes without the peak memory
  // of the process growing by anything like that.
  write_plain(dir.file("two_gib"), concat(idx_header(0x08, {2048, 1024, 1024}), Bytes(10, 1)));
  const long peak_before_kib = peak_rss_kib();
  CHECK_THROWS_WITH(read_idx(dir.file("two_gib")),
                    Catch::Contains("= 2147483648 data bytes, found 10"));
  CHECK(peak_rss_kib() - peak_before_kib < 64 * 1024);

  CHECK_THROWS_WITH(read_idx(dir.file("missing")),
                    Catch::Contains("cannot open") && Catch::Contains(dir.file("missing")));

  // A gzip stream cut short reads as truncated data, not as a shorter valid file.
  write_gzip(dir.file("whole.gz"), kImageFile);
  Bytes gz;
  {
    std::ifstream f(dir.file("whole.gz"), std::ios::binary);
    gz.assign(std::istreambuf_iterator<char>(f), {});
  }
  gz.resize(gz.size() / 2);
  write_plain(dir.file("cut.gz"), gz);
  CHECK_THROWS_WITH(read_idx(dir.file("cut.gz")), Catch::Contains(dir.file("cut.gz")));
}

TEST_CASE("Fashion-MNIST loads 60000 + 10000 labelled 28x28 images", "[idx][fashion]") {
  const std::string dir = dpm::datasets::kDefaultFashionMnistDir;
  if (!fs::is_directory(dir)) {
    WARN("skipped: " << dir << " is absent (install Debian's dataset-fashion-mnist)");
    return;
  }
  for (auto [split, n] : {std::pair<const char*, int64_t>{"train", 60000}, {"test", 10000}}) {
    INFO(split);
    dpm::datasets::LabeledImages data = dpm::datasets::load_fashion_mnist(dir, split);
    REQUIRE(data.images.shape() == Shape{n, 1, 28, 28});
    REQUIRE(static_cast<int64_t>(data.labels.size()) == n);
    std::vector<int64_t> per_class(10, 0);
    for (int64_t label : data.labels) {
      REQUIRE(label >= 0);
      REQUIRE(label <= 9);
      ++per_class[static_cast<size_t>(label)];
    }
    // Fashion-MNIST is balanced: 6000 (train) or 1000 (test) per class.
    for (int64_t count : per_class) CHECK(count == n / 10);
    const float* p = data.images.data();
    float lo = 1, hi = 0;
    for (int64_t i = 0; i < data.images.numel(); ++i) {
      lo = std::min(lo, p[i]);
      hi = std::max(hi, p[i]);
    }
    CHECK(lo == 0.0f);
    CHECK(hi == 1.0f);
  }
}

TEST_CASE("Fashion-MNIST errors say where they looked and how to get the files", "[idx]") {
  TempDir dir;
  CHECK_THROWS_WITH(dpm::datasets::load_fashion_mnist(dir.path.string(), "train"),
                    Catch::Contains(dir.path.string()) &&
                        Catch::Contains("train-images-idx3-ubyte") &&
                        Catch::Contains("dataset-fashion-mnist") && Catch::Contains("--data-dir"));
  CHECK_THROWS_WITH(dpm::datasets::load_fashion_mnist(dir.path.string(), "validation"),
                    Catch::Contains("\"train\" or \"test\""));

  // Mismatched counts between the image and label files are caught.
  Bytes images = concat(idx_header(0x08, {2, 28, 28}), Bytes(2 * 28 * 28, 3));
  write_plain(dir.file("t10k-images-idx3-ubyte"), images);
  write_gzip(dir.file("t10k-labels-idx1-ubyte.gz"), concat(idx_header(0x08, {3}), {1, 2, 3}));
  CHECK_THROWS_WITH(dpm::datasets::load_fashion_mnist(dir.path.string(), "test"),
                    Catch::Contains("3 labels") && Catch::Contains("2 images"));
  write_gzip(dir.file("t10k-labels-idx1-ubyte.gz"), concat(idx_header(0x08, {2}), {1, 12}));
  CHECK_THROWS_WITH(dpm::datasets::load_fashion_mnist(dir.path.string(), "test"),
                    Catch::Contains("label 12 at index 1"));
  write_gzip(dir.file("t10k-labels-idx1-ubyte.gz"), concat(idx_header(0x08, {2}), {1, 9}));
  dpm::datasets::LabeledImages ok = dpm::datasets::load_fashion_mnist(dir.path.string(), "test");
  CHECK(ok.images.shape() == Shape{2, 1, 28, 28});
  CHECK(ok.labels == std::vector<int64_t>{1, 9});
}
