// The dpmlab binary as a user runs it: every subcommand's help, usage errors (exit code 2 naming
// the flag), a small pipeline gmm make -> gmm cme -> train -> resume -> sample whose files are
// read back, Ctrl-C during training, and every ```sh example of docs/cli.md.
#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "autograd/io/safetensors.hpp"
#include "autograd/rng.hpp"
#include "datasets/gmm.hpp"
#include "datasets/image_folder.hpp"
#include "diffusion/checkpoint.hpp"
#include "diffusion/schedule.hpp"
#include "tests/temp_dir.hpp"

namespace fs = std::filesystem;
using dpm::read_safetensors;
using dpm::SafeTensors;
using dpm::Tensor;
using dpm::testing::TempDir;

namespace {

struct Run {
  int code = -1;       // the exit code; -1 when killed by a signal
  std::string output;  // stdout and stderr together
};

// Runs a shell command line in `dir` with dpmlab on the PATH.
Run run_in(const fs::path& dir, const std::string& command) {
  const std::string bin_dir = fs::path(DPMLAB_BINARY).parent_path().string();
  const std::string line = "export PATH='" + bin_dir + "':\"$PATH\"; cd '" + dir.string() +
                           "' && { " + command + " ; } 2>&1";
  Run run;
  FILE* pipe = popen(line.c_str(), "r");
  REQUIRE(pipe != nullptr);
  char buffer[4096];
  for (size_t n; (n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0;)
    run.output.append(buffer, n);
  const int status = pclose(pipe);
  run.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return run;
}

Run dpmlab(const fs::path& dir, const std::string& arguments) {
  return run_in(dir, "dpmlab " + arguments);
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// The subcommand names a help text lists (CLI11: two spaces, the name, then the description).
std::vector<std::string> listed_subcommands(const std::string& help) {
  std::vector<std::string> names;
  std::istringstream lines(help.substr(std::min(help.size(), help.find("Subcommands:"))));
  const std::regex entry("^  ([a-z][a-z0-9-]*)( .*)?$");
  for (std::string line; std::getline(lines, line);)
    if (std::smatch m; std::regex_match(line, m, entry)) names.push_back(m[1]);
  return names;
}

std::vector<nlohmann::json> read_jsonl(const fs::path& path) {
  std::vector<nlohmann::json> lines;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) lines.push_back(nlohmann::json::parse(line));
  return lines;
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

nlohmann::json read_json(const fs::path& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  REQUIRE(out.good());
}

bool all_finite(const Tensor& t) {
  for (float v : t.to_vector())
    if (!std::isfinite(v)) return false;
  return true;
}

// A data set directory like the docs' (N = 8, K = 4).
void make_gmm_data(const fs::path& dir) {
  Run make = dpmlab(dir,
                    "gmm make --dim 8 --components 4 --train 2000 --val 500 --test 500 "
                    "--out gmm");
  INFO(make.output);
  REQUIRE(make.code == 0);
}

// A small MLP keeps the training runs of the tests short.
const char* kSmallMlpConfig = R"({"model": {"arch": "mlp", "width": 64, "depth": 2}})";

// Trains the small MLP of kSmallMlpConfig (T = 20, batch 64) on DIR/gmm into DIR/OUT, with
// `flags` added; the test stops unless the run exits 0.
Run train_small_mlp(const fs::path& dir, const std::string& out, const std::string& flags) {
  write_text(dir / "small.json", kSmallMlpConfig);
  Run train = dpmlab(dir, "train --data gmm --config small.json --T 20 --batch 64 --quiet " +
                              flags + " --out " + out);
  INFO(train.output);
  REQUIRE(train.code == 0);
  return train;
}

}  // namespace

TEST_CASE("every subcommand has --help with an example", "[cli]") {
  TempDir tmp("dpm_cli_help");
  std::vector<std::string> commands = {""};
  std::set<std::string> seen;
  for (size_t i = 0; i < commands.size(); ++i) {
    Run help = dpmlab(tmp.path, commands[i] + " --help");
    INFO("dpmlab " << commands[i] << " --help\n" << help.output);
    CHECK(help.code == 0);
    CHECK(contains(help.output, "Example"));
    seen.insert(commands[i]);
    for (const std::string& name : listed_subcommands(help.output))
      commands.push_back(commands[i].empty() ? name : commands[i] + " " + name);
  }
  for (const char* command :
       {"model summary", "model init", "model check", "demo", "gmm make", "gmm fit", "gmm cme",
        "train", "sample", "denoise-bench", "inverse-bench", "restore", "score-study",
        "training-report", "objective-study"}) {
    INFO(command);
    CHECK(seen.count(command) == 1);
  }
}

TEST_CASE("usage errors exit with code 2 and name the flag", "[cli]") {
  TempDir tmp("dpm_cli_usage");
  make_gmm_data(tmp.path);
  write_text(tmp.path / "typo.json", R"({"dim": 8, "componets": 4})");
  // A config file's values are checked like the flags' (CLI11 checks only the command line).
  write_text(tmp.path / "estimators.json",
             R"({"gmm": "gmm/gmm.safetensors", "estimators": "fast"})");
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"gmm make --no-such-flag 1", "--no-such-flag"},
      {"gmm make --dim 0", "--dim"},
      {"gmm make --components many", "--components"},
      {"gmm make --config typo.json", "--config"},
      {"gmm fit --data gmm/data.safetensors --iters 0", "--iters"},
      {"gmm fit --no-such-flag", "--no-such-flag"},
      {"gmm cme --gmm gmm/gmm.safetensors --data gmm/data.safetensors --snr 1:2", "--snr"},
      {"gmm cme --data gmm/data.safetensors", "--gmm"},
      {"train --data gmm --arch transformer", "--arch"},
      {"train --data gmm --batch 0", "--batch"},
      {"train --data gmm --batch 5000", "--batch"},
      {"train --data gmm --arch unet2d", "--arch"},
      {"train --data no-such-folder", "--data"},
      {"train --data gmm --resume missing.safetensors", "--resume"},
      {"train --data gmm --lr -1", "--lr"},
      {"train --data gmm --no-such-flag", "--no-such-flag"},
      {"sample --checkpoint missing.safetensors", "--checkpoint"},
      {"sample --checkpoint gmm/gmm.safetensors --steps euler", "--steps"},
      {"sample --checkpoint gmm/gmm.safetensors --count 0", "--count"},
      {"denoise-bench --snr 0", "--gmm"},
      {"denoise-bench --gmm gmm/gmm.safetensors --snr abc", "--snr"},
      {"denoise-bench --gmm gmm/gmm.safetensors --snr 10:0:5", "--snr"},
      {"denoise-bench --gmm gmm/gmm.safetensors --step-snr 0,x", "--step-snr"},
      {"denoise-bench --gmm gmm/gmm.safetensors --T 10,x", "--T"},
      {"denoise-bench --gmm gmm/gmm.safetensors --mc-M 0,2", "--mc-M"},
      {"denoise-bench --gmm gmm/gmm.safetensors --mismatch 6:-6:2", "--mismatch"},
      {"denoise-bench --gmm gmm/gmm.safetensors --experiments nmse,speed", "--experiments"},
      {"denoise-bench --gmm gmm/gmm.safetensors --samples 1", "--samples"},
      {"denoise-bench --gmm gmm/gmm.safetensors --schedule linear", "--schedule"},
      {"denoise-bench --gmm gmm/missing.safetensors", "--gmm"},
      {"denoise-bench --gmm gmm/gmm.safetensors --estimators fast", "--estimators"},
      {"denoise-bench --config estimators.json", "--estimators"},
      {"bound --checkpoint missing.safetensors", "--checkpoint"},
      {"bound --checkpoint gmm/gmm.safetensors --split training", "--split"},
      {"gmm fit --data fashion-mnist --max-samples 50 --components 2 --resume "
       "gmm/gmm.safetensors",
       "--resume"},
      {"restore --quick", "--checkpoint"},
      {"restore --checkpoint gmm/gmm.safetensors --tasks box,deblur", "--tasks"},
      {"restore --checkpoint gmm/gmm.safetensors --mask missing.png", "--tasks"},
      {"score-study --quick --lr 0", "--lr"},
      {"score-study --quick --batch 1000", "--batch"},
      {"score-study --quick --activation tanh", "--activation"},
      {"score-study --quick --gmm gmm/data.safetensors", "--gmm"},
      {"train --data gmm --track-jacobian 30", "--track-jacobian"},  // not a multiple of 50
      {"training-report no-such-run", "RUN"},
      {"objective-study --steps 10", "--data"},
      {"objective-study --data no-such-dir", "--data"},
      {"objective-study --data gmm --objectives simple,elbo", "--objectives"},
      {"objective-study --data gmm --track-every 30", "--track-every"},
  };
  for (const auto& [arguments, flag] : cases) {
    Run run = dpmlab(tmp.path, arguments);
    INFO("dpmlab " << arguments << "\n" << run.output);
    CHECK(run.code == 2);
    CHECK(contains(run.output, flag));
  }
  // A failure while running (here: a data file given as the GMM) is exit code 1.
  Run wrong_file =
      dpmlab(tmp.path, "gmm cme --gmm gmm/data.safetensors --data gmm/data.safetensors --quiet");
  INFO(wrong_file.output);
  CHECK(wrong_file.code == 1);
  CHECK(contains(wrong_file.output, "dpmlab: error: "));
}

