// Writes the seed corpora of the fuzz targets: small valid files made by the library itself,
// plus a few hand-made edge cases per format. Usage: fuzz_make_corpus [OUT_DIR] (default
// fuzz/corpus); files go to OUT_DIR/<target>/. A rerun reproduces the seeds but for the wall
// time recorded in the resume seed. Every seed must stay small (the corpora are committed; keep
// the total under 1 MB).
#include <zlib.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "autograd/io/safetensors.hpp"
#include "autograd/threading.hpp"
#include "datasets/gmm.hpp"
#include "fuzz/fixtures.hpp"
#include "nn/checkpoint.hpp"
#include "trainers/dpm_training.hpp"

namespace fs = std::filesystem;
using namespace dpm;

namespace {

using Bytes = std::string;

void write_file(const fs::path& path, const Bytes& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

void write_gzip(const fs::path& path, const Bytes& bytes) {
  gzFile f = gzopen(path.c_str(), "wb9");
  if (!f ||
      gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())) !=
          static_cast<int>(bytes.size()) ||
      gzclose(f) != Z_OK)
    throw std::runtime_error("cannot write " + path.string());
}

// A safetensors file from a header given as JSON text and raw data bytes (for malformed seeds).
Bytes raw_safetensors(const std::string& header, const Bytes& data) {
  Bytes bytes;
  for (int i = 0; i < 8; ++i) bytes.push_back(static_cast<char>((header.size() >> (8 * i)) & 0xff));
  return bytes + header + data;
}

Tensor filled(const Shape& shape, float start) {
  Tensor t = Tensor::empty(shape);
  for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] = start + 0.25f * static_cast<float>(i);
  return t;
}

void safetensors_seeds(const fs::path& dir) {
  write_safetensors((dir / "mixed.safetensors").string(),
                    {{"matrix", filled({2, 3}, 1)},
                     {"scalar", filled({}, -2)},
                     {"empty", Tensor::empty({0, 4})},
                     {"five_d", filled({1, 2, 1, 2, 1}, 0)}},
                    {{"note", "seed"}, {"unicode", "\u00e9\u4e2d"}});
  write_safetensors((dir / "no_tensors.safetensors").string(), {}, {{"only", "metadata"}});
  // Hand-made: offsets that overflow when added, overlapping tensors, a header length beyond the
  // file, a non-F32 dtype.
  write_file(dir / "offsets_overflow.safetensors",
             raw_safetensors(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":)"
                             R"([18446744073709551612,18446744073709551616]}})",
                             Bytes(4, '\0')));
  write_file(dir / "overlap.safetensors",
             raw_safetensors(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                             R"("b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                             Bytes(8, '\1')));
  write_file(dir / "header_too_long.safetensors", Bytes("\xff\xff\x00\x00\x00\x00\x00\x00{}", 10));
  write_file(
      dir / "f16.safetensors",
      raw_safetensors(R"({"h":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}})", Bytes(4, '\0')));
}

void checkpoint_seeds(const fs::path& dir) {
  auto model = fuzz::make_small_model();
  nn::save_state((dir / "small_model.safetensors").string(), *model, {{"dpmlab.step", "0"}});
  auto tensors = model->state_dict();
  auto without_last = tensors;
  without_last.pop_back();
  write_safetensors((dir / "missing_tensor.safetensors").string(), without_last);
  auto with_extra = tensors;
  with_extra.emplace_back("extra.weight", filled({2}, 0));
  write_safetensors((dir / "extra_tensor.safetensors").string(), with_extra);
  auto reshaped = tensors;
  reshaped.front().second = filled({reshaped.front().second.numel()}, 0);
  write_safetensors((dir / "wrong_shape.safetensors").string(), reshaped);
}

