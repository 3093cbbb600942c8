// dpmlab restore: image restoration with a trained DM prior (experiments/image_restore.hpp), its
// flags bound to the plan's fields. Writes restore.md (also printed), restore.json, restore.csv,
// one PNG grid per task, the PSNR plot and measurements.safetensors into --out.
#include <memory>

#include "apps/commands.hpp"
#include "apps/experiment_command.hpp"
#include "apps/solver_flags.hpp"
#include "experiments/image_restore.hpp"
#include "experiments/image_restore_report.hpp"

namespace dpm::cli {

void register_restore_command(CLI::App& app) {
  using Plan = experiments::ImageRestorePlan;
  CLI::App* command = app.add_subcommand(
      "restore",
      "Restore images with a trained DM prior: RED-Diff, DPS, PiGDM and DDRM with a network "
      "trained by `dpmlab train` on images (e.g. --arch unet2d on fashion-mnist), on test images, "
      "y = A x0 + sigma_y n in pixel units. Tasks: box (a centred square missing), random "
      "(pixels missing), sr2 and sr4 (block-average super-resolution), blur (Gaussian) and mask "
      "(--mask). Scores PSNR and SSIM per image beside the measurement itself. Writes "
      "restore.md, .json, .csv, a PNG grid per task, a PSNR plot and measurements.safetensors "
      "into --out.\n"
      "Example: dpmlab restore --checkpoint runs/fmnist/best.safetensors --out runs/restore");
  auto flags = std::make_shared<FlagTable<Plan>>(command, "runs/restore");
  flags->preset("--quick", &Plan::quick,
                "a small size for a first look: 4 images, every task, 5-10 steps per solver; "
                "other flags override it");
  flags
      ->add("--checkpoint", &Plan::checkpoint,
            "a network trained by `dpmlab train` on images of the kind restored (required)")
      ->check(CLI::ExistingFile);
  flags->add("--data", &Plan::data,
             "the images: fashion-mnist (its test split) or an image folder");
  flags->add("--data-dir", &Plan::data_dir, "where the Fashion-MNIST files are");
  flags->add("--first-image", &Plan::first_image, "the index of the first image restored");
  flags->add("--images", &Plan::images, "how many images are restored (one batch)");
  flags->add("--tasks", &Plan::tasks, "a list of box, random, sr2, sr4, blur, mask");
  flags->add("--box-size", &Plan::box_size, "box: the side of the missing square, in pixels");
  flags->add("--missing", &Plan::missing, "random: the fraction of pixels missing, in (0, 0.99]");
  flags->add("--blur-sigma", &Plan::blur_sigma, "blur: the Gaussian's sigma in pixels (9 taps)");
  flags->add("--blur-singular-floor", &Plan::blur_singular_floor,
             "blur: each axis's singular values below this are zeroed, as the DDRM and RED-Diff "
             "code does (0: the exact blur)");
  flags->add("--mask", &Plan::mask,
             "mask: a PNG of the images' size, black (< 0.5) where pixels are missing; list "
             "'mask' in --tasks");
  flags->add("--sigma-y", &Plan::sigma_y, "the measurement noise in pixel units (> 0)");
  flags->add("--grid-images", &Plan::grid_images, "images shown in each task's PNG grid");
  add_solver_flags(*flags);
  flags->seed(&Plan::seed);
  command->callback([flags] { run_experiment(*flags, "restore", "units"); });
}

}  // namespace dpm::cli