TEST_CASE("gmm make -> gmm cme -> train -> resume -> sample", "[cli][pipeline]") {
  TempDir tmp("dpm_cli_pipeline");
  const fs::path& dir = tmp.path;
  make_gmm_data(dir);

  // The data set: normalised on train, the GMM mapped the same way, described in the metadata.
  SafeTensors data = read_safetensors((dir / "gmm/data.safetensors").string());
  CHECK(data.get("train").shape() == dpm::Shape{2000, 8});
  CHECK(data.get("val").shape() == dpm::Shape{500, 8});
  CHECK(data.get("test").shape() == dpm::Shape{500, 8});
  const nlohmann::json info = nlohmann::json::parse(data.metadata.at("dpmlab.dataset"));
  CHECK(info["sample_shape"] == nlohmann::json::array({8}));
  CHECK(info["normalization"]["scale"].get<double>() > 0);
  CHECK(info["config"]["components"] == 4);
  const std::vector<float> train = data.get("train").to_vector();
  double power = 0, mean_0 = 0;
  for (size_t i = 0; i < train.size(); ++i) {
    power += static_cast<double>(train[i]) * train[i];
    if (i % 8 == 0) mean_0 += train[i];
  }
  CHECK(power / static_cast<double>(train.size()) == Approx(1.0).epsilon(1e-4));
  CHECK(std::abs(mean_0 / 2000) < 1e-4);
  const dpm::datasets::Gmm gmm = dpm::datasets::load_gmm((dir / "gmm/gmm.safetensors").string());
  CHECK(gmm.dim == 8);
  CHECK(gmm.components == 4);

  SECTION("gmm make reuses files made with the same config, and remakes them otherwise") {
    Run again = dpmlab(dir,
                       "gmm make --dim 8 --components 4 --train 2000 --val 500 --test 500 "
                       "--out gmm");
    INFO(again.output);
    CHECK(again.code == 0);
    CHECK(contains(again.output, "Reusing"));
    Run other = dpmlab(dir, "gmm make --config gmm/config.used.json --seed 5 --out gmm");
    INFO(other.output);
    CHECK(other.code == 0);
    CHECK_FALSE(contains(other.output, "Reusing"));
    CHECK(read_json(dir / "gmm/config.used.json")["seed"] == 5);
  }

  SECTION("gmm cme tabulates CME <= LMMSE <= LS and writes CSV and JSON") {
    Run cme = dpmlab(dir,
                     "gmm cme --gmm gmm/gmm.safetensors --data gmm/data.safetensors:test "
                     "--snr -10:20:10 --out cme");
    INFO(cme.output);
    REQUIRE(cme.code == 0);
    CHECK(contains(cme.output, "| SNR (dB) | CME | LMMSE | LS |"));
    const nlohmann::json results = read_json(dir / "cme/nmse.json")["results"];
    REQUIRE(results.size() == 4);
    for (const nlohmann::json& r : results) {
      INFO(r.dump());
      const double cme_nmse = r["nmse"]["cme"], lmmse = r["nmse"]["lmmse"], ls = r["nmse"]["ls"];
      CHECK(cme_nmse <= lmmse * 1.01);
      CHECK(lmmse <= ls);
      // LS keeps all the noise: NMSE ~ sigma^2 on unit-power data.
      CHECK(ls == Approx(std::pow(10.0, -r["snr_db"].get<double>() / 10)).epsilon(0.1));
    }
    std::ifstream csv(dir / "cme/nmse.csv");
    std::string header;
    std::getline(csv, header);
    CHECK(header == "snr_db,cme,lmmse,ls");
  }

  SECTION("train, resume, sample") {
    Run train = train_small_mlp(dir, "run", "--epochs 2");
    INFO(train.output);
    CHECK(contains(train.output, "Stopped (max_epochs)"));
    CHECK(contains(train.output, "Best validation loss"));
    for (const char* file :
         {"config.used.json", "best.safetensors", "resume.safetensors", "metrics.jsonl"})
      CHECK(fs::exists(dir / "run" / file));
    const nlohmann::json used = read_json(dir / "run/config.used.json");
    CHECK(used["model"]["dim"] == 8);     // from the data
    CHECK(used["model"]["width"] == 64);  // from the config file
    CHECK(used["schedule"]["T"] == 20);   // from the flags
    CHECK(used["training"]["max_epochs"] == 2);
    std::vector<nlohmann::json> metrics = read_jsonl(dir / "run/metrics.jsonl");
    REQUIRE_FALSE(metrics.empty());
    CHECK(metrics.back()["epoch"] == 2);
    CHECK(metrics.back()["step"] == 62);  // 2000 / 64 = 31 steps per epoch

    // The best checkpoint stands alone and describes its data.
    dpm::diffusion::DpmCheckpoint checkpoint =
        dpm::diffusion::load_dpm_checkpoint((dir / "run/best.safetensors").string());
    CHECK(checkpoint.schedule.T() == 20);
    const nlohmann::json described = nlohmann::json::parse(checkpoint.metadata.at("dpmlab.data"));
    CHECK(described["model_shape"] == nlohmann::json::array({8}));
    CHECK(described["source"] == "gmm");

    Run resume = dpmlab(dir,
                        "train --data gmm --config run/config.used.json --resume "
                        "run/resume.safetensors --epochs 3 --quiet --out run");
    INFO(resume.output);
    REQUIRE(resume.code == 0);
    metrics = read_jsonl(dir / "run/metrics.jsonl");
    CHECK(metrics.back()["epoch"] == 3);
    CHECK(metrics.back()["step"] == 93);  // continued, not restarted
    CHECK(contains(resume.output, "93 steps, 3 epochs"));

    for (const char* steps : {"ddim", "ancestral"}) {
      INFO(steps);
      Run sample = dpmlab(dir, std::string("sample --checkpoint run/best.safetensors --count 10 "
                                           "--seed 3 --quiet --out sample-") +
                                   steps + " --steps " + steps);
      INFO(sample.output);
      REQUIRE(sample.code == 0);
      SafeTensors samples = read_safetensors(
          (dir / ("sample-" + std::string(steps)) / "samples.safetensors").string());
      CHECK(samples.get("samples").shape() == dpm::Shape{10, 8});
      CHECK(all_finite(samples.get("samples")));
      CHECK_FALSE(fs::exists(dir / ("sample-" + std::string(steps)) / "samples.png"));
    }
    // DDIM from the same noise is deterministic.
    REQUIRE(dpmlab(dir,
                   "sample --checkpoint run/best.safetensors --count 10 --seed 3 --steps ddim "
                   "--quiet --out sample-again")
                .code == 0);
    CHECK(read_safetensors((dir / "sample-again/samples.safetensors").string())
              .get("samples")
              .to_vector() == read_safetensors((dir / "sample-ddim/samples.safetensors").string())
                                  .get("samples")
                                  .to_vector());
  }

  SECTION("the spectral tracker writes every layer's sigma into the metrics") {
    train_small_mlp(dir, "spectral", "--max-samples 1600 --epochs 2 --track-spectral 10");
    int scanned = 0;
    for (const nlohmann::json& line : read_jsonl(dir / "spectral/metrics.jsonl")) {
      if (!line.contains("loss")) continue;  // epoch lines
      INFO(line.dump());
      REQUIRE(line.contains("sigma"));
      CHECK(line["sigma"]["in_proj"].get<double>() > 0);
      CHECK(line["lipschitz_bound"].get<double>() > 0);
      ++scanned;
    }
    CHECK(scanned == 1);  // 50 steps, a metrics line every 50
  }

  SECTION("Ctrl-C saves the state, exits 0 and says how to resume") {
    write_text(dir / "small.json", kSmallMlpConfig);
    // SIGINT only once the first metrics line shows fit() is running: a fixed delay raced the
    // start-up on a loaded CI machine, where Ctrl-C before fit() rightly kills with 130.
    Run interrupted = run_in(
        dir,
        "dpmlab train --data gmm --config small.json --T 20 --batch 64 --epochs 100000 --quiet "
        "--out stopped & pid=$!; "
        "for i in $(seq 1200); do [ -s stopped/metrics.jsonl ] && break; sleep 0.05; done; "
        "kill -INT $pid; wait $pid");
    INFO(interrupted.output);
    CHECK(interrupted.code == 0);
    CHECK(contains(interrupted.output, "Stopped (interrupted)"));
    CHECK(contains(interrupted.output,
                   "--config stopped/config.used.json --resume stopped/resume.safetensors"));
    CHECK(fs::exists(dir / "stopped/resume.safetensors"));
  }
}

