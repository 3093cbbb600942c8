#pragma once
// Learning-rate schedules as pure functions of the step index, so resuming needs nothing but the
// step count: call optimizer.set_lr(schedule(optimizer.step_count())) before each step.
#include <cstdint>
#include <string>

namespace dpm::optim {

enum class LrScheduleKind {
  constant,       // base_lr
  step,           // base_lr * gamma^floor(step / step_size), as torch.optim.lr_scheduler.StepLR
  warmup_cosine,  // linear warmup, then cosine decay to min_lr at total_steps, then min_lr
};

struct LrScheduleOptions {
  LrScheduleKind kind = LrScheduleKind::constant;
  double base_lr = 1e-3;
  // step
  int64_t step_size = 1000;
  double gamma = 0.1;
  // warmup_cosine: steps 0 .. warmup_steps-1 use base_lr * (step + 1) / warmup_steps, so the
  // first step already moves; then progress p = (step - warmup_steps) / (total_steps -
  // warmup_steps) gives min_lr + (base_lr - min_lr) * (1 + cos(pi p)) / 2.
  int64_t warmup_steps = 0;
  int64_t total_steps = 0;
  double min_lr = 0;
};

class LrSchedule {
 public:
  // The learning rate of the optimizer step with 0-based index `step` (the number of steps
  // already taken); throws std::invalid_argument for a negative step.
  double operator()(int64_t step) const;
  const LrScheduleOptions& options() const { return options_; }

 private:
  friend LrSchedule make_lr_schedule(const LrScheduleOptions& options);
  explicit LrSchedule(const LrScheduleOptions& options) : options_(options) {}

  LrScheduleOptions options_;
};

// Validates the options for their kind; throws std::invalid_argument naming the bad field.
LrSchedule make_lr_schedule(const LrScheduleOptions& options);

// "constant", "step" or "warmup_cosine" (for configuration files).
LrScheduleKind parse_lr_schedule_kind(const std::string& name);
const char* lr_schedule_kind_name(LrScheduleKind kind);

}  // namespace dpm::optim
