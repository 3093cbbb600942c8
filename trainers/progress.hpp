#pragma once
// The trainer's progress line is autograd/progress_line.hpp (dpm::ProgressLine); this header
// only forwards to it until trainers/trainer.cpp includes it directly.
#include "autograd/progress_line.hpp"
