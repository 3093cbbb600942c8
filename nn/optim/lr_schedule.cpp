#include "nn/optim/lr_schedule.hpp"

#include <cmath>
#include <numbers>
#include <sstream>
#include <stdexcept>

namespace dpm::optim {
namespace {

void require(bool ok, LrScheduleKind kind, const char* what, const char* expected, double value) {
  if (ok) return;
  std::ostringstream message;
  message << "LrSchedule(" << lr_schedule_kind_name(kind) << "): " << what << " must be "
          << expected << ", got " << value;
  throw std::invalid_argument(message.str());
}

}  // namespace

const char* lr_schedule_kind_name(LrScheduleKind kind) {
  switch (kind) {
    case LrScheduleKind::constant:
      return "constant";
    case LrScheduleKind::step:
      return "step";
    case LrScheduleKind::warmup_cosine:
      return "warmup_cosine";
  }
  return "unknown";
}

LrScheduleKind parse_lr_schedule_kind(const std::string& name) {
  for (LrScheduleKind kind :
       {LrScheduleKind::constant, LrScheduleKind::step, LrScheduleKind::warmup_cosine})
    if (name == lr_schedule_kind_name(kind)) return kind;
  throw std::invalid_argument("parse_lr_schedule_kind: unknown schedule '" + name +
                              "' (expected constant, step or warmup_cosine)");
}

LrSchedule make_lr_schedule(const LrScheduleOptions& o) {
  const LrScheduleKind kind = o.kind;
  require(std::isfinite(o.base_lr) && o.base_lr >= 0, kind, "base_lr", "finite and >= 0",
          o.base_lr);
  if (kind == LrScheduleKind::step) {
    require(o.step_size > 0, kind, "step_size", "> 0", static_cast<double>(o.step_size));
    require(std::isfinite(o.gamma) && o.gamma > 0, kind, "gamma", "finite and > 0", o.gamma);
  } else if (kind == LrScheduleKind::warmup_cosine) {
    require(o.warmup_steps >= 0, kind, "warmup_steps", ">= 0", static_cast<double>(o.warmup_steps));
    require(o.total_steps > o.warmup_steps, kind, "total_steps", "> warmup_steps",
            static_cast<double>(o.total_steps));
    require(o.min_lr >= 0 && o.min_lr <= o.base_lr, kind, "min_lr", "in [0, base_lr]", o.min_lr);
  }
  return LrSchedule(o);
}

double LrSchedule::operator()(int64_t step) const {
  const LrScheduleOptions& o = options_;
  require(step >= 0, o.kind, "step", ">= 0", static_cast<double>(step));
  switch (o.kind) {
    case LrScheduleKind::constant:
      return o.base_lr;
    case LrScheduleKind::step:
      return o.base_lr * std::pow(o.gamma, static_cast<double>(step / o.step_size));
    case LrScheduleKind::warmup_cosine: {
      if (step < o.warmup_steps)
        return o.base_lr * static_cast<double>(step + 1) / static_cast<double>(o.warmup_steps);
      if (step >= o.total_steps) return o.min_lr;
      double progress = static_cast<double>(step - o.warmup_steps) /
                        static_cast<double>(o.total_steps - o.warmup_steps);
      return o.min_lr + (o.base_lr - o.min_lr) * 0.5 * (1 + std::cos(std::numbers::pi * progress));
    }
  }
  return o.base_lr;
}

}  // namespace dpm::optim
