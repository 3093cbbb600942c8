#pragma once
// The callback of a command that runs an experiment (docs/design.md, "Experiments"): the plan
// from its flag table, the run with a progress line, the run's config.used.json, the report, and
// what was written. A PlanError of the run (a file that does not fit the plan) is a usage error
// naming the flag.
#include <cstdio>
#include <functional>
#include <string>

#include "apps/common.hpp"
#include "apps/flag_table.hpp"
#include "distributed/communicator.hpp"
#include "experiments/report/progress.hpp"

namespace dpm::cli {

// `label` names the progress line ("bound") and `unit` what it counts ("bounds"). run(plan,
// progress) and write(results, dir) are the experiment's own, found by the namespace of its Plan
// and Results (dpm::experiments): include the experiment's header and its report's.
// `complete`, when given, fills plan fields that default to something of the common flags (e.g.
// a directory under --out) before the run.
template <typename Plan>
void run_experiment(const FlagTable<Plan>& flags, const std::string& label,
                    const std::string& unit,
                    const std::function<void(Plan&, const CommonArgs&)>& complete = {}) {
  Plan plan = flags.plan();
  const CommonArgs& common = flags.common();
  if (complete) complete(plan, common);
  start_run(common);
  // Under mpirun every rank runs the experiment (those that shard their samples share them out);
  // rank 0 alone shows progress and writes the report.
  const bool root = dist::Communicator::world().is_root();
  experiments::report::TerminalProgress progress(label, unit,
                                                 common.quiet || !root ? nullptr : stderr);
  const auto results = flags.usage_errors([&] { return run(plan, progress); });
  if (!root) return;
  write_used_config(common, plan.to_json());
  print_written(common, write(results, common.out), results.seconds);
}

}  // namespace dpm::cli
