#include "datasets/idx.hpp"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>

namespace dpm::datasets {
namespace {

constexpr size_t kChunkBytes = size_t{1} << 20;

std::string dims_str(const std::vector<int64_t>& dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + "]";
}

std::string hex_byte(uint8_t b) {
  static const char* digits = "0123456789abcdef";
  return std::string("0x") + digits[b >> 4] + digits[b & 15];
}

const char* idx_type_name(uint8_t type) {
  switch (type) {
    case 0x08:
      return "unsigned byte";
    case 0x09:
      return "signed byte";
    case 0x0B:
      return "16-bit integer";
    case 0x0C:
      return "32-bit integer";
    case 0x0D:
      return "32-bit float";
    case 0x0E:
      return "64-bit float";
    default:
      return "unknown type";
  }
}

// zlib reads gzip files (recognised by their magic bytes 1f 8b) and passes other files through
// unchanged, so one reader serves both.
class GzReader {
 public:
  explicit GzReader(const std::string& path) : path_(path) {
    errno = 0;
    file_ = gzopen(path.c_str(), "rb");
    if (!file_) {
      throw std::runtime_error("read_idx: cannot open " + path + ": " +
                               (errno ? std::strerror(errno) : "zlib could not allocate a reader"));
    }
    gzbuffer(file_, static_cast<unsigned>(kChunkBytes));
  }
  ~GzReader() { gzclose(file_); }
  GzReader(const GzReader&) = delete;
  GzReader& operator=(const GzReader&) = delete;

  // Reads up to n bytes; fewer only at the end of the data.
  size_t read(uint8_t* dst, size_t n) {
    size_t total = 0;
    while (total < n) {
      unsigned want = static_cast<unsigned>(std::min(n - total, kChunkBytes));
      int got = gzread(file_, dst + total, want);
      if (got < 0) {
        int code = 0;
        const char* message = gzerror(file_, &code);
        throw std::runtime_error("read_idx: cannot read " + path_ + ": " + message);
      }
      if (got == 0) break;
      total += static_cast<size_t>(got);
    }
    return total;
  }

 private:
  std::string path_;
  gzFile file_ = nullptr;
};

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw std::runtime_error("read_idx: " + path + ": " + what);
}

}  // namespace

IdxArray read_idx(const std::string& path) {
  GzReader reader(path);

  uint8_t magic[4];
  size_t got = reader.read(magic, 4);
  if (got < 4) {
    fail(path, "truncated: expected a 4-byte header, found " + std::to_string(got) + " bytes");
  }
  if (magic[0] != 0 || magic[1] != 0) {
    fail(path, "bad magic: expected the first two bytes 0x00 0x00, found " + hex_byte(magic[0]) +
                   " " + hex_byte(magic[1]) + " (not an IDX file)");
  }
  if (magic[2] != 0x08) {
    fail(path, "unsupported element type " + hex_byte(magic[2]) + " (" + idx_type_name(magic[2]) +
                   "); only 0x08 (unsigned byte) is supported");
  }
  int ndims = magic[3];
  if (ndims < 1 || ndims > 4) {
    fail(path, "header declares " + std::to_string(ndims) + " dimensions; expected 1 to 4");
  }

  uint8_t extents[16];
  size_t extent_bytes = 4 * static_cast<size_t>(ndims);
  got = reader.read(extents, extent_bytes);
  if (got < extent_bytes) {
    fail(path, "truncated: expected " + std::to_string(extent_bytes) +
                   " bytes of dimensions, found " + std::to_string(got));
  }
  IdxArray result;
  int64_t numel = 1;
  for (int d = 0; d < ndims; ++d) {
    const uint8_t* b = extents + 4 * d;
    int64_t extent = (int64_t{b[0]} << 24) | (int64_t{b[1]} << 16) | (int64_t{b[2]} << 8) | b[3];
    result.dims.push_back(extent);
    if (extent == 0) fail(path, "dimension " + std::to_string(d) + " is zero");
    numel *= extent;  // < 2^31 * 2^32: no overflow before the check below
    if (numel > kMaxIdxElements) {
      fail(path,
           "header declares more than 2^31 elements (dims start " + dims_str(result.dims) + ")");
    }
  }

  // Grow with the data actually read, so a huge declared size over a tiny file fails before it
  // allocates anything large.
  size_t expected = static_cast<size_t>(numel);
  size_t filled = 0;
  while (filled < expected) {
    result.data.resize(std::min(expected, filled + kChunkBytes));
    size_t n = reader.read(result.data.data() + filled, result.data.size() - filled);
    filled += n;
    if (filled < result.data.size()) {
      fail(path, "truncated: header declares dims " + dims_str(result.dims) + " = " +
                     std::to_string(expected) + " data bytes, found " + std::to_string(filled));
    }
  }

  uint8_t trailing[4096];
  size_t extra = 0;
  while ((got = reader.read(trailing, sizeof trailing)) > 0) extra += got;
  if (extra > 0) {
    fail(path, std::to_string(extra) + " trailing bytes after the " + std::to_string(expected) +
                   " data bytes declared by dims " + dims_str(result.dims));
  }
  return result;
}

