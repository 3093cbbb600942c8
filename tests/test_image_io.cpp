#include <stb_image.h>
#include <stb_image_write.h>
#include <unistd.h>
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "datasets/image_folder.hpp"
#include "tests/temp_dir.hpp"

namespace fs = std::filesystem;
using dpm::testing::TempDir;
using dpm::Shape;
using dpm::Tensor;
using dpm::datasets::ColorMode;
using dpm::datasets::load_image_folder;
using dpm::datasets::PixelScaling;
using dpm::datasets::write_png_grid;

namespace {

// Interleaved pixels H x W x C with a pattern that differs per image, row, column and channel.
std::vector<unsigned char> pattern(int seed, int height, int width, int channels) {
  std::vector<unsigned char> p(static_cast<size_t>(height * width * channels));
  for (size_t i = 0; i < p.size(); ++i)
    p[i] = static_cast<unsigned char>((seed * 40 + i * 7) % 256);
  return p;
}

void write_png(const std::string& path, const std::vector<unsigned char>& pixels, int height,
               int width, int channels) {
  REQUIRE(stbi_write_png(path.c_str(), width, height, channels, pixels.data(), width * channels));
}

// Reference: interleaved bytes -> expected float at (c, y, x).
float expected(const std::vector<unsigned char>& pixels, int width, int channels, int c, int y,
               int x) {
  return static_cast<float>(pixels[static_cast<size_t>((y * width + x) * channels + c)]) / 255.0f;
}

struct Decoded {
  std::vector<unsigned char> pixels;
  int width = 0, height = 0, channels = 0;
};

Decoded read_back(const std::string& path) {
  Decoded d;
  unsigned char* p = stbi_load(path.c_str(), &d.width, &d.height, &d.channels, 0);
  REQUIRE(p != nullptr);
  d.pixels.assign(p, p + d.width * d.height * d.channels);
  stbi_image_free(p);
  return d;
}

}  // namespace

TEST_CASE("image folder loads RGB and gray PNGs sorted by name, values exact", "[image]") {
  TempDir dir;
  const int h = 5, w = 7;
  // Written out of order: the loader sorts by name.
  const std::vector<std::string> names = {"c.png", "a.png", "b.PNG"};
  std::vector<std::vector<unsigned char>> rgb;
  for (size_t i = 0; i < names.size(); ++i) {
    rgb.push_back(pattern(static_cast<int>(i), h, w, 3));
    write_png(dir.file(names[i]), rgb.back(), h, w, 3);
  }
  // Ignored: other extensions, hidden files and subfolders.
  std::ofstream(dir.file("notes.txt")) << "not an image";
  write_png(dir.file(".hidden.png"), pattern(9, 2, 2, 3), 2, 2, 3);
  fs::create_directories(dir.path / "sub.png");

  Tensor images = load_image_folder(dir.path.string(), ColorMode::rgb);
  REQUIRE(images.shape() == Shape{3, 3, h, w});
  const std::vector<size_t> sorted_source = {1, 2, 0};  // a.png, b.PNG, c.png
  for (int64_t n = 0; n < 3; ++n)
    for (int c = 0; c < 3; ++c)
      for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x)
          REQUIRE(images.at({n, c, y, x}) ==
                  expected(rgb[sorted_source[static_cast<size_t>(n)]], w, 3, c, y, x));

  // Gray files: exact in gray mode, replicated over three channels in RGB mode.
  TempDir gray_dir;
  std::vector<unsigned char> gray = pattern(3, h, w, 1);
  write_png(gray_dir.file("g0.png"), gray, h, w, 1);
  Tensor g = load_image_folder(gray_dir.path.string(), ColorMode::gray);
  REQUIRE(g.shape() == Shape{1, 1, h, w});
  Tensor g3 = load_image_folder(gray_dir.path.string(), ColorMode::rgb);
  REQUIRE(g3.shape() == Shape{1, 3, h, w});
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      float v = expected(gray, w, 1, 0, y, x);
      CHECK(g.at({0, 0, y, x}) == v);
      for (int c = 0; c < 3; ++c) CHECK(g3.at({0, c, y, x}) == v);
    }

  // An RGB file whose pixels are gray (r = g = b) converts to exactly that gray.
  std::vector<unsigned char> gray_rgb;
  for (unsigned char v : gray) gray_rgb.insert(gray_rgb.end(), {v, v, v});
  write_png(gray_dir.file("g1.png"), gray_rgb, h, w, 3);
  Tensor both = load_image_folder(gray_dir.path.string(), ColorMode::gray);
  REQUIRE(both.shape() == Shape{2, 1, h, w});
  CHECK(both.narrow(0, 1, 1).to_vector() == both.narrow(0, 0, 1).to_vector());

  // JPEG (any case of the extension) loads too; lossy, so only approximately.
  TempDir jpeg_dir;
  std::vector<unsigned char> flat(static_cast<size_t>(8 * 8 * 3), 200);
  REQUIRE(stbi_write_jpg(jpeg_dir.file("x.JPG").c_str(), 8, 8, 3, flat.data(), 100));
  REQUIRE(stbi_write_jpg(jpeg_dir.file("y.jpeg").c_str(), 8, 8, 3, flat.data(), 100));
  Tensor jpegs = load_image_folder(jpeg_dir.path.string());
  REQUIRE(jpegs.shape() == Shape{2, 3, 8, 8});
  for (float v : jpegs.to_vector()) CHECK(v == Approx(200.0 / 255.0).margin(3.0 / 255.0));
}

