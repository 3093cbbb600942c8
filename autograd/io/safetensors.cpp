#include "autograd/io/safetensors.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string_view>
#include <tuple>

#include <nlohmann/json.hpp>

namespace dpm {

// Tensor data goes to and from disk as raw bytes, which is the format's little-endian layout.
static_assert(std::endian::native == std::endian::little, "safetensors I/O assumes little-endian");

namespace {

using Json = nlohmann::json;

constexpr uint64_t kBytesPerElement = sizeof(float);
// The largest magnitude up to which every integer is a float32.
constexpr int64_t kLargestExactFloatInteger = int64_t{1} << 24;
// Parse-time budget: a valid entry takes about 15 JSON values, so this bounds the memory a hostile
// header can make the parser allocate without limiting any real checkpoint.
constexpr int64_t kMaxJsonValues = 32 * kSafetensorsMaxTensors;
// The root object, a tensor entry and its arrays: nothing deeper is part of the format.
constexpr int kMaxJsonDepth = 3;
constexpr const char* kMetadataKey = "__metadata__";

[[noreturn]] void fail(const std::string& path, const std::string& problem) {
  throw SafetensorsError("safetensors file '" + path + "': " + problem);
}

[[noreturn]] void fail_tensor(const std::string& path, const std::string& name,
                              const std::string& problem) {
  fail(path, "tensor '" + name + "': " + problem);
}

std::string errno_text() {
  return std::strerror(errno);
}

// ---------------------------------------------------------------------------------------------
// Writing

std::string json_string(const std::string& text, const std::string& what) {
  try {
    return Json(text).dump();
  } catch (const Json::type_error&) {
    throw std::invalid_argument("write_safetensors: " + what + " is not valid UTF-8");
  }
}

// The header exactly as the reference serialises it: compact JSON, "__metadata__" first, entries
// with fields in the order dtype, shape, data_offsets, then spaces up to a multiple of 8 bytes.
std::string build_header(const NamedTensors& tensors,
                         const std::map<std::string, std::string>& metadata) {
  std::string header = "{";
  if (!metadata.empty()) {
    header += std::string("\"") + kMetadataKey + "\":{";
    bool first = true;
    for (const auto& [key, value] : metadata) {
      if (!first) header += ",";
      first = false;
      header += json_string(key, "metadata key '" + key + "'") + ":" +
                json_string(value, "metadata value of '" + key + "'");
    }
    header += "}";
  }
  uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    if (header.size() > 1) header += ",";
    header += json_string(name, "tensor name '" + name + "'") + ":{\"dtype\":\"F32\",\"shape\":[";
    for (int d = 0; d < tensor.ndim(); ++d)
      header += (d ? "," : "") + std::to_string(tensor.size(d));
    uint64_t end = offset + static_cast<uint64_t>(tensor.numel()) * kBytesPerElement;
    header += "],\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(end) + "]}";
    offset = end;
  }
  header += "}";
  header.append((8 - header.size() % 8) % 8, ' ');
  return header;
}

void check_tensors_to_write(const NamedTensors& tensors) {
  std::set<std::string> names;
  for (const auto& [name, tensor] : tensors) {
    if (!tensor.defined())
      throw std::invalid_argument("write_safetensors: tensor '" + name + "' is undefined");
    if (name == kMetadataKey)
      throw std::invalid_argument(std::string("write_safetensors: tensor name '") + kMetadataKey +
                                  "' is reserved for the metadata");
    if (!names.insert(name).second)
      throw std::invalid_argument("write_safetensors: tensor name '" + name + "' given twice");
  }
}

std::string directory_of(const std::string& path) {
  std::string dir = std::filesystem::path(path).parent_path().string();
  return dir.empty() ? "." : dir;
}

