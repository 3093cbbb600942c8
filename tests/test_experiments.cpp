// The experiments layer's shared parts: the number formatter, the table renderer, the plan
// fields' JSON and text forms, and the flag table that binds a command's flags to a plan.
#include <catch2/catch.hpp>
#include <cmath>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "apps/flag_table.hpp"
#include "autograd/rng.hpp"
#include "datasets/gmm.hpp"
#include "experiments/denoise_bench.hpp"
#include "experiments/nll_bound.hpp"
#include "experiments/plan.hpp"
#include "experiments/report/format.hpp"
#include "experiments/report/table.hpp"
#include "tests/temp_dir.hpp"

namespace ex = dpm::experiments;
namespace report = dpm::experiments::report;

namespace {

enum class Flavour { plain, salted };

}  // namespace

template <>
struct dpm::experiments::Choices<Flavour> {
  static constexpr std::array<std::pair<Flavour, const char*>, 2> values{
      {{Flavour::plain, "plain"}, {Flavour::salted, "salted"}}};
};

namespace {

struct ToyPlan {
  std::string path;
  int64_t samples = 64;
  std::vector<double> snr = ex::parse_number_list("-20:30:5");
  std::vector<int64_t> counts{1, 2, 4};
  Flavour flavour = Flavour::plain;
  std::vector<Flavour> flavours{Flavour::plain, Flavour::salted};
  uint64_t seed = 0;