namespace {

// Entries of a denoise_bench.json section that match every given field.
std::vector<nlohmann::json> select(const nlohmann::json& section, const nlohmann::json& fields) {
  std::vector<nlohmann::json> out;
  for (const nlohmann::json& entry : section) {
    bool match = true;
    for (const auto& [key, value] : fields.items()) match = match && entry.at(key) == value;
    if (match) out.push_back(entry);
  }
  return out;
}

size_t csv_rows(const fs::path& path, const std::string& header) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  CHECK(line == header);
  size_t rows = 0;
  while (std::getline(in, line)) rows += line.empty() ? 0 : 1;
  return rows;
}

}  // namespace

TEST_CASE("denoise-bench writes every file and is exact where theory says so",
          "[cli][denoise-bench]") {
  TempDir tmp("dpm_cli_denoise");
  const fs::path& dir = tmp.path;
  make_gmm_data(dir);
  // SNRs exactly on the T = 20 grid (t = 3, 8, 15): there x = sqrt(abar) y is distributed as
  // x_t, so Tweedie with eps* is the CME itself (diffusion/denoiser.hpp).
  const dpm::diffusion::Schedule schedule = dpm::diffusion::Schedule::paper_linear(20);
  std::vector<double> snr;
  std::string snr_flag;
  for (int64_t t : {15, 8, 3}) {
    snr.push_back(10 * std::log10(schedule.snr(t)));
    char text[40];
    std::snprintf(text, sizeof text, "%.17g", snr.back());
    snr_flag += (snr_flag.empty() ? "" : ",") + std::string(text);
  }
  // The same SNR lists everywhere: each experiment's i-th SNR sees the same noise, so the
  // experiments must agree with the NMSE table where they compute the same estimator.
  const std::string common = "--snr " + snr_flag + " --step-snr " + snr_flag + " --mc-snr " +
                             snr_flag + " --mismatch-snr " + snr_flag +
                             " --T 5,20 --detail-T 20 --mc-samples 4 --mc-M 1,2,4 --mismatch "
                             "-2:2:2 --samples 64 --seed 3";

  auto check_run = [&](const fs::path& out, const std::vector<std::string>& predictors) {
    for (const char* file :
         {"config.used.json", "denoise_bench.json", "denoise_bench.md", "nmse.csv", "steps.csv",
          "resampling.csv", "mc.csv", "mismatch.csv", "nmse_vs_snr.gp", "nmse_over_cme.gp",
          "steps.gp", "mc_vs_M.gp", "mismatch.gp", "resampling.gp"})
      CHECK(fs::exists(out / file));
    const nlohmann::json json = read_json(out / "denoise_bench.json");
    CHECK(json["config"] == read_json(out / "config.used.json"));
    const size_t n_pred = predictors.size();
    // References 3, oracle T = 5: 2 estimators, T = 20 (and the network): 5, per SNR.
    CHECK(csv_rows(out / "nmse.csv",
                   "predictor,T,estimator,snr_db,nmse,nmse_se,gap_to_cme,gap_se,matched_step,nfe,"
                   "seconds") == 3 * (3 + 2 + 5 * n_pred));
    CHECK(csv_rows(out / "mc.csv",
                   "predictor,T,snr_db,M,nmse,nmse_se,gap_to_cme,gap_se,nfe,seconds") ==
          3 * 3 * n_pred);
    CHECK(csv_rows(out / "mismatch.csv",
                   "predictor,estimator,T,snr_db,offset_db,matched_step,nmse,nmse_se") ==
          3 * 3 * (1 + 2 * n_pred));
    CHECK(csv_rows(out / "resampling.csv", "predictor,T,snr_db,nmse_off,nmse_on,nmse_cme") ==
          3 * n_pred);
    // Per SNR: the start state at t = t_hat and one row per step down to 0.
    CHECK(
        csv_rows(out / "steps.csv", "predictor,T,snr_db,start_step,remaining,nmse,nmse_rescaled") ==
        n_pred * (16 + 9 + 4));
    const std::string md = read_text(out / "denoise_bench.md");
    for (const char* section : {"## NMSE against the SNR", "## Re-sampling off", "## Monte-Carlo",
                                "## Mean forwarding step by step", "## SNR mismatch"})
      CHECK(contains(md, section));

    for (double s : snr) {
      INFO("SNR " << s << " dB");
      const auto cme = select(json["nmse"], {{"estimator", "cme"}, {"snr_db", s}});
      REQUIRE(cme.size() == 1);
      const double cme_nmse = cme[0]["nmse"];
      const auto tweedie =
          select(json["nmse"],
                 {{"predictor", "oracle"}, {"estimator", "tweedie"}, {"T", 20}, {"snr_db", s}});
      REQUIRE(tweedie.size() == 1);
      CHECK(tweedie[0]["nmse"].get<double>() == Approx(cme_nmse).epsilon(1e-6));
      CHECK(tweedie[0]["nfe"] == 1);
      for (const std::string& predictor : predictors) {
        INFO(predictor);
        auto table = [&](const std::string& estimator) {
          const auto found = select(
              json["nmse"],
              {{"predictor", predictor}, {"estimator", estimator}, {"T", 20}, {"snr_db", s}});
          REQUIRE(found.size() == 1);
          return found[0];
        };
        const nlohmann::json forwarding = table("mean-forwarding");
        const int64_t t_hat = forwarding["matched_step"];
        CHECK(forwarding["nfe"] == t_hat);
        // The per-step run ends in the mean-forwarding estimate; the M-run averages are
        // posterior-mean-M<M>; the mismatch at offset 0 is the plain estimator.
        const auto last =
            select(json["steps"], {{"predictor", predictor}, {"snr_db", s}, {"remaining", 0}});
        REQUIRE(last.size() == 1);
        CHECK(last[0]["nmse"].get<double>() == forwarding["nmse"].get<double>());
        CHECK(last[0]["start_step"] == t_hat);
        for (int M : {1, 4}) {
          const auto mc = select(json["mc"], {{"predictor", predictor}, {"snr_db", s}, {"M", M}});
          REQUIRE(mc.size() == 1);
          const nlohmann::json same = table("posterior-mean-M" + std::to_string(M));
          CHECK(mc[0]["nmse"].get<double>() == same["nmse"].get<double>());
          CHECK(mc[0]["nfe"] == same["nfe"]);
          CHECK(mc[0]["nfe"] == M * t_hat);
        }
        for (const char* estimator : {"mean-forwarding", "tweedie"}) {
          const auto matched = select(json["mismatch"], {{"predictor", predictor},
                                                         {"estimator", estimator},
                                                         {"snr_db", s},
                                                         {"offset_db", 0.0}});
          REQUIRE(matched.size() == 1);
          CHECK(matched[0]["nmse"].get<double>() == table(estimator)["nmse"].get<double>());
        }
        const auto resampled =
            select(json["resampling"], {{"predictor", predictor}, {"snr_db", s}});
        REQUIRE(resampled.size() == 1);
        CHECK(resampled[0]["nmse_off"] == forwarding["nmse"]);
        CHECK(resampled[0]["nmse_on"] == table("posterior-mean-M1")["nmse"]);
      }
      // The CME told the true SNR is the CME; a wrong SNR does not beat it by more than noise.
      const auto cme_matched =
          select(json["mismatch"], {{"estimator", "cme"}, {"snr_db", s}, {"offset_db", 0.0}});
      REQUIRE(cme_matched.size() == 1);
      CHECK(cme_matched[0]["nmse"].get<double>() == cme_nmse);
    }
  };

  SECTION("oracle only") {
    Run run = dpmlab(dir, "denoise-bench --gmm gmm/gmm.safetensors " + common + " --out oracle");
    INFO(run.output);
    REQUIRE(run.code == 0);
    CHECK(contains(run.output, "## NMSE against the SNR"));  // the tables on stdout
    check_run(dir / "oracle", {"oracle"});
    // --config repeats the run bitwise.
    Run again = dpmlab(dir, "denoise-bench --config oracle/config.used.json --quiet --out again");
    INFO(again.output);
    REQUIRE(again.code == 0);
    CHECK_FALSE(contains(again.output, "## NMSE"));  // --quiet: no tables, no progress
    nlohmann::json first = read_json(dir / "oracle/denoise_bench.json"),
                   second = read_json(dir / "again/denoise_bench.json");
    for (const char* section : {"nmse", "steps", "mc", "mismatch"})
      for (nlohmann::json* json : {&first, &second})
        for (nlohmann::json& entry : (*json)[section]) entry.erase("seconds");
    for (const char* section : {"nmse", "steps", "mc", "mismatch", "resampling"})
      CHECK(first[section] == second[section]);
  }

  SECTION("with a network; its T is the detailed T") {
    train_small_mlp(dir, "run", "--epochs 1");
    Run run = dpmlab(dir, "denoise-bench --checkpoint run/best.safetensors " + common +
                              " --quiet --out network");
    INFO(run.output);
    REQUIRE(run.code == 0);
    check_run(dir / "network", {"oracle", "network"});
    CHECK(read_json(dir / "network/denoise_bench.json")["gmm"] == "gmm/gmm.safetensors");
    CHECK_FALSE(contains(run.output, "outside its training"));

    // --estimators cheap: mean forwarding and Tweedie only, on the same observations, so their
    // NMSE is the full run's; the resampling experiment then runs its own two estimators.
    Run cheap = dpmlab(dir, "denoise-bench --checkpoint run/best.safetensors " + common +
                                " --experiments nmse,resampling --estimators cheap --quiet "
                                "--out cheap");
    INFO(cheap.output);
    REQUIRE(cheap.code == 0);
    const nlohmann::json full = read_json(dir / "network/denoise_bench.json"),
                         reduced = read_json(dir / "cheap/denoise_bench.json");
    std::set<std::string> estimators;
    for (const nlohmann::json& entry : select(reduced["nmse"], {{"predictor", "network"}})) {
      estimators.insert(entry["estimator"].get<std::string>());
      const auto same = select(full["nmse"], {{"predictor", "network"},
                                              {"estimator", entry["estimator"]},
                                              {"snr_db", entry["snr_db"]}});
      REQUIRE(same.size() == 1);
      CHECK(entry["nmse"] == same[0]["nmse"]);
    }
    CHECK(estimators == std::set<std::string>{"mean-forwarding", "tweedie"});
    CHECK(reduced["resampling"].size() == 2 * snr.size());
    for (const nlohmann::json& row : reduced["resampling"]) {
      const auto same =
          select(full["resampling"], {{"predictor", row["predictor"]}, {"snr_db", row["snr_db"]}});
      REQUIRE(same.size() == 1);
      CHECK(row["nmse_off"] == same[0]["nmse_off"]);
    }

    // Trained on steps 1..8 only: the SNR of step 15 starts outside that, and is named.
    write_text(dir / "ranged.json", R"({"model": {"arch": "mlp", "width": 16, "depth": 1},
                                        "objective": {"last_step": 8}})");
    Run ranged =
        dpmlab(dir,
               "train --data gmm --config ranged.json --T 20 --batch 64 --epochs 1 --quiet "
               "--out ranged");
    INFO(ranged.output);
    REQUIRE(ranged.code == 0);
    Run outside = dpmlab(dir, "denoise-bench --checkpoint ranged/best.safetensors --snr " +
                                  snr_flag + " --experiments nmse --estimators cheap --T 20 " +
                                  "--samples 16 --quiet --out ranged_bench");
    INFO(outside.output);
    REQUIRE(outside.code == 0);
    auto named = [](double db) {
      char text[40];
      std::snprintf(text, sizeof text, "%.10g dB", db);
      return std::string(text);
    };
    CHECK(contains(outside.output, "trained on steps 1..8 of 20, but at SNR " + named(snr[0])));
    CHECK_FALSE(contains(outside.output, named(snr[1])));
    CHECK_FALSE(contains(outside.output, named(snr[2])));

    Run other_T = dpmlab(dir, "denoise-bench --checkpoint run/best.safetensors --detail-T 300");
    INFO(other_T.output);
    CHECK(other_T.code == 2);
    CHECK(contains(other_T.output, "--checkpoint"));
    CHECK(contains(other_T.output, "trained with T = 20"));
    Run only = dpmlab(dir,
                      "denoise-bench --checkpoint run/best.safetensors --experiments steps "
                      "--step-snr 0 --quiet --out steps-only");
    INFO(only.output);
    REQUIRE(only.code == 0);
    CHECK(fs::exists(dir / "steps-only/steps.csv"));
    CHECK_FALSE(fs::exists(dir / "steps-only/nmse.csv"));
  }
}

