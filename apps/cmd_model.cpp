// dpmlab model summary: build a model from the command line and print its layer table.
#include <cstdint>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "apps/commands.hpp"
#include "nn/noise_model.hpp"
#include "nn/summary.hpp"
#include "nn/unet.hpp"

namespace dpm::cli {
namespace {

// Sizes and channel counts: CLI::PositiveNumber would print a double's range in its message.
const CLI::Range kSizeRange(int64_t{1}, int64_t{1} << 20);

struct SummaryArgs {
  std::string arch;
  int64_t length = 64, size = 28, dim = 64, channels = 1;
  std::string norm = "batch";
  bool attention = false;
  int depth = 4;
  uint64_t seed = 0;
};

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

void run_summary(const SummaryArgs& args) {
  nlohmann::json config;
  Shape sample_shape;
  if (args.arch == "mlp") {
    config = {{"arch", "mlp"}, {"dim", args.channels * args.dim}};
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
  std::shared_ptr<nn::NoiseModel> model = nn::make_noise_model(config, rng);
  std::cout << "Config: " << model->config().dump() << "\n\n"
            << nn::summary(*model, sample_shape, args.depth);
}

}  // namespace

void register_model_command(CLI::App& app) {
  CLI::App* model = app.add_subcommand(
      "model",
      "Inspect model architectures.\nExample: dpmlab model summary --arch unet2d --size 28");
  model->require_subcommand(1);

  auto args = std::make_shared<SummaryArgs>();
  CLI::App* summary = model->add_subcommand(
      "summary",
      "Print a model's layers (output shape, parameters) and totals, from one forward pass "
      "with batch 1.\n"
      "Examples:\n"
      "  dpmlab model summary --arch unet1d --length 64\n"
      "  dpmlab model summary --arch unet2d --size 28 --depth 4\n"
      "  dpmlab model summary --arch mlp --dim 64");
  summary->add_option("--arch", args->arch, "Architecture")
      ->required()
      ->check(CLI::IsMember({"unet1d", "unet2d", "mlp"}));
  CLI::Option* length = summary->add_option("--length", args->length, "Vector length (unet1d)")
                            ->check(kSizeRange)
                            ->capture_default_str();
  CLI::Option* size = summary->add_option("--size", args->size, "Image height = width (unet2d)")
                          ->check(kSizeRange)
                          ->capture_default_str();
  CLI::Option* dim = summary->add_option("--dim", args->dim, "Vector dimension N (mlp)")
                         ->check(kSizeRange)
                         ->capture_default_str();
  summary->add_option("--channels", args->channels, "Data channels")
      ->check(kSizeRange)
      ->capture_default_str();
  CLI::Option* norm = summary->add_option("--norm", args->norm, "Normalisation in the U-Net blocks")
                          ->check(CLI::IsMember({"batch", "group"}))
                          ->capture_default_str();
  CLI::Option* attention = summary->add_flag("--attention", args->attention,
                                             "Self-attention at the U-Net's lowest resolution");
  summary->add_option("--depth", args->depth, "Deepest module level listed (-1: all)")
      ->check(CLI::Range(-1, 100))
      ->capture_default_str();
  summary->add_option("--seed", args->seed, "Initialisation seed")->capture_default_str();

  summary->callback([=] {
    require_arch_for(length, args->arch, {"unet1d"});
    require_arch_for(size, args->arch, {"unet2d"});
    require_arch_for(dim, args->arch, {"mlp"});
    require_arch_for(norm, args->arch, {"unet1d", "unet2d"});
    require_arch_for(attention, args->arch, {"unet1d", "unet2d"});
    run_summary(*args);
  });
}

}  // namespace dpm::cli
