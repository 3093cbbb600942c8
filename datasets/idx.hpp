#pragma once
// Reader for the IDX format of MNIST and Fashion-MNIST, plain or gzip-compressed (detected by the
// gzip magic bytes, not by the file name). Layout: bytes 00 00, a type byte (only 0x08, unsigned
// byte, is supported), a dims byte (1..4), the big-endian u32 extents, then the row-major data.
// The header is validated against the data actually present before anything large is allocated,
// so a corrupt or hostile header cannot make the reader allocate gigabytes.
// Malformed files throw std::runtime_error naming the file and what was expected vs found.
#include <cstdint>
#include <string>
#include <vector>

#include "autograd/tensor.hpp"

namespace dpm::datasets {

// Upper bound on the element count a header may declare (2^31).
inline constexpr int64_t kMaxIdxElements = int64_t{1} << 31;

struct IdxArray {
  std::vector<int64_t> dims;  // extents, outermost first
  std::vector<uint8_t> data;  // row-major, prod(dims) bytes
};

IdxArray read_idx(const std::string& path);

// A 3-D file [n, H, W] as a Tensor [n, 1, H, W] scaled from 0..255 to [0, 1].
Tensor read_idx_images(const std::string& path);
// A 1-D file [n] of class labels.
std::vector<int64_t> read_idx_labels(const std::string& path);

struct LabeledImages {
  Tensor images;                // [n, 1, H, W] in [0, 1]
  std::vector<int64_t> labels;  // n entries
};

inline constexpr const char* kDefaultFashionMnistDir = "/usr/share/datasets/fashion-mnist";

// split is "train" (60000 images) or "test" (10000). Finds
// {train,t10k}-{images-idx3,labels-idx1}-ubyte with or without a .gz suffix in data_dir; throws
// std::runtime_error saying where it looked and how to get the files when they are absent.
LabeledImages load_fashion_mnist(const std::string& data_dir = kDefaultFashionMnistDir,
                                 const std::string& split = "train");

}  // namespace dpm::datasets