TEST_CASE("bound: the network's and eps*'s NLL bounds beside the exact NLL", "[cli][bound]") {
  TempDir tmp("dpm_cli_bound");
  const fs::path& dir = tmp.path;
  make_gmm_data(dir);
  train_small_mlp(dir, "run", "--epochs 1");
  Run run = dpmlab(dir, "bound --checkpoint run/best.safetensors --samples 300 --out bound");
  INFO(run.output);
  REQUIRE(run.code == 0);
  CHECK(contains(run.output, "| oracle | beta_tilde |"));
  const nlohmann::json json = read_json(dir / "bound/bound.json");
  CHECK(json["config"] == read_json(dir / "bound/config.used.json"));
  CHECK(json["samples"] == 300);
  const double nll = json["exact_nll"];
  REQUIRE(json["rows"].size() == 4);
  for (const nlohmann::json& row : json["rows"]) {
    INFO(row.dump());
    const double bound = row["bound"], se = row["std_error"];
    CHECK(bound == Approx(row["prior"].get<double>() + row["transitions"].get<double>() +
                          row["decoder"].get<double>()));
    CHECK(row["gap_to_nll"].get<double>() == Approx(bound - nll));
    // An upper bound in expectation: below the NLL only by Monte-Carlo error, if at all.
    CHECK(bound > nll - 3 * se);
    CHECK(row["prior"] == json["rows"][0]["prior"]);  // L_T does not involve the predictor
  }
  CHECK(csv_rows(dir / "bound/bound_per_step.csv",
                 "t,network_beta,oracle_beta,network_beta_tilde,oracle_beta_tilde") == 20);

  Run not_gmm = dpmlab(dir, "bound --checkpoint run/best.safetensors --data run");
  CHECK(not_gmm.code == 2);
  CHECK(contains(not_gmm.output, "--data"));
}

