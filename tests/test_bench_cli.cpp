// dpmlab bench: the JSON of a tiny run is complete and sane, usage errors exit 2, and the FLOP
// counter (apps/flop_count.hpp) matches hand counts on small layer stacks.
#include <sys/wait.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "apps/flop_count.hpp"
#include "nn/activation.hpp"
#include "nn/conv.hpp"
#include "nn/linear.hpp"
#include "nn/sequential.hpp"
#include "tests/temp_dir.hpp"

namespace {

// Runs dpmlab with `arguments`; returns its exit code (-1 when killed by a signal).
int run_dpmlab(const std::string& arguments) {
  const std::string line = std::string("'") + DPMLAB_BINARY + "' " + arguments + " >/dev/null 2>&1";
  const int status = std::system(line.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

void require_positive_finite(const nlohmann::json& result, const char* key) {
  INFO(key);
  REQUIRE(result.contains(key));
  const double value = result[key].get<double>();
  CHECK(std::isfinite(value));
  CHECK(value > 0);
}

// Runs `dpmlab bench ARGUMENTS --json FILE` and returns what it wrote.
nlohmann::json bench_json(const std::string& arguments) {
  dpm::testing::TempDir dir("dpm_bench_cli");
  const std::string json_file = dir.file("bench.json");
  REQUIRE(run_dpmlab("bench " + arguments + " --json '" + json_file + "'") == 0);
  std::ifstream in(json_file);
  return nlohmann::json::parse(in);
}

}  // namespace

TEST_CASE("dpmlab bench writes positive, finite figures", "[bench_cli]") {
  const nlohmann::json result = bench_json(
      "--model mlp --steps 2 --warmup 1 --batch 8 --threads 1 --inference-batch 3 "
      "--inference-batch 5");
  CHECK(result["model"] == "mlp");
  CHECK(result["batch"] == 8);
  CHECK(result["step_ms"].size() == 2);
  for (const char* key :
       {"step_ms_median", "step_ms_min", "inference_ms_median", "forward_flops", "step_flops",
        "achieved_gflops", "sgemm_gflops", "percent_of_sgemm", "roofline_step_ms", "peak_rss_mb"})
    require_positive_finite(result, key);
  CHECK(result["step_ms_min"].get<double>() <= result["step_ms_median"].get<double>());
  CHECK(result["step_flops"].get<int64_t>() == 3 * result["forward_flops"].get<int64_t>());
  REQUIRE(result["inference_batches"].size() == 2);
  CHECK(result["inference_batches"][0]["batch"] == 3);
  CHECK(result["inference_batches"][1]["batch"] == 5);
  for (const nlohmann::json& inference : result["inference_batches"]) {
    require_positive_finite(inference, "ms_median");
    CHECK(inference["ms_min"].get<double>() <= inference["ms_median"].get<double>());
  }
}

TEST_CASE("dpmlab bench --em times EM iterations against dgemm", "[bench_cli]") {
  const nlohmann::json result =
      bench_json("--em --components 4 --dim 16 --batch 200 --steps 2 --warmup 1 --threads 1");
  CHECK(result["mode"] == "em");
  CHECK(result["components"] == 4);
  CHECK(result["dim"] == 16);
  CHECK(result["rows"] == 200);
  CHECK(result["iterations"] == 2);
  for (const char* key : {"iteration_s_median", "em_gflops_median", "dgemm_gflops",
                          "percent_of_dgemm", "peak_rss_mb"})
    require_positive_finite(result, key);
  const double percent =
      100.0 * result["em_gflops_median"].get<double>() / result["dgemm_gflops"].get<double>();
  CHECK(result["percent_of_dgemm"].get<double>() == Approx(percent));
}

TEST_CASE("dpmlab bench rejects bad arguments with exit code 2", "[bench_cli]") {
  CHECK(run_dpmlab("bench --model resnet") == 2);
  CHECK(run_dpmlab("bench --model mlp --batch 0") == 2);
  CHECK(run_dpmlab("bench") == 2);  // neither --model nor --denoiser
  CHECK(run_dpmlab("bench --model mlp --denoiser") == 2);
  CHECK(run_dpmlab("bench --denoiser --track-every 50") == 2);
  CHECK(run_dpmlab("bench --em --denoiser") == 2);
  CHECK(run_dpmlab("bench --em --model mlp") == 2);
  CHECK(run_dpmlab("bench --em --components 8 --batch 4") == 2);  // fewer rows than components
  CHECK(run_dpmlab("bench --model mlp --dim 16") == 2);           // --dim is --em's
  CHECK(run_dpmlab("bench --em --inference-batch 512") == 2);
  CHECK(run_dpmlab("bench --model mlp --inference-batch 0") == 2);
  CHECK(run_dpmlab("bench --help") == 0);
}

TEST_CASE("count_flops matches hand counts of Linear and Conv layers", "[bench_cli]") {
  dpm::Rng rng(1);
  SECTION("two Linear layers") {
    dpm::nn::Sequential model{std::make_shared<dpm::nn::Linear>(3, 5, rng),
                              std::make_shared<dpm::nn::SiLU>(),
                              std::make_shared<dpm::nn::Linear>(5, 2, rng)};
    dpm::nn::ShapeTrace trace;
    model.forward(dpm::Variable(dpm::Tensor::zeros({4, 3})));
    const dpm::cli::FlopCount count = dpm::cli::count_flops(model, trace.shapes());
    // 2 FLOPs per multiply-add: 2 * batch * in * out per layer.
    REQUIRE(count.layers.size() == 2);
    CHECK(count.layers[0].name == "0");
    CHECK(count.layers[0].flops == 2 * 4 * 3 * 5);
    CHECK(count.layers[1].name == "2");
    CHECK(count.layers[1].flops == 2 * 4 * 5 * 2);
    CHECK(count.forward == 120 + 80);
    CHECK(count.training_step() == 3 * 200);
  }
  SECTION("Conv1d with stride and Conv2d") {
    dpm::nn::ConvOptions strided{
        .in_channels = 2, .out_channels = 3, .kernel_size = 3, .stride = 2, .padding = 1};
    dpm::nn::Sequential conv1d{std::make_shared<dpm::nn::Conv1d>(strided, rng)};
    dpm::nn::ShapeTrace trace;
    conv1d.forward(dpm::Variable(dpm::Tensor::zeros({5, 2, 8})));
    // L_out = (8 + 2 - 3) / 2 + 1 = 4: 2 * B * Cout * L_out * Cin * k.
    CHECK(dpm::cli::count_flops(conv1d, trace.shapes()).forward == 2 * 5 * 3 * 4 * 2 * 3);

    dpm::nn::ConvOptions same{.in_channels = 4, .out_channels = 6, .kernel_size = 3, .padding = 1};
    dpm::nn::Sequential conv2d{std::make_shared<dpm::nn::Conv2d>(same, rng)};
    conv2d.forward(dpm::Variable(dpm::Tensor::zeros({2, 4, 5, 7})));
    CHECK(dpm::cli::count_flops(conv2d, trace.shapes()).forward ==
          int64_t{2} * 2 * 6 * (5 * 7) * 4 * 9);
  }
}
