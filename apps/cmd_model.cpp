// dpmlab model summary | init | import: build a model from the command line, then print its
// layer table, save it freshly initialised as a checkpoint, or load a PyTorch state_dict into it.
#include <cstdint>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "apps/commands.hpp"
#include "apps/common.hpp"
#include "apps/diffusion_flags.hpp"
#include "apps/flag_config.hpp"
#include "diffusion/checkpoint.hpp"
#include "nn/checkpoint.hpp"
#include "nn/noise_model.hpp"
#include "nn/summary.hpp"
#include "nn/unet.hpp"
#include "trainers/dpm_training.hpp"
#include "trainers/model_import.hpp"

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

// --arch, and the options whose use depends on it, checked once parsing is done.
struct ArchOptions {
  CLI::Option *arch, *length, *size, *dim, *norm, *attention, *conditioning;
};

struct BuiltModel {
  std::shared_ptr<nn::NoiseModel> model;
  Shape sample_shape;  // one sample, without the batch dim
};

ArchOptions add_arch_options(CLI::App* command, ArchArgs& args) {
  ArchOptions options{};
  options.arch = command->add_option("--arch", args.arch, "Architecture")
                     ->check(CLI::IsMember({"unet1d", "unet2d", "mlp"}));
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
  options.arch->required();
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
  options.arch->required();
  init->add_option("--out", args->out, "Checkpoint to write")->required();
  init->callback([=] {
    check_arch_options(options, args->arch.arch);
    BuiltModel built = build_model(args->arch);
    nn::save_model(args->out, *built.model);
    std::cout << "wrote " << args->out << " (" << built.model->parameter_count()
              << " parameters, config " << built.model->config().dump() << ")\n";
  });
}

struct ImportArgs {
  ArchArgs arch;
  DiffusionFlags diffusion;
  std::string state_dict, config_file, out;
};

// The model, schedule and objective from --config (a `dpmlab train` config) or the defaults,
// with the architecture flags and --schedule, --T, --target over them.
train::DpmTrainingConfig import_config(const ImportArgs& args, const ArchOptions& arch,
                                       const CLI::App* command) {
  train::DpmTrainingConfig config;
  if (!args.config_file.empty()) {
    CommonArgs common;
    common.config_file = args.config_file;
    const nlohmann::json file = read_config_file(common);
    config = as_usage_error("--config", [&] {
      try {
        return train::DpmTrainingConfig::from_json(file);
      } catch (const std::invalid_argument& e) {
        throw std::invalid_argument(args.config_file + ": " + e.what());
      }
    });
  }
  if (arch.arch->count() > 0) config.model = build_model(args.arch).model->config();
  apply_diffusion_flags(command, args.diffusion, config);
  return config;
}

void register_import_command(CLI::App* model) {
  auto args = std::make_shared<ImportArgs>();
  CLI::App* import_command = model->add_subcommand(
      "import",
      "Turn a PyTorch state_dict of a twin network (tools/torch_reference.py, saved with "
      "safetensors.torch.save_file) into a dpmlab checkpoint: every tensor name and shape is "
      "checked against the model of --arch and its flags (as model init takes them) or of "
      "--config (a train config such as a run's config.used.json), and the schedule and the "
      "prediction target are stored beside the weights.\n"
      "Example: dpmlab model import --state-dict twin.safetensors --arch mlp --dim 64 "
      "--schedule paper_linear --T 300 --target eps --out mlp.safetensors");
  import_command->add_option("--state-dict", args->state_dict, "safetensors state_dict to import")
      ->required()
      ->check(CLI::ExistingFile);
  ArchOptions options = add_arch_options(import_command, args->arch);
  import_command
      ->add_option("--config", args->config_file,
                   "train config JSON whose model, schedule and objective are used")
      ->check(CLI::ExistingFile)
      ->excludes(options.arch);
  add_diffusion_flags(import_command, args->diffusion,
                      {" (default: 300)", " (default: paper_linear)", " (default: eps)"});
  import_command->add_option("--out", args->out, "dpmlab checkpoint to write")->required();
  import_command->callback([=] {
    if (options.arch->count() == 0 && args->config_file.empty())
      throw CLI::ValidationError("--arch", "give the architecture: --arch (with its flags) or "
                                           "--config");
    check_arch_options(options, args->arch.arch);
    const train::DpmTrainingConfig config = import_config(*args, options, import_command);
    const diffusion::Schedule schedule = as_usage_error(
        "--schedule", [&] { return diffusion::Schedule::from_json(config.schedule); });
    // A bad model config or an objective that does not fit the schedule.
    const diffusion::DpmCheckpoint checkpoint = as_usage_error(
        args->config_file.empty() ? "--arch" : "--config", [&] {
      return train::import_state_dict(args->state_dict, config.model, schedule, config.objective);
    });
    diffusion::save_dpm_checkpoint(args->out, checkpoint);
    std::cout << "wrote " << args->out << " (" << checkpoint.model->parameter_count()
              << " parameters, config " << checkpoint.model->config().dump() << ", schedule "
              << schedule.to_json().dump() << ", target "
              << diffusion::prediction_target_name(checkpoint.objective.target) << ")\n";
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
  register_import_command(model);
  register_model_check_command(*model);
}

}  // namespace dpm::cli