// A file written under a temporary name and renamed over the destination only once it is
// complete and on disk; until commit() the destructor removes the temporary file.
class AtomicFileWriter {
 public:
  explicit AtomicFileWriter(std::string path)
      : path_(std::move(path)), temp_path_(path_ + ".tmp." + std::to_string(::getpid())) {
    fd_ = ::open(temp_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0)
      fail("cannot create '" + temp_path_ + "' in directory '" + directory_of(path_) +
           "' (missing or not writable?): " + errno_text());
  }
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;
  ~AtomicFileWriter() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(temp_path_.c_str());
  }

  void write(const void* data, size_t size) {
    const char* bytes = static_cast<const char*>(data);
    while (size > 0) {
      ssize_t written = ::write(fd_, bytes, size);
      if (written < 0 && errno == EINTR) continue;
      if (written <= 0) fail("cannot write '" + temp_path_ + "' (disk full?): " + errno_text());
      bytes += written;
      size -= static_cast<size_t>(written);
    }
  }

  void commit() {
    if (::fsync(fd_) != 0) fail("cannot flush '" + temp_path_ + "' to disk: " + errno_text());
    int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) fail("cannot close '" + temp_path_ + "': " + errno_text());
    if (::rename(temp_path_.c_str(), path_.c_str()) != 0)
      fail("cannot rename '" + temp_path_ + "' to '" + path_ + "': " + errno_text());
    committed_ = true;
    sync_directory();
  }

 private:
  [[noreturn]] void fail(const std::string& problem) const {
    throw SafetensorsError("writing safetensors file '" + path_ + "': " + problem);
  }

  // Makes the rename itself durable. Some filesystems cannot fsync a directory (EINVAL); the data
  // is then as safe as that filesystem allows, so that one case is not an error.
  void sync_directory() const {
    std::string dir = directory_of(path_);
    int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) fail("cannot open directory '" + dir + "' to sync it: " + errno_text());
    int result = ::fsync(fd);
    int error = errno;
    ::close(fd);
    if (result != 0 && error != EINVAL)
      fail("cannot sync directory '" + dir + "': " + std::strerror(error));
  }

  std::string path_;
  std::string temp_path_;
  int fd_ = -1;
  bool committed_ = false;
};

// ---------------------------------------------------------------------------------------------
// Reading

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};
using FilePtr = std::unique_ptr<std::FILE, FileCloser>;

// Where the reader takes its bytes from (a file or a buffer), so both go through one parser.
class ByteSource {
 public:
  ByteSource(std::string source, uint64_t size) : source_(std::move(source)), size_(size) {}
  virtual ~ByteSource() = default;
  const std::string& source() const { return source_; }
  uint64_t size() const { return size_; }
  // Copies the next `size` bytes to `out`; fails naming `what` when fewer are left.
  virtual void read_exactly(void* out, uint64_t size, const std::string& what) = 0;

 protected:
  [[noreturn]] void fail_truncated(const std::string& what) const {
    fail(source_, "file ended while reading " + what + " (truncated or changed while reading?)");
  }

 private:
  std::string source_;
  uint64_t size_;
};

class FileSource : public ByteSource {
 public:
  FileSource(std::FILE* file, const std::string& path, uint64_t size)
      : ByteSource(path, size), file_(file) {}
  void read_exactly(void* out, uint64_t size, const std::string& what) override {
    if (size > 0 && std::fread(out, 1, size, file_) != size) fail_truncated(what);
  }

 private:
  std::FILE* file_;
};

class MemorySource : public ByteSource {
 public:
  MemorySource(std::string_view bytes, const std::string& source)
      : ByteSource(source, bytes.size()), bytes_(bytes) {}
  void read_exactly(void* out, uint64_t size, const std::string& what) override {
    if (size > bytes_.size() - position_) fail_truncated(what);
    if (size > 0) std::memcpy(out, bytes_.data() + position_, size);
    position_ += size;
  }

 private:
  std::string_view bytes_;
  uint64_t position_ = 0;
};

struct TensorEntry {
  std::string name;
  Shape shape;
  uint64_t begin = 0;
  uint64_t end = 0;
  bool int64 = false;  // stored as "I64", converted to float32 when read
};

// Rejects, while parsing, what no safetensors header contains and what would make the parser
// itself allocate without bound: duplicate keys (the JSON library would keep only the last),
// nesting deeper than the format's, more entries than the tensor limit, too many values overall.
class HeaderParseGuard {
 public:
  explicit HeaderParseGuard(const std::string& path) : path_(path) {}