TEST_CASE("image folder errors name the file", "[image]") {
  TempDir dir;
  write_png(dir.file("a.png"), pattern(0, 4, 6, 3), 4, 6, 3);
  write_png(dir.file("b.png"), pattern(1, 4, 6, 1), 4, 6, 1);
  write_png(dir.file("c.png"), pattern(2, 5, 6, 3), 5, 6, 3);
  CHECK_THROWS_WITH(load_image_folder(dir.path.string()),
                    Catch::Contains(dir.file("c.png")) && Catch::Contains("6x5") &&
                        Catch::Contains(dir.file("a.png")) && Catch::Contains("6x4"));

  TempDir bad;
  write_png(bad.file("a.png"), pattern(0, 4, 6, 3), 4, 6, 3);
  std::ofstream(bad.file("b.png")) << "this is text, not a PNG";
  std::string reason;
  {
    int w, h, c;
    REQUIRE_FALSE(stbi_info(bad.file("b.png").c_str(), &w, &h, &c));
    reason = stbi_failure_reason();
  }
  CHECK_THROWS_WITH(
      load_image_folder(bad.path.string()),
      Catch::Contains("cannot read image " + bad.file("b.png")) && Catch::Contains(reason));
  CHECK_THROWS_WITH(dpm::datasets::load_image(bad.file("b.png")),
                    Catch::Contains(bad.file("b.png")) && Catch::Contains(reason));

  TempDir empty;
  std::ofstream(empty.file("readme.txt")) << "no images here";
  CHECK_THROWS_WITH(load_image_folder(empty.path.string()),
                    Catch::Contains("no .png, .jpg or .jpeg files in " + empty.path.string()));
  CHECK_THROWS_WITH(load_image_folder(empty.file("missing")),
                    Catch::Contains(empty.file("missing")) && Catch::Contains("not a directory"));
}