TEST_CASE("train and sample on an image folder: samples.png", "[cli]") {
  TempDir tmp("dpm_cli_images");
  const fs::path folder = tmp.path / "images";
  fs::create_directories(folder);
  for (int i = 0; i < 8; ++i) {
    Tensor image = Tensor::empty({1, 1, 8, 8});
    for (int64_t p = 0; p < 64; ++p) image.data()[p] = static_cast<float>((p * (i + 1)) % 17) / 16;
    dpm::datasets::write_png_grid((folder / ("img" + std::to_string(i) + ".png")).string(), image,
                                  1, 0);
  }
  Run train = dpmlab(tmp.path,
                     "train --data images --color gray --arch unet2d --T 5 --batch 4 "
                     "--epochs 1 --quiet --out run");
  INFO(train.output);
  REQUIRE(train.code == 0);
  CHECK(contains(train.output, "7 training and 1 validation samples of shape [1, 8, 8]"));
  Run sample = dpmlab(tmp.path,
                      "sample --checkpoint run/best.safetensors --count 4 --quiet "
                      "--out sample");
  INFO(sample.output);
  REQUIRE(sample.code == 0);
  const Tensor grid = dpm::datasets::load_image((tmp.path / "sample/samples.png").string(),
                                                dpm::datasets::ColorMode::gray);
  // 2 x 2 tiles of 8 x 8 with 2 pixels of padding around and between them.
  CHECK(grid.shape() == dpm::Shape{1, 22, 22});
  CHECK(
      read_safetensors((tmp.path / "sample/samples.safetensors").string()).get("samples").shape() ==
      dpm::Shape{4, 1, 8, 8});
}

