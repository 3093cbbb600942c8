#pragma once
// Lists of values given to one flag (--snr -10,0,10 or --snr -20:30:5, --T 10,50,300). A bad
// list is a usage error naming the flag (CLI::ValidationError, exit code 2).
#include <cstdint>
#include <string>
#include <vector>

namespace dpm::cli {

// "START:STOP:STEP" (both ends included, STEP > 0) or a comma-separated list "A,B,C" of finite
// numbers; at most 1000 values.
std::vector<double> parse_number_list(const std::string& text, const std::string& flag);

// A comma-separated list of integers in [min_value, max_value], each at most once.
std::vector<int64_t> parse_integer_list(const std::string& text, const std::string& flag,
                                        int64_t min_value, int64_t max_value);

}  // namespace dpm::cli