  bool operator()(int depth, Json::parse_event_t event, Json& parsed) {
    if (++values_ > kMaxJsonValues)
      fail(path_, "JSON header holds more than " + std::to_string(kMaxJsonValues) + " values");
    switch (event) {
      case Json::parse_event_t::object_start:
      case Json::parse_event_t::array_start:
        if (depth >= kMaxJsonDepth)
          fail(path_, "JSON header nests deeper than a safetensors header (" +
                          std::to_string(kMaxJsonDepth) + " levels)");
        if (event == Json::parse_event_t::object_start) open_keys_.emplace_back();
        break;
      case Json::parse_event_t::object_end:
        open_keys_.pop_back();
        break;
      case Json::parse_event_t::key: {
        const std::string& key = parsed.get_ref<const std::string&>();
        if (!open_keys_.back().insert(key).second)
          fail(path_, "JSON header has the key '" + key + "' twice in one object");
        if (depth == 1 && open_keys_.back().size() > kSafetensorsMaxTensors + 1)
          fail(path_,
               "JSON header has more than " + std::to_string(kSafetensorsMaxTensors) + " tensors");
        break;
      }
      default:
        break;
    }
    return true;
  }

 private:
  const std::string& path_;
  int64_t values_ = 0;
  std::vector<std::set<std::string>> open_keys_;
};

Json parse_header(const std::string& text, const std::string& path) {
  HeaderParseGuard guard(path);
  try {
    return Json::parse(text, std::ref(guard));
  } catch (const Json::exception& e) {
    fail(path, std::string("JSON header is invalid: ") + e.what());
  }
}

std::map<std::string, std::string> parse_metadata(const Json& json, const std::string& path) {
  if (!json.is_object())
    fail(path, std::string(kMetadataKey) + " is of type " + std::string(json.type_name()) +
                   ", expected an object of strings");
  std::map<std::string, std::string> metadata;
  for (const auto& [key, value] : json.items()) {
    if (!value.is_string())
      fail(path, std::string(kMetadataKey) + " value of key '" + key + "' is of type " +
                     value.type_name() + ", expected a string");
    metadata.emplace(key, value.get<std::string>());
  }
  return metadata;
}

// A JSON value as a uint64, or nullopt when it is not a non-negative integer.
std::optional<uint64_t> as_unsigned(const Json& value) {
  if (!value.is_number_unsigned()) return std::nullopt;
  return value.get<uint64_t>();
}

Shape parse_shape(const Json& json, const std::string& name, const std::string& path) {
  if (!json.is_array())
    fail_tensor(
        path, name,
        "shape is of type " + std::string(json.type_name()) + ", expected an array of integers");
  if (json.size() > static_cast<size_t>(kMaxDims))
    fail_tensor(path, name,
                "shape " + json.dump() + " has " + std::to_string(json.size()) +
                    " dimensions, at most " + std::to_string(kMaxDims) + " are supported");
  std::vector<int64_t> dims;
  int64_t numel = 1;
  for (const Json& dim : json) {
    std::optional<uint64_t> extent = as_unsigned(dim);
    if (!extent || *extent > static_cast<uint64_t>(INT64_MAX))
      fail_tensor(
          path, name,
          "shape " + json.dump() + " holds " + dim.dump() + ", expected non-negative integers");
    dims.push_back(static_cast<int64_t>(*extent));
    if (__builtin_mul_overflow(numel, dims.back(), &numel))
      fail_tensor(path, name, "shape " + json.dump() + " has more elements than fit in 64 bits");
  }
  return Shape(dims);
}