TEST_CASE("gmm fit to images draws its samples beside the real images: samples.png", "[cli][gmm]") {
  TempDir tmp("dpm_cli_gmm_images");
  Tensor images = Tensor::empty({40, 1, 12, 12});
  dpm::Rng rng(4);
  rng.fill_uniform(images.data(), images.numel(), 0.2f, 0.8f);
  dpm::write_safetensors((tmp.path / "images.safetensors").string(), {{"train", images}});
  Run fit = dpmlab(tmp.path,
                   "gmm fit --data images.safetensors --components 2 --iters 2 --sample 64 --val 8 "
                   "--test 8 --quiet --out fit");
  INFO(fit.output);
  REQUIRE(fit.code == 0);
  CHECK(contains(fit.output, "8 samples of the fit, then 8 real images"));
  // min(8, 64 / 8, 40 / 8) = 5 rows of 8 + 8 tiles of 12 x 12, 2 pixels apart and around.
  const Tensor grid = dpm::datasets::load_image((tmp.path / "fit/samples.png").string(),
                                                dpm::datasets::ColorMode::gray);
  CHECK(grid.shape() == dpm::Shape{1, 5 * 12 + 6 * 2, 16 * 12 + 17 * 2});
  // The right half of the first row is the first real image, tile for tile (8-bit rounding).
  for (int64_t i = 0; i < 12; ++i)
    for (int64_t j = 0; j < 12; ++j)
      CHECK(grid.data()[(2 + i) * grid.size(2) + 8 * 14 + 2 + j] ==
            Approx(images.data()[i * 12 + j]).margin(0.5 / 255 + 1e-6));
}

TEST_CASE("every sh example in docs/cli.md runs", "[cli][docs]") {
  std::ifstream doc(fs::path(DPMLAB_SOURCE_DIR) / "docs/cli.md");
  REQUIRE(doc.good());
  std::vector<std::string> blocks;
  std::string line, block;
  bool in_block = false;
  while (std::getline(doc, line)) {
    if (!in_block && line == "```sh") {
      in_block = true;
      block.clear();
    } else if (in_block && line == "```") {
      in_block = false;
      blocks.push_back(block);
    } else if (in_block) {
      block += line + "\n";
    }
  }
  CHECK_FALSE(in_block);
  REQUIRE(blocks.size() >= 8);
  // In order, in one directory: later examples use what earlier ones made.
  TempDir tmp("dpm_cli_docs");
  for (size_t i = 0; i < blocks.size(); ++i) {
    const fs::path script = tmp.path / ("example" + std::to_string(i) + ".sh");
    write_text(script, blocks[i]);
    Run run = run_in(tmp.path, "sh -e " + script.string());
    INFO("example " << i << ":\n" << blocks[i] << "output:\n" << run.output);
    CHECK(run.code == 0);
  }
}