Tensor read_idx_images(const std::string& path) {
  IdxArray idx = read_idx(path);
  if (idx.dims.size() != 3) {
    throw std::runtime_error("read_idx_images: " + path + " has dims " + dims_str(idx.dims) +
                             "; expected 3 dimensions [n, H, W]");
  }
  Tensor images = Tensor::empty(Shape{idx.dims[0], 1, idx.dims[1], idx.dims[2]});
  float* out = images.data();
  for (size_t i = 0; i < idx.data.size(); ++i) out[i] = static_cast<float>(idx.data[i]) / 255.0f;
  return images;
}

std::vector<int64_t> read_idx_labels(const std::string& path) {
  IdxArray idx = read_idx(path);
  if (idx.dims.size() != 1) {
    throw std::runtime_error("read_idx_labels: " + path + " has dims " + dims_str(idx.dims) +
                             "; expected 1 dimension [n]");
  }
  return {idx.data.begin(), idx.data.end()};
}

LabeledImages load_fashion_mnist(const std::string& data_dir, const std::string& split) {
  if (split != "train" && split != "test") {
    throw std::invalid_argument("load_fashion_mnist: split is \"" + split +
                                "\"; expected \"train\" or \"test\"");
  }
  const std::string prefix = split == "train" ? "train" : "t10k";
  namespace fs = std::filesystem;
  // The plain file or its gzipped twin, whichever is present (plain first: it reads faster).
  auto find = [&](const std::string& name) -> std::string {
    for (const std::string& candidate : {name, name + ".gz"}) {
      fs::path p = fs::path(data_dir) / candidate;
      std::error_code ec;
      if (fs::is_regular_file(p, ec)) return p.string();
    }
    return {};
  };
  const std::string images_name = prefix + "-images-idx3-ubyte";
  const std::string labels_name = prefix + "-labels-idx1-ubyte";
  std::string images_path = find(images_name), labels_path = find(labels_name);
  if (images_path.empty() || labels_path.empty()) {
    throw std::runtime_error(
        "load_fashion_mnist: Fashion-MNIST " + split + " files not found in " + data_dir +
        " (looked for " + images_name + "[.gz] and " + labels_name +
        "[.gz]); install Debian's dataset-fashion-mnist package (scripts/install-deps.sh does) or "
        "pass --data-dir");
  }

  LabeledImages result{read_idx_images(images_path), read_idx_labels(labels_path)};
  if (result.images.size(2) != 28 || result.images.size(3) != 28) {
    throw std::runtime_error("load_fashion_mnist: " + images_path + " holds images of " +
                             std::to_string(result.images.size(2)) + "x" +
                             std::to_string(result.images.size(3)) + "; expected 28x28");
  }
  if (static_cast<int64_t>(result.labels.size()) != result.images.size(0)) {
    throw std::runtime_error("load_fashion_mnist: " + labels_path + " has " +
                             std::to_string(result.labels.size()) + " labels but " + images_path +
                             " has " + std::to_string(result.images.size(0)) + " images");
  }
  for (size_t i = 0; i < result.labels.size(); ++i) {
    if (result.labels[i] > 9) {
      throw std::runtime_error("load_fashion_mnist: " + labels_path + ": label " +
                               std::to_string(result.labels[i]) + " at index " + std::to_string(i) +
                               " is outside 0..9");
    }
  }
  return result;
}

}  // namespace dpm::datasets
