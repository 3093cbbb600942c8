#pragma once
// UNet: the paper's noise network (docs/protocol.md, The U-Net), for 1-D data [B, C, L] or 2-D
// data [B, C, H, W].
//   temb = time_mlp(sinusoidal(t)),  time_mlp = Linear(c0 -> th), SiLU, Linear(th -> th)
//   h = init_conv(x)                                  (k = 3, replicate padding) -> skip
//   down.i: blocks_per_level ResBlocks (each -> skip), then AvgPool(2) (-> skip) but at the last
//   mid: one ResBlock [+ SelfAttention when enabled]
//   up.j (deepest level first): blocks_per_level + 1 ResBlocks, each on concat(h, skips.pop());
//        nearest Upsample(2) after every level but the shallowest
//   out = out_conv(SiLU(out_norm(h)))                 (k = 3, replicate padding)
// Parameter names: time_mlp.0.weight, init_conv.weight, down.0.blocks.1.conv1.weight,
// mid.conv1.weight, up.0.blocks.0.bypass.weight (up.0 is the deepest), out_norm.weight, ...
#include <memory>
#include <vector>

#include "nn/attention.hpp"
#include "nn/conv.hpp"
#include "nn/module_list.hpp"
#include "nn/noise_model.hpp"
#include "nn/resample.hpp"
#include "nn/resblock.hpp"
#include "nn/sequential.hpp"
#include "nn/time_embedding.hpp"

namespace dpm::nn {

struct UNetOptions {
  int spatial_dims = 1;  // 1: vectors [B, C, L]; 2: images [B, C, H, W]
  int64_t data_channels = 1;
  int64_t base_channels = 16;
  std::vector<int64_t> channel_multipliers{1, 2, 4, 8};
  int64_t blocks_per_level = 2;
  int64_t time_embedding_size = 16;  // sinusoidal size c0
  int64_t time_hidden_size = 64;     // time MLP width = the embedding every ResBlock sees
  NormOptions norm{};
  bool attention = false;  // single-head self-attention after the middle ResBlock

  static UNetOptions paper_1d();  // (1, 2, 4, 8), for length-64 vectors
  static UNetOptions paper_2d();  // (1, 2, 4), for 28 x 28 images

  nlohmann::json to_json() const;  // {"arch": "unet1d" | "unet2d", ...}
  // Reads the fields of a "unet1d"/"unet2d" config (defaults: the paper's); throws naming a
  // bad or unknown field.
  static UNetOptions from_json(const nlohmann::json& config);
};

// The U-Net's dataflow is written once, in its flow members, over a Value and a Pass that says
// what each step does to one: UNet::forward runs it on tensors, UNet::lipschitz_bound on
// Lipschitz bounds in x (nn/unet.cpp). const: a flow only walks the structure.

// One resolution level of the down path: ResBlocks, then an optional AvgPool.
class UNetDownLevel : public Module {
 public:
  UNetDownLevel(const std::vector<ResBlockOptions>& blocks, bool pool, Rng& rng);
  // Pushes every block's output and the pool's output onto skips.
  template <typename Value, typename Pass>
  Value flow(Value h, std::vector<Value>& skips, const Pass& pass) const;

 private:
  std::shared_ptr<ModuleList<ResBlock>> blocks_;
  std::shared_ptr<AvgPool> pool_;  // null at the deepest level
};

// One resolution level of the up path: ResBlocks on concat(h, skip), then an optional Upsample.
class UNetUpLevel : public Module {
 public:
  UNetUpLevel(const std::vector<ResBlockOptions>& blocks, bool upsample, Rng& rng);
  // Pops one skip per block.
  template <typename Value, typename Pass>
  Value flow(Value h, std::vector<Value>& skips, const Pass& pass) const;

 private:
  std::shared_ptr<ModuleList<ResBlock>> blocks_;
  std::shared_ptr<Upsample> upsample_;  // null at the shallowest level
};

class UNet : public NoiseModel {
 public:
  UNet(const UNetOptions& options, Rng& rng);
  // x [B, data_channels, L] or [B, data_channels, H, W]; every spatial extent must be divisible
  // by 2^(levels - 1).
  Variable forward(const Variable& x, const std::vector<int64_t>& t) override;
  nlohmann::json config() const override { return options_.to_json(); }
  Variable embed_time(const std::vector<int64_t>& t) override;  // time_mlp(sinusoidal(t))
  const UNetOptions& options() const { return options_; }
  // In x at fixed t, along the same flow as forward.
  double lipschitz_bound(const lipschitz::LayerNorms& norms) const override;
  std::string lipschitz_bound_note() const override;

 private:
  void check_input(const Variable& x) const;
  template <typename Value, typename Pass>
  Value flow(Value x, const Pass& pass) const;

  UNetOptions options_;
  std::shared_ptr<SinusoidalTimeEmbedding> time_embedding_;
  std::shared_ptr<Sequential> time_mlp_;
  std::shared_ptr<Conv> init_conv_;
  std::shared_ptr<ModuleList<UNetDownLevel>> down_;
  std::shared_ptr<ResBlock> mid_;
  std::shared_ptr<SelfAttention> mid_attention_;  // null unless options.attention
  std::shared_ptr<ModuleList<UNetUpLevel>> up_;
  std::shared_ptr<Layer> out_norm_;
  std::shared_ptr<Conv> out_conv_;
};

}  // namespace dpm::nn