  template <typename Self, typename Visit>
  static void fields(Self& plan, Visit&& visit) {
    visit("path", plan.path);
    visit("samples", plan.samples);
    visit("snr", plan.snr);
    visit("counts", plan.counts);
    visit("flavour", plan.flavour);
    visit("flavours", plan.flavours);
    visit("seed", plan.seed);
  }
  void validate() const {
    ex::require_range("samples", samples, 2, 1000);
    ex::require_list("snr", snr);
    ex::require_list("counts", counts, 1, 100);
  }
};

void write_file(const std::filesystem::path& path, const std::string& text) {
  std::ofstream(path) << text;
}

// A command with the toy plan's flag table, parsed from `arguments`; its plan, or the usage error.
struct Parsed {
  std::optional<ToyPlan> plan;
  std::string error, help;
};

Parsed parse(const std::vector<std::string>& arguments) {
  CLI::App app("toy");
  CLI::App* command = app.add_subcommand("toy", "a toy command");
  auto flags = std::make_shared<dpm::cli::FlagTable<ToyPlan>>(command, "runs/toy");
  flags->add("--path", &ToyPlan::path, "a path");
  flags->add("--samples", &ToyPlan::samples, "how many");
  flags->add("--snr", &ToyPlan::snr, "SNRs in dB");
  flags->add("--counts", &ToyPlan::counts, "counts");
  flags->add("--flavour", &ToyPlan::flavour, "plain or salted");
  flags->add("--flavours", &ToyPlan::flavours, "a list of plain, salted");
  flags->seed(&ToyPlan::seed);
  Parsed parsed;
  parsed.help = command->help();
  command->callback([&] { parsed.plan = flags->plan(); });
  std::vector<std::string> argv = {"toy"};
  argv.insert(argv.end(), arguments.begin(), arguments.end());
  std::reverse(argv.begin(), argv.end());
  try {
    app.parse(argv);
  } catch (const CLI::ParseError& e) {
    parsed.error = e.what();
  }
  return parsed;
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

}  // namespace

TEST_CASE("report::number formats for a person, a CSV and a plot", "[experiments][report]") {
  CHECK(report::number(0.123456) == "0.1235");
  CHECK(report::number(-2.5, "%+.3g") == "-2.5");
  CHECK(report::number(NAN) == "n/a");
  CHECK(report::number(INFINITY) == "inf");
  CHECK(report::csv_number(1.0 / 3.0) == "0.3333333333");
  CHECK(report::plot_number(NAN) == "NaN");
  CHECK(report::plot_number(2.0) == "2");
  // A certified bound far beyond a double reads as what it is.
  CHECK(report::power_of_ten(2.0) == "100");
  CHECK(report::power_of_ten(1510.874) == "> 1e300 (10^1510.9)");
  CHECK(report::power_of_ten(-512.3) == "< 1e-300 (10^-512.3)");
  CHECK(report::duration(9.34) == "9.3s");
  CHECK(report::duration(252) == "4m12s");
}

TEST_CASE("report::Table renders markdown and aligned text from one table",
          "[experiments][report]") {
  report::Table table({"predictor", "NMSE"});
  table.add_row({"oracle", "0.1 ± 0.01"}).add_row({"network", "0.25"});
  CHECK(table.markdown() ==
        "| predictor | NMSE |\n|---|---|\n| oracle | 0.1 ± 0.01 |\n| network | 0.25 |\n");
  CHECK(table.text() ==
        "predictor  NMSE\n---------  ----------\noracle     0.1 ± 0.01\nnetwork    0.25\n");
  CHECK_THROWS_WITH(table.add_row({"one"}), Catch::Contains("a row of 1 cells"));
}

TEST_CASE("plan fields: JSON round trip, the text forms, errors naming the field",
          "[experiments][plan]") {
  ToyPlan plan;
  plan.path = "a/b";
  plan.snr = {-1.5, 0, 7};
  plan.flavours = {Flavour::salted};
  plan.seed = 9;
  const nlohmann::json json = ex::plan_to_json(plan);
  CHECK(json["snr"] == nlohmann::json::array({-1.5, 0.0, 7.0}));
  CHECK(json["flavour"] == "plain");
  CHECK(json["flavours"] == nlohmann::json::array({"salted"}));
  const ToyPlan back = ex::plan_from_json<ToyPlan>(json);
  CHECK(ex::plan_to_json(back) == json);
  CHECK(back.snr == plan.snr);
  CHECK(back.flavours == plan.flavours);

  // The flag syntax is read from JSON too (config files written by hand, or before the lists
  // were typed).
  const ToyPlan texts = ex::plan_from_json<ToyPlan>(
      {{"snr", "-6:6:2"}, {"counts", "1,8"}, {"flavours", "salted,plain"}});
  CHECK(texts.snr == std::vector<double>{-6, -4, -2, 0, 2, 4, 6});
  CHECK(texts.counts == std::vector<int64_t>{1, 8});
  CHECK(texts.flavours == std::vector<Flavour>{Flavour::salted, Flavour::plain});
  CHECK(ex::field_text(texts.snr) == "-6,-4,-2,0,2,4,6");
  CHECK(ex::field_text(0.1) == "0.1");

  auto field_of = [](const nlohmann::json& json) {
    try {
      ex::plan_from_json<ToyPlan>(json).validate();
    } catch (const ex::PlanError& e) {
      return e.field();
    }
    return std::string("(none)");
  };
  CHECK(field_of({{"samples", "many"}}) == "samples");
  CHECK(field_of({{"samples", 1}}) == "samples");
  CHECK(field_of({{"snr", "10:0:5"}}) == "snr");
  CHECK(field_of({{"counts", {1, 1}}}) == "counts");
  CHECK(field_of({{"flavour", "sweet"}}) == "flavour");
  CHECK(field_of({{"smaples", 3}}) == "smaples");
  CHECK(field_of({{"samples", 3}}) == "(none)");
  CHECK_THROWS_WITH(ex::plan_from_json<ToyPlan>({{"flavour", "sweet"}}),
                    "flavour: expected plain or salted, got 'sweet'");
}

TEST_CASE("plan fields: an integer list or auto", "[experiments][plan]") {
  ex::IntegerListOrAuto steps;
  CHECK(ex::field_text(steps) == "auto");
  CHECK(ex::field_json(steps) == "auto");
  ex::field_from_text("1,10,100", steps);
  CHECK(steps.values == std::vector<int64_t>{1, 10, 100});
  CHECK(ex::field_text(steps) == "1,10,100");
  CHECK(ex::field_json(steps) == nlohmann::json::array({1, 10, 100}));
  ex::field_from_text("auto", steps);
  CHECK(steps.is_auto());

  ex::read_field(nlohmann::json::array({2, 4}), "t_grid", steps);
  CHECK(steps.values == std::vector<int64_t>{2, 4});
  ex::read_field("auto", "t_grid", steps);
  CHECK(steps.is_auto());
  ex::read_field("3,5", "t_grid", steps);  // the text form of older config files
  CHECK(steps.values == std::vector<int64_t>{3, 5});
  CHECK_THROWS_WITH(ex::read_field("every", "t_grid", steps), "t_grid: 'every' is not an integer");
  CHECK_THROWS_WITH(ex::read_field(5, "t_grid", steps),
                    "t_grid: expected \"auto\", an array of integers or a list like \"1,2,4\", "
                    "got 5");
}

TEST_CASE("flag table: --help, the command line over --config over the defaults",
          "[experiments][flags]") {
  dpm::testing::TempDir tmp("dpm_flag_table");
  const Parsed defaults = parse({});
  REQUIRE(defaults.error.empty());
  REQUIRE(defaults.plan);
  CHECK(ex::plan_to_json(*defaults.plan) == ex::plan_to_json(ToyPlan{}));
  for (const char* flag : {"--path", "--samples", "--snr", "--counts", "--flavour", "--flavours",
                           "--seed", "--config", "--out", "--threads", "--quiet"})
    CHECK(contains(defaults.help, flag));
  CHECK(contains(defaults.help, "-20,-15,-10,-5,0,5,10,15,20,25,30"));  // a default shown

  write_file(tmp.path / "config.json", R"({"samples": 10, "snr": [1, 2], "seed": 4})");
  const std::string config = (tmp.path / "config.json").string();
  const Parsed merged = parse({"--config", config, "--samples", "20", "--flavour", "salted"});
  REQUIRE(merged.error.empty());
  CHECK(merged.plan->samples == 20);                            // the command line
  CHECK(merged.plan->snr == std::vector<double>{1, 2});         // the file
  CHECK(merged.plan->seed == 4);                                // the file, a common flag
  CHECK(merged.plan->counts == std::vector<int64_t>{1, 2, 4});  // the default
  CHECK(merged.plan->flavour == Flavour::salted);

  // config.used.json is the plan's JSON; --config reads it back into the same plan.
  write_file(tmp.path / "used.json", ex::plan_to_json(*merged.plan).dump(2));
  const Parsed again = parse({"--config", (tmp.path / "used.json").string()});
  REQUIRE(again.error.empty());
  CHECK(ex::plan_to_json(*again.plan) == ex::plan_to_json(*merged.plan));
}

TEST_CASE("flag table: usage errors name the flag, or --config for the file's",
          "[experiments][flags]") {
  dpm::testing::TempDir tmp("dpm_flag_table_errors");
  CHECK(contains(parse({"--snr", "abc"}).error, "--snr: 'abc' is not a number"));
  CHECK(contains(parse({"--samples", "1"}).error, "--samples: 1 is not in 2..1000"));
  CHECK(contains(parse({"--counts", "0,2"}).error, "--counts"));
  CHECK(contains(parse({"--flavours", "plain,sweet"}).error, "--flavours"));
  write_file(tmp.path / "typo.json", R"({"smaples": 10})");
  const std::string typo = parse({"--config", (tmp.path / "typo.json").string()}).error;
  CHECK(contains(typo, "--config"));
  CHECK(contains(typo, "smaples"));
  write_file(tmp.path / "bad.json", R"({"flavour": "sweet"})");
  const std::string bad = parse({"--config", (tmp.path / "bad.json").string()}).error;
  CHECK(contains(bad, "--flavour (from --config"));
  CHECK(contains(bad, "expected plain or salted"));
}
// ---- the experiments: plans, their units and the progress a run reports ----

namespace {

// Records what a run reports.
struct RecordingProgress final : report::Progress {
  int64_t total = -1, advanced = 0;
  std::vector<std::string> stages, warnings;
  void begin(int64_t total_units) override { total = total_units; }
  void advance(const std::string& stage) override {
    ++advanced;
    stages.push_back(stage);
  }
  void warn(const std::string& message) override { warnings.push_back(message); }
};

// A small normalised GMM prior in `dir`/gmm.safetensors.
std::string small_prior(const std::filesystem::path& dir) {
  dpm::Rng rng(5);
  const dpm::datasets::Gmm raw = dpm::datasets::make_random_gmm(rng, 4, 3);
  const auto normalization = dpm::datasets::Normalization::fit(raw.sample(4000, rng));
  const std::string path = (dir / "gmm.safetensors").string();
  dpm::datasets::save_gmm(normalization.apply(raw), path);
  return path;
}

}  // namespace

TEST_CASE("denoise-bench plan: JSON round trip, validation naming the field",
          "[experiments][denoise-bench]") {
  ex::DenoiseBenchPlan plan;
  plan.gmm = "prior.safetensors";
  plan.experiments = {ex::DenoiseBenchPart::mismatch, ex::DenoiseBenchPart::nmse};
  plan.snr = {-3.5, 12};
  plan.oracle_T = {7};
  plan.estimators = ex::DenoiseEstimators::cheap;
  plan.seed = 11;
  const nlohmann::json json = plan.to_json();
  CHECK(json["T"] == nlohmann::json::array({7}));
  CHECK(json["experiments"] == nlohmann::json::array({"mismatch", "nmse"}));
  const ex::DenoiseBenchPlan back = ex::DenoiseBenchPlan::from_json(json);
  CHECK(back.to_json() == json);
  CHECK(back.snr == plan.snr);

  auto field_of = [&](const nlohmann::json& change) {
    nlohmann::json changed = json;
    changed.update(change);
    try {
      ex::DenoiseBenchPlan::from_json(changed);
    } catch (const ex::PlanError& e) {
      return e.field();
    }
    return std::string("(none)");
  };
  CHECK(field_of({{"samples", 1}}) == "samples");
  CHECK(field_of({{"T", {10, 10}}}) == "T");
  CHECK(field_of({{"mc_M", {0, 2}}}) == "mc_M");
  CHECK(field_of({{"schedule", "linear"}}) == "schedule");
  CHECK(field_of({{"experiments", {"nmse", "speed"}}}) == "experiments");
  CHECK(field_of({{"estimators", "fast"}}) == "estimators");
  CHECK(field_of({{"mismatch", "6:-6:2"}}) == "mismatch");
  CHECK(field_of({{"detail_T", 0}}) == "(none)");
  CHECK(field_of({{"predictors", {"network"}}}) == "predictors");  // no checkpoint
  CHECK(field_of({{"predictors", nlohmann::json::array()}}) == "predictors");
  CHECK(field_of({{"predictors", {"oracle", "guess"}}}) == "predictors");
  CHECK(field_of({{"grid_images", 65}}) == "grid_images");

  // The network alone: its tables carry the references the oracle's would have.
  ex::DenoiseBenchPlan network_only = back;
  network_only.checkpoint = "network.safetensors";
  network_only.detail_T = 20;
  network_only.predictors = {ex::DenoisePredictor::network};
  const std::vector<ex::DenoiseBenchUnit> units = network_only.units();
  REQUIRE(units.size() == 2);
  for (const ex::DenoiseBenchUnit& unit : units) {
    CHECK(unit.predictor == "network");
    CHECK(unit.references);
  }
}

TEST_CASE("denoise-bench: the progress total is the plan's unit list, run as listed",
          "[experiments][denoise-bench]") {
  dpm::testing::TempDir tmp("dpm_experiments_bench");
  ex::DenoiseBenchPlan plan;
  plan.gmm = small_prior(tmp.path);
  plan.samples = 8;
  plan.snr = {-5, 5};
  plan.oracle_T = {5, 10};
  plan.detail_T = 10;
  plan.mc_samples = 2;
  plan.step_snr = {0};
  plan.mc_M = {2, 1};
  plan.mc_snr = {0};
  plan.mismatch = {-2, 0};
  plan.mismatch_snr = {0};
  for (const auto estimators : {ex::DenoiseEstimators::all, ex::DenoiseEstimators::cheap}) {
    plan.estimators = estimators;
    INFO(ex::field_text(estimators));
    const std::vector<ex::DenoiseBenchUnit> units = plan.units();
    RecordingProgress progress;
    const ex::DenoiseBenchResults results = ex::run(plan, progress);
    CHECK(progress.total == static_cast<int64_t>(units.size()));
    CHECK(progress.advanced == progress.total);
    REQUIRE(progress.stages.size() == units.size());
    for (size_t i = 0; i < units.size(); ++i) CHECK(progress.stages[i] == units[i].stage());
    // The oracle's T = 5 and T = 10 tables and the references; the parts against M, per step
    // and the mismatch once each; with cheap estimators the resampling part runs its own table.
    const size_t tables = estimators == ex::DenoiseEstimators::all ? 2 : 3;
    CHECK(units.size() == tables + 3);
    CHECK(results.resolved.detail_T == 10);
    CHECK(results.resolved.schedule == "paper_linear");
    CHECK(results.plan.to_json() == plan.to_json());  // the input as given
    CHECK(results.resampling.size() == 2);
    CHECK(results.mc.size() == 2);
    CHECK(results.mc.front().samples == 1);  // M ascending
  }
  // Without the checkpoint's T a plan cannot list its work.
  plan.checkpoint = "network.safetensors";
  plan.detail_T = 0;
  CHECK_THROWS_AS(plan.units(), ex::PlanError);
}

TEST_CASE("bound plan: JSON round trip, validation, four bounds", "[experiments][bound]") {
  ex::NllBoundPlan plan;
  CHECK_THROWS_WITH(plan.validate(), "checkpoint: is required");
  plan.checkpoint = "best.safetensors";
  plan.split = ex::DataSplit::val;
  plan.samples = 300;
  const nlohmann::json json = plan.to_json();
  CHECK(json["split"] == "val");
  CHECK(ex::NllBoundPlan::from_json(json).to_json() == json);
  nlohmann::json bad = json;
  bad["samples"] = 0;
  CHECK_THROWS_WITH(ex::NllBoundPlan::from_json(bad), Catch::StartsWith("samples: "));
  bad = json;
  bad["split"] = "training";
  CHECK_THROWS_WITH(ex::NllBoundPlan::from_json(bad), Catch::StartsWith("split: "));
  const std::vector<ex::NllBoundUnit> units = plan.units();
  REQUIRE(units.size() == 4);
  CHECK(units[0].stage() == "network, sigma_t^2 = beta");
  CHECK(units[3].stage() == "oracle, sigma_t^2 = beta_tilde");
}
