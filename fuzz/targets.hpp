#pragma once
// One fuzz target per parser of untrusted files. A target returns normally when its input is
// either accepted or rejected with the parser's documented error; anything else is a finding: a
// crash or sanitizer report, an exception of another type, or a broken invariant (reported as
// std::logic_error "fuzz invariant: ..."). fuzz_main.cpp wraps one target as a libFuzzer binary,
// and tests/test_fuzz_regressions.cpp feeds the seed corpora and every past crash through the
// same functions.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace dpm::fuzz {

using Target = void (*)(const uint8_t* data, size_t size);

struct NamedTarget {
  std::string name;  // also the folder of its seeds: fuzz/corpus/<name>/
  Target run;
};
const std::vector<NamedTarget>& all_targets();

// read_safetensors_from_memory; an accepted file is written back and must read back the same.
void safetensors(const uint8_t* data, size_t size);
// nn::load_state into make_small_model(): an accepted file's tensors end up in the model, a
// rejected one leaves the model bitwise untouched.
void checkpoint(const uint8_t* data, size_t size);
// Trainer::resume of make_tiny_trainer() from the input as a file.
void resume(const uint8_t* data, size_t size);
// datasets::read_idx (plain or gzip) of the input as a file; also read_idx_images/labels.
void idx(const uint8_t* data, size_t size);
// datasets::load_gmm of the input as a file.
void gmm(const uint8_t* data, size_t size);
// JSON text -> DpmTrainingConfig::from_json; an accepted config must survive to_json/from_json.
void config(const uint8_t* data, size_t size);

}  // namespace dpm::fuzz
