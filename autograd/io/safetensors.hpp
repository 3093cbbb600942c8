#pragma once
// The safetensors file format (Hugging Face's pickle-free tensor container), float32 (and, on
// request, int64 read as float32):
//   8 bytes  little-endian u64 N, the header length
//   N bytes  UTF-8 JSON: {"__metadata__": {str: str}, "name": {"dtype": "F32", "shape": [..],
//            "data_offsets": [begin, end]}, ...}, padded with spaces to a multiple of 8 bytes
//   rest     raw little-endian tensor data; offsets count from the byte after the header
// A file is untrusted input: the reader validates the whole header (sizes, types, offsets,
// overflow) before it allocates any tensor, and every problem is reported as SafetensorsError.
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "autograd/state_dict.hpp"
#include "autograd/tensor.hpp"

namespace dpm {

// A malformed, hostile or unreadable file, or a failed write; the message names the file.
class SafetensorsError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

inline constexpr uint64_t kSafetensorsMaxHeaderBytes = 100'000'000;  // the reference's limit
inline constexpr int64_t kSafetensorsMaxTensors = 100'000;

struct SafeTensors {
  NamedTensors tensors;  // in file (data offset) order
  std::map<std::string, std::string> metadata;
  std::string source;  // the path it was read from, for error messages

  // Throws std::out_of_range naming the tensor and the file when it is absent.
  const Tensor& get(const std::string& name) const;
};

// Writes the tensors in the given order (any strides) to "<path>.tmp.<pid>", fsyncs it, renames
// it over `path` and fsyncs the directory, so a crash or a full disk never leaves a torn file and
// an existing file stays intact on failure. Empty metadata omits "__metadata__", as the
// reference does. Throws std::invalid_argument for undefined tensors or duplicate/reserved names.
void write_safetensors(const std::string& path, const NamedTensors& tensors,
                       const std::map<std::string, std::string>& metadata = {});

struct SafetensorsReadOptions {
  // A PyTorch state_dict holds BatchNorm's step counter num_batches_tracked as int64 ("I64"):
  // with this set such tensors are read as float32, exactly (a value beyond 2^24 in magnitude
  // is an error naming the tensor). dpmlab writes float32 only, so its own files never need it.
  bool int64_as_float32 = false;
};

SafeTensors read_safetensors(const std::string& path, const SafetensorsReadOptions& options = {});
// The same reader on bytes already in memory (e.g. a fuzzer's input); `source` names them in
// error messages and in SafeTensors::source.
SafeTensors read_safetensors_from_memory(std::string_view bytes,
                                         const std::string& source = "<memory>",
                                         const SafetensorsReadOptions& options = {});

}  // namespace dpm