TEST_CASE("PNG grid has the expected layout and pixel values", "[image]") {
  TempDir dir;
  const int64_t n = 5, h = 4, w = 6;
  const int columns = 2, padding = 1;
  Tensor images = Tensor::empty(Shape{n, 3, h, w});
  float* p = images.data();
  // Values from -0.5 to 1.7, so clamping matters.
  for (int64_t i = 0; i < images.numel(); ++i)
    p[i] = -0.5f + 2.2f * static_cast<float>(i % 97) / 96.0f;

  for (PixelScaling scaling : {PixelScaling::clamp, PixelScaling::min_max}) {
    const std::string path = dir.file(scaling == PixelScaling::clamp ? "clamp.png" : "minmax.png");
    write_png_grid(path, images, columns, padding, scaling);
    Decoded d = read_back(path);
    // 2 columns x 3 rows of 6x4 tiles with 1 pixel of padding around and between them.
    REQUIRE(d.width == 2 * 6 + 3 * 1);
    REQUIRE(d.height == 3 * 4 + 4 * 1);
    REQUIRE(d.channels == 3);
    auto pixel = [&](int64_t y, int64_t x, int64_t c) {
      return d.pixels[static_cast<size_t>((y * d.width + x) * 3 + c)];
    };
    for (int64_t k = 0; k < n; ++k)
      for (int64_t c = 0; c < 3; ++c)
        for (int64_t y = 0; y < h; ++y)
          for (int64_t x = 0; x < w; ++x) {
            double v = images.at({k, c, y, x});
            double unit =
                scaling == PixelScaling::clamp ? std::clamp(v, 0.0, 1.0) : (v + 0.5) / 2.2;
            int64_t gy = padding + (k / columns) * (h + padding) + y;
            int64_t gx = padding + (k % columns) * (w + padding) + x;
            REQUIRE(std::abs(pixel(gy, gx, c) - unit * 255.0) <= 0.5 + 1e-4);
          }
    // Padding and the unused sixth tile stay black.
    for (int64_t x = 0; x < d.width; ++x) CHECK(pixel(0, x, 0) == 0);
    for (int64_t y = 0; y < d.height; ++y) CHECK(pixel(y, 0, 1) == 0);
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x)
        CHECK(pixel(padding + 2 * (h + padding) + y, padding + (w + padding) + x, 2) == 0);
  }

  // Gray, fewer images than columns: one row, as wide as the images need.
  Tensor gray = Tensor::full(Shape{2, 1, 3, 3}, 0.5f);
  write_png_grid(dir.file("gray.png"), gray, 8, 0);
  Decoded g = read_back(dir.file("gray.png"));
  CHECK(g.width == 6);
  CHECK(g.height == 3);
  CHECK(g.channels == 1);
  for (unsigned char v : g.pixels) CHECK(v == 128);

  // Atomic write: only the two PNGs of this folder and the gray one, no temporary file left.
  int files = 0;
  for (const auto& entry : fs::directory_iterator(dir.path)) {
    ++files;
    CHECK(entry.path().extension() == ".png");
  }
  CHECK(files == 3);
}

TEST_CASE("PNG grid rejects bad arguments and unwritable paths", "[image]") {
  TempDir dir;
  Tensor ok = Tensor::zeros(Shape{1, 3, 2, 2});
  CHECK_THROWS_WITH(write_png_grid(dir.file("a.png"), Tensor::zeros(Shape{1, 2, 2, 2})),
                    Catch::Contains("[1, 2, 2, 2]") && Catch::Contains("C = 1 or 3"));
  CHECK_THROWS_WITH(write_png_grid(dir.file("a.png"), Tensor::zeros(Shape{3, 2, 2})),
                    Catch::Contains("[n, C, H, W]"));
  CHECK_THROWS_WITH(write_png_grid(dir.file("a.png"), ok, 0), Catch::Contains("columns is 0"));
  CHECK_THROWS_WITH(write_png_grid(dir.file("a.png"), ok, 1, -1), Catch::Contains("padding is -1"));
  Tensor nan = ok.clone();
  nan.at({0, 1, 1, 0}) = std::numeric_limits<float>::quiet_NaN();
  CHECK_THROWS_WITH(write_png_grid(dir.file("a.png"), nan), Catch::Contains("non-finite"));
  CHECK_THROWS_WITH(write_png_grid(dir.file("no/such/dir/a.png"), ok),
                    Catch::Contains("cannot write") && Catch::Contains("no/such/dir/a.png"));
  CHECK(fs::is_empty(dir.path));

  // Overwriting an existing file replaces it whole.
  write_png_grid(dir.file("a.png"), Tensor::zeros(Shape{4, 1, 8, 8}), 2, 0);
  write_png_grid(dir.file("a.png"), ok, 1, 0);
  Decoded d = read_back(dir.file("a.png"));
  CHECK(d.width == 2);
  CHECK(d.height == 2);
}
