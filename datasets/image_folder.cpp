#include "datasets/image_folder.hpp"

#include <stb_image.h>
#include <stb_image_write.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <stdexcept>
#include <vector>

namespace dpm::datasets {
namespace fs = std::filesystem;
namespace {

int channel_count(ColorMode color) {
  return color == ColorMode::gray ? 1 : 3;
}

std::string size_str(int width, int height) {
  return std::to_string(width) + "x" + std::to_string(height);
}

bool has_image_extension(const fs::path& path) {
  std::string ext = path.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return ext == ".png" || ext == ".jpg" || ext == ".jpeg";
}

struct StbFree {
  void operator()(unsigned char* p) const { stbi_image_free(p); }
};

struct DecodedImage {
  std::unique_ptr<unsigned char, StbFree> pixels;  // interleaved H x W x channels
  int width = 0;
  int height = 0;
};

DecodedImage decode(const std::string& path, int channels, const char* caller) {
  DecodedImage image;
  int file_channels = 0;
  image.pixels.reset(
      stbi_load(path.c_str(), &image.width, &image.height, &file_channels, channels));
  if (!image.pixels) {
    throw std::runtime_error(std::string(caller) + ": cannot read image " + path + ": " +
                             stbi_failure_reason());
  }
  return image;
}

// Interleaved bytes H x W x C -> planar floats C x H x W in [0, 1].
void bytes_to_chw(const unsigned char* pixels, int64_t height, int64_t width, int64_t channels,
                  float* out) {
  for (int64_t c = 0; c < channels; ++c)
    for (int64_t i = 0; i < height * width; ++i)
      out[c * height * width + i] = static_cast<float>(pixels[i * channels + c]) / 255.0f;
}

// Image files directly in dir, sorted by name.
std::vector<fs::path> list_images(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    throw std::runtime_error("load_image_folder: " + dir + " is not a directory");
  }
  std::vector<fs::path> files;
  for (const fs::directory_entry& entry : fs::directory_iterator(dir)) {
    const fs::path& p = entry.path();
    if (entry.is_regular_file() && p.filename().string().front() != '.' && has_image_extension(p)) {
      files.push_back(p);
    }
  }
  std::sort(files.begin(), files.end(),
            [](const fs::path& a, const fs::path& b) { return a.filename() < b.filename(); });
  if (files.empty()) {
    throw std::runtime_error("load_image_folder: no .png, .jpg or .jpeg files in " + dir);
  }
  return files;
}

void check_grid_arguments(const Tensor& images, int columns, int padding) {
  if (!images.defined() || images.ndim() != 4 || (images.size(1) != 1 && images.size(1) != 3) ||
      images.numel() == 0) {
    throw std::invalid_argument("write_png_grid: images has shape " +
                                (images.defined() ? images.shape().str() : "(undefined)") +
                                "; expected [n, C, H, W] with n, H, W > 0 and C = 1 or 3");
  }
  if (columns < 1) {
    throw std::invalid_argument("write_png_grid: columns is " + std::to_string(columns) +
                                "; expected >= 1");
  }
  if (padding < 0) {
    throw std::invalid_argument("write_png_grid: padding is " + std::to_string(padding) +
                                "; expected >= 0");
  }
}

// Maps a pixel value to a byte: [0, 1] clamped, or the images' [min, max] stretched to it.
class PixelToByte {
 public:
  // src: contiguous; a non-finite value is rejected with its flat index.
  PixelToByte(const Tensor& src, PixelScaling scaling) : scaling_(scaling) {
    const float* data = src.data();
    float high = -low_;
    for (int64_t i = 0; i < src.numel(); ++i) {
      if (!std::isfinite(data[i])) {
        throw std::invalid_argument("write_png_grid: images hold a non-finite value (" +
                                    std::to_string(data[i]) + ") at flat index " +
                                    std::to_string(i));
      }
      low_ = std::min(low_, data[i]);
      high = std::max(high, data[i]);
    }
    range_ = static_cast<double>(high) - low_;
  }

  unsigned char operator()(float v) const {
    double x = v;
    if (scaling_ == PixelScaling::min_max) x = range_ > 0 ? (x - low_) / range_ : 0.0;
    return static_cast<unsigned char>(std::lround(std::clamp(x, 0.0, 1.0) * 255.0));
  }