TensorEntry parse_entry(const std::string& name, const Json& json, uint64_t data_size,
                        const std::string& path, const SafetensorsReadOptions& options) {
  if (!json.is_object())
    fail_tensor(path, name,
                "entry is of type " + std::string(json.type_name()) +
                    ", expected an object with dtype, shape and data_offsets");
  for (const auto& [field, value] : json.items())
    if (field != "dtype" && field != "shape" && field != "data_offsets")
      fail_tensor(path, name, "unexpected field '" + field + "'");
  for (const char* field : {"dtype", "shape", "data_offsets"})
    if (!json.contains(field))
      fail_tensor(path, name, std::string("missing field '") + field + "'");

  const Json& dtype = json.at("dtype");
  const bool int64 = options.int64_as_float32 && dtype == "I64";
  if (dtype != "F32" && !int64)
    fail_tensor(path, name,
                "dtype is " + dtype.dump() +
                    (options.int64_as_float32
                         ? ", only \"F32\" (float32) and \"I64\" (int64) are supported"
                         : ", only \"F32\" (float32) is supported"));

  TensorEntry entry{name, parse_shape(json.at("shape"), name, path)};
  entry.int64 = int64;

  const Json& offsets = json.at("data_offsets");
  std::optional<uint64_t> begin, end;
  if (offsets.is_array() && offsets.size() == 2) {
    begin = as_unsigned(offsets[0]);
    end = as_unsigned(offsets[1]);
  }
  if (!begin || !end)
    fail_tensor(
        path, name,
        "data_offsets is " + offsets.dump() + ", expected [begin, end] with non-negative integers");
  if (*begin > *end)
    fail_tensor(path, name, "data_offsets " + offsets.dump() + " has begin after end");
  if (*end > data_size)
    fail_tensor(path, name,
                "data_offsets " + offsets.dump() + " ends beyond the data region of " +
                    std::to_string(data_size) + " bytes (file truncated?)");
  entry.begin = *begin;
  entry.end = *end;

  // Compared by division, so nothing overflows; numel * element_bytes is only printed.
  const uint64_t element_bytes = int64 ? sizeof(int64_t) : kBytesPerElement;
  uint64_t numel = static_cast<uint64_t>(entry.shape.numel());
  uint64_t bytes = entry.end - entry.begin;
  if (bytes % element_bytes != 0 || bytes / element_bytes != numel)
    fail_tensor(path, name,
                "shape " + entry.shape.str() + " has " + std::to_string(numel) + " elements (" +
                    std::to_string(numel * element_bytes) + " bytes), but data_offsets " +
                    offsets.dump() + " span " + std::to_string(bytes) + " bytes");
  return entry;
}

// Like the reference: sorted by offset, the tensors must tile the data region exactly, with no
// overlap, no gap and no trailing bytes.
void check_data_layout(std::vector<TensorEntry>& entries, uint64_t data_size,
                       const std::string& path) {
  std::sort(entries.begin(), entries.end(), [](const TensorEntry& a, const TensorEntry& b) {
    return std::tie(a.begin, a.end, a.name) < std::tie(b.begin, b.end, b.name);
  });
  uint64_t covered = 0;
  const std::string* previous = nullptr;
  for (const TensorEntry& entry : entries) {
    std::string range = "[" + std::to_string(entry.begin) + ", " + std::to_string(entry.end) + "]";
    if (entry.begin < covered)
      fail_tensor(path, entry.name,
                  "data_offsets " + range + " overlap tensor '" + *previous + "', which ends at " +
                      std::to_string(covered));
    if (entry.begin > covered)
      fail_tensor(path, entry.name,
                  "data_offsets " + range + " leave a gap of " +
                      std::to_string(entry.begin - covered) + " bytes after " +
                      (previous ? "tensor '" + *previous + "'" : "the start of the data"));
    covered = entry.end;
    previous = &entry.name;
  }
  if (covered != data_size)
    fail(path, std::to_string(data_size - covered) + " bytes after the last tensor's data are " +
                   "not covered by any tensor (expected " + std::to_string(data_size) +
                   " bytes of data)");
}

uint64_t decode_le64(const unsigned char bytes[8]) {
  uint64_t value = 0;
  for (int i = 7; i >= 0; --i) value = (value << 8) | bytes[i];
  return value;
}

// Reads an "I64" tensor's data and converts it to float32, which must hold every value exactly.
Tensor read_int64_tensor(ByteSource& in, const TensorEntry& entry) {
  std::vector<int64_t> values(static_cast<size_t>(entry.shape.numel()));
  in.read_exactly(values.data(), entry.end - entry.begin, "the data of tensor '" + entry.name + "'");
  Tensor tensor = Tensor::empty(entry.shape);
  float* out = tensor.data();
  for (size_t i = 0; i < values.size(); ++i) {
    if (values[i] > kLargestExactFloatInteger || values[i] < -kLargestExactFloatInteger)
      fail_tensor(in.source(), entry.name,
                  "int64 value " + std::to_string(values[i]) + " at index " + std::to_string(i) +
                      " is beyond 2^24 in magnitude, so float32 cannot hold it exactly");
    out[i] = static_cast<float>(values[i]);
  }
  return tensor;
}

