// dpmlab model summary | init: build a model from the command line, then print its layer table
// or save it freshly initialised as a checkpoint.
#include <cstdint>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "apps/commands.hpp"
#include "nn/checkpoint.hpp"
#include "nn/noise_model.hpp"
#include "nn/summary.hpp"
#include "nn/unet.hpp"

namespace dpm::cli {
namespace {

// Sizes and channel counts: CLI::PositiveNumber would print a double's range in its message.
const CLI::Range kSizeRange(int64_t{1}, int64_t{1} << 20);

// The flags that pick an architecture and its data shape (shared by summary and init).
struct ArchArgs {
  std::string arch;
  int64_t length = 64, size = 28, dim = 64, channels = 1;
  std::string norm = "batch";
  bool attention = false;
  std::string conditioning = "add";
  uint64_t seed = 0;
};

// The options whose use depends on --arch, checked once parsing is done.
struct ArchOptions {
  CLI::Option *length, *size, *dim, *norm, *attention, *conditioning;
};

struct BuiltModel {
  std::shared_ptr<nn::NoiseModel> model;
  Shape sample_shape;  // one sample, without the batch dim
};

ArchOptions add_arch_options(CLI::App* command, ArchArgs& args) {
  command->add_option("--arch", args.arch, "Architecture")
      ->required()
      ->check(CLI::IsMember({"unet1d", "unet2d", "mlp"}));
  ArchOptions options{};
  options.length = command->add_option("--length", args.length, "Vector length (unet1d)")
                       ->check(kSizeRange)
                       ->capture_default_str();
  options.size = command->add_option("--size", args.size, "Image height = width (unet2d)")
                     ->check(kSizeRange)
                     ->capture_default_str();
  options.dim = command->add_option("--dim", args.dim, "Vector dimension N (mlp)")
                    ->check(kSizeRange)
                    ->capture_default_str();
  command->add_option("--channels", args.channels, "Data channels")
      ->check(kSizeRange)
      ->capture_default_str();
  options.norm = command->add_option("--norm", args.norm, "Normalisation in the U-Net blocks")
                     ->check(CLI::IsMember({"batch", "group"}))
                     ->capture_default_str();
  options.attention = command->add_flag("--attention", args.attention,
                                        "Self-attention at the U-Net's lowest resolution");
  options.conditioning =
      command
          ->add_option("--conditioning", args.conditioning, "Time conditioning of the MLP blocks")
          ->check(CLI::IsMember({"add", "film"}))
          ->capture_default_str();
  command->add_option("--seed", args.seed, "Initialisation seed")->capture_default_str();
  return options;
}

// A flag given for an architecture that ignores it is a usage error, not a silent no-op.
void require_arch_for(const CLI::Option* option, const std::string& arch,
                      const std::vector<std::string>& wanted) {
  if (option->count() == 0) return;
  for (const auto& w : wanted)
    if (arch == w) return;
  std::string list;
  for (const auto& w : wanted) list += (list.empty() ? "" : " or ") + w;
  throw CLI::ValidationError(option->get_name(), "only applies to --arch " + list);
}

void check_arch_options(const ArchOptions& options, const std::string& arch) {
  require_arch_for(options.length, arch, {"unet1d"});
  require_arch_for(options.size, arch, {"unet2d"});
  require_arch_for(options.dim, arch, {"mlp"});
  require_arch_for(options.norm, arch, {"unet1d", "unet2d"});
  require_arch_for(options.attention, arch, {"unet1d", "unet2d"});
  require_arch_for(options.conditioning, arch, {"mlp"});
}

BuiltModel build_model(const ArchArgs& args) {
  nlohmann::json config;
  Shape sample_shape;
  if (args.arch == "mlp") {
    config = {
        {"arch", "mlp"}, {"dim", args.channels * args.dim}, {"conditioning", args.conditioning}};
    sample_shape = {args.channels, args.dim};
  } else {
    config = {{"arch", args.arch},
              {"data_channels", args.channels},
              {"norm", args.norm},
              {"attention", args.attention}};
    // The U-Net pools len(multipliers) - 1 times: the spatial size must survive that exactly.
    nn::UNetOptions options = nn::UNetOptions::from_json(config);
    const int64_t divisor = int64_t{1} << (options.channel_multipliers.size() - 1);
    const bool one_d = args.arch == "unet1d";
    const int64_t extent = one_d ? args.length : args.size;
    if (extent % divisor != 0)
      throw CLI::ValidationError(
          one_d ? "--length" : "--size",
          "must be divisible by " + std::to_string(divisor) + ", got " + std::to_string(extent));
    sample_shape =
        one_d ? Shape{args.channels, args.length} : Shape{args.channels, args.size, args.size};
  }
  Rng rng(args.seed);
  return {nn::make_noise_model(config, rng), sample_shape};
}

void register_summary_command(CLI::App* model) {
  struct SummaryArgs {
    ArchArgs arch;
    int depth = 4;
  };
  auto args = std::make_shared<SummaryArgs>();
  CLI::App* summary = model->add_subcommand(
      "summary",
      "Print a model's layers (output shape, parameters) and totals, from one forward pass "
      "with batch 1.\n"
      "Examples:\n"
      "  dpmlab model summary --arch unet1d --length 64\n"
      "  dpmlab model summary --arch unet2d --size 28 --depth 4\n"
      "  dpmlab model summary --arch mlp --dim 64");
  ArchOptions options = add_arch_options(summary, args->arch);
  summary->add_option("--depth", args->depth, "Deepest module level listed (-1: all)")
      ->check(CLI::Range(-1, 100))
      ->capture_default_str();
  summary->callback([=] {
    check_arch_options(options, args->arch.arch);
    BuiltModel built = build_model(args->arch);
    std::cout << "Config: " << built.model->config().dump() << "\n\n"
              << nn::summary(*built.model, built.sample_shape, args->depth);
  });
}

void register_init_command(CLI::App* model) {
  struct InitArgs {
    ArchArgs arch;
    std::string out;
  };
  auto args = std::make_shared<InitArgs>();
  CLI::App* init = model->add_subcommand(
      "init",
      "Save a freshly initialised model (weights from --seed, config in the metadata) as a "
      "safetensors checkpoint.\n"
      "Example: dpmlab model init --arch unet1d --seed 1 --out unet1d.safetensors");
  ArchOptions options = add_arch_options(init, args->arch);
  init->add_option("--out", args->out, "Checkpoint to write")->required();
  init->callback([=] {
    check_arch_options(options, args->arch.arch);
    BuiltModel built = build_model(args->arch);
    nn::save_model(args->out, *built.model);
    std::cout << "wrote " << args->out << " (" << built.model->parameter_count()
              << " parameters, config " << built.model->config().dump() << ")\n";
  });
}

}  // namespace

void register_model_command(CLI::App& app) {
  CLI::App* model = app.add_subcommand("model",
                                       "Inspect, create and check model architectures.\n"
                                       "Example: dpmlab model summary --arch unet2d --size 28");
  model->require_subcommand(1);
  register_summary_command(model);
  register_init_command(model);
  register_model_check_command(*model);
}

}  // namespace dpm::cli