 private:
  PixelScaling scaling_;
  float low_ = std::numeric_limits<float>::infinity();
  double range_ = 0.0;
};

// Images tiled row by row, `padding` pixels around and between them.
struct GridLayout {
  int64_t cols, rows;      // of images
  int64_t width, height;   // of one image
  int64_t grid_w, grid_h;  // of the whole grid, in pixels
};

GridLayout grid_layout(int64_t n, int64_t height, int64_t width, int64_t channels, int columns,
                       int padding) {
  GridLayout layout;
  layout.cols = std::min<int64_t>(columns, n);
  layout.rows = (n + layout.cols - 1) / layout.cols;
  layout.width = width;
  layout.height = height;
  layout.grid_w = layout.cols * width + (layout.cols + 1) * padding;
  layout.grid_h = layout.rows * height + (layout.rows + 1) * padding;
  if (layout.grid_w * channels > std::numeric_limits<int>::max() / layout.grid_h) {
    throw std::invalid_argument("write_png_grid: a grid of " + std::to_string(layout.grid_w) + "x" +
                                std::to_string(layout.grid_h) + " pixels is too large for a PNG");
  }
  return layout;
}

// src [n, C, H, W] contiguous -> the grid's interleaved bytes [grid_h, grid_w, C], padding 0.
std::vector<unsigned char> tile_images(const Tensor& src, const GridLayout& layout, int padding,
                                       const PixelToByte& to_byte) {
  const int64_t n = src.size(0), channels = src.size(1);
  const int64_t height = layout.height, width = layout.width, grid_w = layout.grid_w;
  const float* data = src.data();
  std::vector<unsigned char> pixels(static_cast<size_t>(grid_w * layout.grid_h * channels), 0);
  for (int64_t k = 0; k < n; ++k) {
    const int64_t x0 = padding + (k % layout.cols) * (width + padding);
    const int64_t y0 = padding + (k / layout.cols) * (height + padding);
    for (int64_t c = 0; c < channels; ++c)
      for (int64_t y = 0; y < height; ++y)
        for (int64_t x = 0; x < width; ++x) {
          float v = data[((k * channels + c) * height + y) * width + x];
          pixels[static_cast<size_t>(((y0 + y) * grid_w + x0 + x) * channels + c)] = to_byte(v);
        }
  }
  return pixels;
}

std::vector<unsigned char> encode_png(const std::vector<unsigned char>& pixels,
                                      const GridLayout& layout, int64_t channels,
                                      const std::string& path) {
  std::vector<unsigned char> png;
  auto append = [](void* context, void* bytes, int size) {
    auto* out = static_cast<std::vector<unsigned char>*>(context);
    auto* b = static_cast<unsigned char*>(bytes);
    out->insert(out->end(), b, b + size);
  };
  if (!stbi_write_png_to_func(append, &png, static_cast<int>(layout.grid_w),
                              static_cast<int>(layout.grid_h), static_cast<int>(channels),
                              pixels.data(), static_cast<int>(layout.grid_w * channels))) {
    throw std::runtime_error("write_png_grid: stb_image_write failed to encode " + path);
  }
  return png;
}

// Temporary file beside the target (same file system), then an atomic rename.
void write_file_atomically(const std::string& path, const std::vector<unsigned char>& bytes,
                           const char* caller) {
  const std::string temp = path + ".tmp-" + std::to_string(::getpid());
  {
    std::ofstream file(temp, std::ios::binary | std::ios::trunc);
    if (file)
      file.write(reinterpret_cast<const char*>(bytes.data()),
                 static_cast<std::streamsize>(bytes.size()));
    if (file) file.close();
    if (!file) {
      int err = errno;
      std::error_code ignored;
      fs::remove(temp, ignored);
      throw std::runtime_error(std::string(caller) + ": cannot write " + temp + ": " +
                               std::strerror(err));
    }
  }
  std::error_code ec;
  fs::rename(temp, path, ec);
  if (ec) {
    std::error_code ignored;
    fs::remove(temp, ignored);
    throw std::runtime_error(std::string(caller) + ": cannot rename " + temp + " to " + path +
                             ": " + ec.message());
  }
}

}  // namespace

Tensor load_image(const std::string& path, ColorMode color) {
  const int channels = channel_count(color);
  DecodedImage image = decode(path, channels, "load_image");
  Tensor out = Tensor::empty(Shape{channels, image.height, image.width});
  bytes_to_chw(image.pixels.get(), image.height, image.width, channels, out.data());
  return out;
}

Tensor load_image_folder(const std::string& dir, ColorMode color) {
  const std::vector<fs::path> files = list_images(dir);

  // Check every header first, so a size mismatch fails before the big allocation.
  int width = 0, height = 0;
  for (size_t i = 0; i < files.size(); ++i) {
    int w = 0, h = 0, file_channels = 0;
    if (!stbi_info(files[i].c_str(), &w, &h, &file_channels)) {
      throw std::runtime_error("load_image_folder: cannot read image " + files[i].string() + ": " +
                               stbi_failure_reason());
    }
    if (i == 0) {
      width = w;
      height = h;
    } else if (w != width || h != height) {
      throw std::runtime_error("load_image_folder: " + files[i].string() + " is " + size_str(w, h) +
                               " but " + files[0].string() + " is " + size_str(width, height) +
                               "; all images must have the same size");
    }
  }

  const int channels = channel_count(color);
  const int64_t n = static_cast<int64_t>(files.size());
  Tensor out = Tensor::empty(Shape{n, channels, height, width});
  const int64_t image_numel = int64_t{channels} * height * width;
  for (int64_t i = 0; i < n; ++i) {
    const std::string path = files[static_cast<size_t>(i)].string();
    DecodedImage image = decode(path, channels, "load_image_folder");
    if (image.width != width || image.height != height) {  // the file changed since stbi_info
      throw std::runtime_error("load_image_folder: " + path + " decoded as " +
                               size_str(image.width, image.height) + ", its header said " +
                               size_str(width, height));
    }
    bytes_to_chw(image.pixels.get(), height, width, channels, out.data() + i * image_numel);
  }
  return out;
}

void write_png_grid(const std::string& path, const Tensor& images, int columns, int padding,
                    PixelScaling scaling) {
  check_grid_arguments(images, columns, padding);
  const Tensor src = images.contiguous();
  const int64_t n = src.size(0), channels = src.size(1), height = src.size(2), width = src.size(3);
  const PixelToByte to_byte(src, scaling);
  const GridLayout layout = grid_layout(n, height, width, channels, columns, padding);
  const std::vector<unsigned char> pixels = tile_images(src, layout, padding, to_byte);
  write_file_atomically(path, encode_png(pixels, layout, channels, path), "write_png_grid");
}

bool is_image_shape(const Shape& sample_shape) {
  return sample_shape.ndim() == 3 && (sample_shape[0] == 1 || sample_shape[0] == 3);
}

}  // namespace dpm::datasets
