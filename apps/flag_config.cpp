#include "apps/flag_config.hpp"

namespace dpm::cli {
namespace {

std::string field_name(const std::string& flag) {
  std::string name = flag.substr(flag.find_first_not_of('-'));
  for (char& c : name)
    if (c == '-') c = '_';
  return name;
}

}  // namespace

bool flag_given(const CLI::App* command, const std::string& flag) {
  return command->get_option(flag)->count() > 0;
}

FlagConfig::FlagConfig(const CLI::App* command, const CommonArgs& common)
    : command_(command),
      file_(read_config_file(common)),
      reader_(file_, "config file '" + common.config_file + "'") {}

template <typename T, typename Read>
void FlagConfig::take(const std::string& flag, T& value, Read read) {
  T from_file = as_usage_error("--config", read);
  if (!flag_given(command_, flag)) value = from_file;
  used_[field_name(flag)] = value;
}

void FlagConfig::integer(const std::string& flag, int64_t& value, int64_t min_value) {
  take(flag, value, [&] { return reader_.integer(field_name(flag), value, min_value); });
}

void FlagConfig::number(const std::string& flag, double& value, double min_value) {
  take(flag, value, [&] { return reader_.number(field_name(flag), value, min_value); });
}

void FlagConfig::text(const std::string& flag, std::string& value) {
  take(flag, value, [&] { return reader_.string(field_name(flag), value); });
}

void FlagConfig::seed(uint64_t& value) {
  take(std::string("--seed"), value, [&] {
    return static_cast<uint64_t>(reader_.integer("seed", static_cast<int64_t>(value), 0));
  });
}

nlohmann::json FlagConfig::finish() const {
  as_usage_error("--config", [&] {
    reader_.finish();
    return 0;
  });
  return used_;
}

}  // namespace dpm::cli
