#pragma once
// FlagTable: a command's flags, each declared once and bound to a field of the experiment's Plan
// (experiments/plan.hpp). The declaration gives the flag's --help line (with the field's default),
// reads the flag's text into the field (field_from_text: "-20:30:5" is a typed number list), and
// names the field in the --config merge: a flag "--mc-snr" is the plan's JSON field "mc_snr".
//
//   using Plan = experiments::NllBoundPlan;
//   auto flags = std::make_shared<FlagTable<Plan>>(command, "runs/bound");
//   flags->add("--samples", &Plan::samples, "use the split's first N samples");
//   flags->seed(&Plan::seed);
//   command->callback([flags] { run_experiment(*flags, "bound", "bounds"); });
//
// (run_experiment: apps/experiment_command.hpp; it starts with flags->plan().)
//
// plan(): the defaults (or a preset's, see preset()), then the --config file's fields, then the flags given on the command
// line; then Plan::validate(). Every error is a usage error (CLI::ValidationError, exit code 2)
// naming the flag, and "--config FILE" when the value came from the file; a field of the file
// that the plan does not have is a usage error naming --config. The config.used.json of a run is
// plan_to_json(plan), which --config reads back into the same plan.
#include <deque>
#include <functional>
#include <string>
#include <type_traits>
#include <vector>

#include <CLI/CLI.hpp>

#include "apps/common.hpp"
#include "experiments/plan.hpp"

namespace dpm::cli {

template <typename Plan>
class FlagTable {
 public:
  // Adds the common flags (add_common_flags) to `command`, --out defaulting to `default_out`.
  FlagTable(CLI::App* command, const std::string& default_out) : command_(command) {
    add_common_flags(command, common_, default_out);
  }

  // Declares `name` ("--snr") bound to plan.*member. Returns the option for CLI11 checks that
  // concern the command line only (e.g. CLI::ExistingFile).
  template <typename T>
  CLI::Option* add(const std::string& name, T Plan::*member, const std::string& help) {
    Entry& entry = entries_.emplace_back(Entry{name, field_name(name), "", {}});
    entry.apply = [&entry, member](Plan& plan) {
      experiments::field_from_text(entry.text, plan.*member);
    };
    CLI::Option* option = command_->add_option(name, entry.text, help)->type_name(type_name<T>());
    const std::string shown = experiments::field_text(Plan{}.*member);
    if (!shown.empty()) option->default_str(shown);
    return option;
  }

  // Declares a flag without a value ("--quick") that starts plan() from preset() instead of the
  // plan's defaults; --config and the other flags still override its fields.
  void preset(const std::string& name, Plan (*preset)(), const std::string& help) {
    preset_flag_ = name;
    preset_ = preset;
    command_->add_flag(name, help);
  }

  // The same for a field the plan inherits (e.g. experiments::InverseSolverPlan's).
  template <typename T, typename Base>
    requires(std::is_base_of_v<Base, Plan> && !std::is_same_v<Base, Plan>)
  CLI::Option* add(const std::string& name, T Base::*member, const std::string& help) {
    return add(name, static_cast<T Plan::*>(member), help);
  }

  // Binds the common --seed to plan.*member (JSON field "seed").
  void seed(uint64_t Plan::*member) {
    Entry& entry = entries_.emplace_back(Entry{"--seed", "seed", "", {}});
    entry.apply = [this, member](Plan& plan) { plan.*member = common_.seed; };
  }

  const CommonArgs& common() const { return common_; }

  Plan plan() const {
    const nlohmann::json file = read_config_file(common_);
    const bool from_preset = preset_ != nullptr && given(preset_flag_);
    Plan plan = usage_errors(
        [&] { return experiments::plan_from_json<Plan>(file, from_preset ? preset_() : Plan{}); });
    for (const Entry& entry : entries_)
      if (given(entry.flag)) as_usage_error(entry.flag, [&] { entry.apply(plan); });
    usage_errors([&] { plan.validate(); });
    return plan;
  }

  // Runs fn(); a PlanError from it becomes the usage error naming its field's flag.
  template <typename F>
  auto usage_errors(F&& fn) const -> decltype(fn()) {
    try {
      return fn();
    } catch (const experiments::PlanError& e) {
      throw CLI::ValidationError(source_of(e.field()), e.message());
    }
  }

 private:
  struct Entry {
    std::string flag, field, text;  // text: the command line's, when given
    std::function<void(Plan&)> apply;
  };

  // What --help shows for a flag's value.
  template <typename T>
  static std::string type_name() {
    if constexpr (std::is_same_v<T, std::string>) return "TEXT";
    if constexpr (std::is_same_v<T, int64_t> || std::is_same_v<T, uint64_t>) return "INT";
    if constexpr (std::is_same_v<T, double>) return "NUMBER";
    if constexpr (std::is_same_v<T, std::vector<double>>) return "NUMBERS";
    if constexpr (std::is_same_v<T, std::vector<int64_t>>) return "INTS";
    if constexpr (std::is_same_v<T, experiments::IntegerListOrAuto>) return "auto|INTS";
    if constexpr (experiments::Choice<T>) return names<T>();
    if constexpr (requires { typename T::value_type; })
      if constexpr (experiments::Choice<typename T::value_type>)
        return "LIST of " + names<typename T::value_type>();
    return "VALUE";
  }

  // "{a,b,c}": an enum's names.
  template <typename E>
  static std::string names() {
    std::string text;
    for (const auto& [value, name] : experiments::Choices<E>::values)
      text += (text.empty() ? "{" : ",") + std::string(name);
    return text + "}";
  }

  static std::string field_name(const std::string& flag) {
    std::string name = flag.substr(flag.find_first_not_of('-'));
    for (char& c : name)
      if (c == '-') c = '_';
    return name;
  }

  bool given(const std::string& flag) const { return command_->get_option(flag)->count() > 0; }

  // Who set `field`: its flag (on the command line or defaulted), or the config file.
  std::string source_of(const std::string& field) const {
    const std::string from_file = "--config " + common_.config_file;
    const bool in_file = !common_.config_file.empty() && read_config_file(common_).contains(field);
    for (const Entry& entry : entries_)
      if (entry.field == field)
        return given(entry.flag) || !in_file ? entry.flag
                                             : entry.flag + " (from " + from_file + ")";
    return in_file ? from_file + ", field '" + field + "'" : field;
  }

  template <typename F>
  static void as_usage_error(const std::string& flag, F&& fn) {
    try {
      fn();
    } catch (const std::invalid_argument& e) {
      throw CLI::ValidationError(flag, e.what());
    }
  }

  CLI::App* command_;
  CommonArgs common_;
  std::string preset_flag_;
  Plan (*preset_)() = nullptr;
  std::deque<Entry> entries_;  // stable addresses: CLI11 writes into entry.text
};

}  // namespace dpm::cli