void resume_seeds(const fs::path& dir) {
  fuzz::TinyTrainer tiny = fuzz::make_tiny_trainer();
  tiny.trainer->fit();
  const std::string path = (dir / "resume.safetensors").string();
  tiny.trainer->save_resume(path);
  // Hand-made: the same tensors with a resume record whose fields have the wrong types.
  SafeTensors file = read_safetensors(path);
  nlohmann::json state = nlohmann::json::parse(file.metadata.at("dpmlab.resume"));
  state["step"] = "three";
  state["noise_rng"] = {1, 2};
  file.metadata["dpmlab.resume"] = state.dump();
  write_safetensors((dir / "bad_fields.safetensors").string(), file.tensors, file.metadata);
}

Bytes idx_file(uint8_t type, const std::vector<uint32_t>& dims, size_t data_bytes) {
  Bytes b = {0, 0, static_cast<char>(type), static_cast<char>(dims.size())};
  for (uint32_t d : dims)
    for (int shift = 24; shift >= 0; shift -= 8)
      b.push_back(static_cast<char>((d >> shift) & 0xff));
  for (size_t i = 0; i < data_bytes; ++i) b.push_back(static_cast<char>((i * 37) & 0xff));
  return b;
}

void idx_seeds(const fs::path& dir) {
  write_file(dir / "images-idx3-ubyte", idx_file(0x08, {2, 3, 4}, 24));
  write_file(dir / "labels-idx1-ubyte", idx_file(0x08, {5}, 5));
  write_gzip(dir / "images-idx3-ubyte.gz", idx_file(0x08, {2, 3, 4}, 24));
  write_file(dir / "four_dims", idx_file(0x08, {1, 2, 2, 2}, 8));
  // Hand-made: a float element type, and dims declaring 2^32 - 1 bytes over a tiny file.
  write_file(dir / "float_type", idx_file(0x0D, {2}, 8));
  write_file(dir / "huge_dims", idx_file(0x08, {0xffffffffu}, 3));
}

void gmm_seeds(const fs::path& dir) {
  Rng rng(3);
  datasets::save_gmm(datasets::make_random_gmm(rng, 3, 2), (dir / "gmm_3x2.safetensors").string());
  datasets::save_gmm(datasets::make_random_gmm(rng, 1, 1), (dir / "gmm_1x1.safetensors").string());
  // Hand-made: an indefinite covariance.
  write_safetensors((dir / "indefinite.safetensors").string(),
                    {{"weights", filled({1}, 1)},
                     {"means", filled({1, 2}, 0)},
                     {"covariances", filled({1, 2, 2}, -1)}},
                    {{"format", "dpmlab.gmm"}});
}

void config_seeds(const fs::path& dir) {
  train::DpmTrainingConfig config;
  write_file(dir / "default.json", config.to_json().dump(2));
  config.optimizer.kind = train::OptimizerKind::adamw;
  config.lr_schedule = optim::LrScheduleOptions{};
  config.lr_schedule->kind = optim::LrScheduleKind::warmup_cosine;
  config.lr_schedule->warmup_steps = 10;
  config.lr_schedule->total_steps = 100;
  config.objective.loss = diffusion::LossKind::vlb;
  config.objective.importance_sampling = true;
  config.trainer.ema_decay = 0.999;
  config.schedule = diffusion::Schedule::cosine(50).to_json();
  write_file(dir / "adamw_cosine_vlb.json", config.to_json().dump());
  write_file(dir / "empty.json", "{}");
  write_file(dir / "wrong_types.json",
             R"({"optimizer": {"lr": "fast"}, "training": {"batch_size": 1.5}})");
}

}  // namespace

int main(int argc, char** argv) {
  set_num_threads(1);
  const fs::path root = argc > 1 ? argv[1] : "fuzz/corpus";
  const std::vector<std::pair<std::string, void (*)(const fs::path&)>> generators = {
      {"safetensors", safetensors_seeds},
      {"checkpoint", checkpoint_seeds},
      {"resume", resume_seeds},
      {"idx", idx_seeds},
      {"gmm", gmm_seeds},
      {"config", config_seeds}};
  for (const auto& [name, generate] : generators) {
    fs::create_directories(root / name);
    generate(root / name);
  }
  std::printf("fuzz_make_corpus: seeds written to %s\n", root.c_str());
  return 0;
}
