// A libFuzzer binary around one target of targets.hpp, chosen at build time (fuzz/CMakeLists.txt
// defines DPM_FUZZ_TARGET as its function).
#include <cstddef>
#include <cstdint>

#include "autograd/threading.hpp"
#include "fuzz/targets.hpp"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // One thread: a fuzzer explores inputs, not schedules (the TSan pass of CI covers threads).
  dpm::set_num_threads(1);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  DPM_FUZZ_TARGET(data, size);
  return 0;
}