SafeTensors read_safetensors_from(ByteSource& in, const SafetensorsReadOptions& options) {
  const std::string& path = in.source();
  const uint64_t file_size = in.size();
  if (file_size < 8)
    fail(path, "file is " + std::to_string(file_size) +
                   " bytes, shorter than the 8-byte header length field");
  unsigned char length_bytes[8];
  in.read_exactly(length_bytes, 8, "the header length");
  uint64_t header_size = decode_le64(length_bytes);
  if (header_size > kSafetensorsMaxHeaderBytes)
    fail(path, "header length " + std::to_string(header_size) + " exceeds the limit of " +
                   std::to_string(kSafetensorsMaxHeaderBytes) + " bytes");
  if (header_size > file_size - 8)
    fail(path, "header length " + std::to_string(header_size) + " exceeds the " +
                   std::to_string(file_size - 8) + " bytes after the length field (truncated?)");
  uint64_t data_size = file_size - 8 - header_size;

  std::string header_text(header_size, '\0');
  in.read_exactly(header_text.data(), header_size, "the JSON header");
  Json header = parse_header(header_text, path);
  if (!header.is_object())
    fail(path,
         "JSON header is of type " + std::string(header.type_name()) + ", expected an object");

  SafeTensors result;
  result.source = path;
  std::vector<TensorEntry> entries;
  for (const auto& [key, value] : header.items()) {
    if (key == kMetadataKey)
      result.metadata = parse_metadata(value, path);
    else
      entries.push_back(parse_entry(key, value, data_size, path, options));
  }
  check_data_layout(entries, data_size, path);

  // Only now, with every size proven to fit inside the file, is memory allocated.
  for (const TensorEntry& entry : entries) {
    if (entry.int64) {
      result.tensors.emplace_back(entry.name, read_int64_tensor(in, entry));
      continue;
    }
    Tensor tensor = Tensor::empty(entry.shape);
    in.read_exactly(tensor.data(), entry.end - entry.begin,
                    "the data of tensor '" + entry.name + "'");
    result.tensors.emplace_back(entry.name, std::move(tensor));
  }
  return result;
}

}  // namespace

const Tensor& SafeTensors::get(const std::string& name) const {
  for (const auto& [tensor_name, tensor] : tensors)
    if (tensor_name == name) return tensor;
  throw std::out_of_range("safetensors file '" + source + "' has no tensor named '" + name + "'");
}

void write_safetensors(const std::string& path, const NamedTensors& tensors,
                       const std::map<std::string, std::string>& metadata) {
  check_tensors_to_write(tensors);
  std::string header = build_header(tensors, metadata);
  unsigned char length[8];
  for (int i = 0; i < 8; ++i) length[i] = static_cast<unsigned char>(header.size() >> (8 * i));

  AtomicFileWriter out(path);
  out.write(length, sizeof(length));
  out.write(header.data(), header.size());
  for (const auto& [name, tensor] : tensors) {
    Tensor dense = tensor.contiguous();
    out.write(dense.data(), static_cast<size_t>(dense.numel()) * kBytesPerElement);
  }
  out.commit();
}

SafeTensors read_safetensors(const std::string& path, const SafetensorsReadOptions& options) {
  FilePtr file(std::fopen(path.c_str(), "rb"));
  if (!file) fail(path, "cannot open: " + errno_text());
  struct stat info {};
  if (::fstat(::fileno(file.get()), &info) != 0) fail(path, "cannot stat: " + errno_text());
  // A directory, pipe or device has no trustworthy size (and /dev/zero never ends).
  if (!S_ISREG(info.st_mode)) fail(path, "not a regular file");
  FileSource source(file.get(), path, static_cast<uint64_t>(info.st_size));
  return read_safetensors_from(source, options);
}

SafeTensors read_safetensors_from_memory(std::string_view bytes, const std::string& source,
                                         const SafetensorsReadOptions& options) {
  MemorySource memory(bytes, source);
  return read_safetensors_from(memory, options);
}

}  // namespace dpm
