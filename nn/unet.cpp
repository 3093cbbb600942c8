#include "nn/unet.hpp"

#include <stdexcept>
#include <string>

#include "autograd/ops/activation.hpp"
#include "autograd/ops/shape.hpp"
#include "nn/activation.hpp"
#include "nn/config_reader.hpp"
#include "nn/linear.hpp"
#include "nn/lipschitz/autolip.hpp"
#include "nn/lipschitz/constants.hpp"
#include "nn/shape_trace.hpp"

namespace dpm::nn {
namespace {

// forward's pass: every step on tensors.
struct TensorPass {
  const Variable& temb;

  Variable layer(Layer& layer, const Variable& h) const { return layer.forward(h); }
  Variable block(ResBlock& block, const Variable& h) const { return block.forward(h, temb); }
  Variable concat(const Variable& h, const Variable& skip) const {
    return dpm::concat({h, skip}, 1);
  }
  Variable head(Layer& norm, Layer& conv, const Variable& h) const {
    return conv.forward(silu(norm.forward(h)));
  }
  Variable output(const Module& module, const Variable& h) const {
    return trace_output(module, h);
  }
};

// lipschitz_bound's pass: every value replaced by its Lipschitz bound in x.
struct BoundPass {
  const lipschitz::LayerNorms& norms;

  double layer(const Module& layer, double h) const { return h * layer.lipschitz_bound(norms); }
  double block(const ResBlock& block, double h) const { return h * block.lipschitz_bound(norms); }
  double concat(double h, double skip) const { return lipschitz::concat_bound(h, skip); }
  double head(const Module& norm, const Module& conv, double h) const {
    return conv.lipschitz_bound(norms) * lipschitz::kSiluLipschitz * norm.lipschitz_bound(norms) *
           h;
  }
  double output(const Module&, double h) const { return h; }
};

}  // namespace

UNetOptions UNetOptions::paper_1d() {
  return UNetOptions{};
}

UNetOptions UNetOptions::paper_2d() {
  UNetOptions o;
  o.spatial_dims = 2;
  o.channel_multipliers = {1, 2, 4};
  return o;
}

nlohmann::json UNetOptions::to_json() const {
  return {{"arch", spatial_dims == 1 ? "unet1d" : "unet2d"},
          {"data_channels", data_channels},
          {"base_channels", base_channels},
          {"channel_multipliers", channel_multipliers},
          {"blocks_per_level", blocks_per_level},
          {"time_embedding_size", time_embedding_size},
          {"time_hidden_size", time_hidden_size},
          {"norm", norm_kind_name(norm.kind)},
          {"norm_groups", norm.groups},
          {"attention", attention}};
}

UNetOptions UNetOptions::from_json(const nlohmann::json& config) {
  ConfigReader reader(config, "unet config");
  std::string arch = reader.choice("arch", "", {"unet1d", "unet2d"});
  UNetOptions o = arch == "unet1d" ? paper_1d() : paper_2d();
  o.data_channels = reader.integer("data_channels", o.data_channels);
  o.base_channels = reader.integer("base_channels", o.base_channels);
  o.channel_multipliers = reader.integer_list("channel_multipliers", o.channel_multipliers);
  o.blocks_per_level = reader.integer("blocks_per_level", o.blocks_per_level);
  // The sinusoidal formula divides by half - 1, so its size is at least 4.
  o.time_embedding_size = reader.integer("time_embedding_size", o.time_embedding_size, 4);
  o.time_hidden_size = reader.integer("time_hidden_size", o.time_hidden_size);
  o.norm.kind = parse_norm_kind(reader.choice("norm", "batch", {"batch", "group"}));
  o.norm.groups = static_cast<int>(reader.integer("norm_groups", o.norm.groups));
  o.attention = reader.boolean("attention", o.attention);
  reader.finish();
  return o;
}

UNetDownLevel::UNetDownLevel(const std::vector<ResBlockOptions>& blocks, bool pool, Rng& rng)
    : Module("UNetDownLevel") {
  blocks_ = register_module("blocks", std::make_shared<ModuleList<ResBlock>>());
  for (const auto& block : blocks) blocks_->push_back(std::make_shared<ResBlock>(block, rng));
  if (pool) pool_ = register_module("pool", std::make_shared<AvgPool>(2));
}

template <typename Value, typename Pass>
Value UNetDownLevel::flow(Value h, std::vector<Value>& skips, const Pass& pass) const {
  for (const auto& block : *blocks_) {
    h = pass.block(*block, h);
    skips.push_back(h);
  }
  if (pool_) {
    h = pass.layer(*pool_, h);
    skips.push_back(h);
  }
  return pass.output(*this, h);
}

UNetUpLevel::UNetUpLevel(const std::vector<ResBlockOptions>& blocks, bool upsample, Rng& rng)
    : Module("UNetUpLevel") {
  blocks_ = register_module("blocks", std::make_shared<ModuleList<ResBlock>>());
  for (const auto& block : blocks) blocks_->push_back(std::make_shared<ResBlock>(block, rng));
  if (upsample) upsample_ = register_module("upsample", std::make_shared<Upsample>(2));
}

template <typename Value, typename Pass>
Value UNetUpLevel::flow(Value h, std::vector<Value>& skips, const Pass& pass) const {
  for (const auto& block : *blocks_) {
    // The constructor's channel plan pops exactly as many skips as were pushed.
    Value skip = skips.back();
    skips.pop_back();
    h = pass.block(*block, pass.concat(h, skip));
  }
  if (upsample_) h = pass.layer(*upsample_, h);
  return pass.output(*this, h);
}

UNet::UNet(const UNetOptions& options, Rng& rng) : NoiseModel("UNet"), options_(options) {
  const UNetOptions& o = options;
  if (o.spatial_dims != 1 && o.spatial_dims != 2)
    throw std::invalid_argument("UNet: spatial_dims must be 1 or 2, got " +
                                std::to_string(o.spatial_dims));
  if (o.channel_multipliers.empty() || o.blocks_per_level < 1)
    throw std::invalid_argument("UNet: need at least one level and one block per level");
  const int64_t th = o.time_hidden_size;
  auto block = [&](int64_t in, int64_t out) {
    return ResBlockOptions{in, out, th, o.spatial_dims, o.norm};
  };
  auto conv3_replicate = [&](int64_t in, int64_t out) {
    return make_conv(o.spatial_dims,
                     {.in_channels = in,
                      .out_channels = out,
                      .kernel_size = 3,
                      .padding = 1,
                      .padding_mode = PaddingMode::replicate},
                     rng);
  };

  time_embedding_ = register_module(
      "time_embedding", std::make_shared<SinusoidalTimeEmbedding>(o.time_embedding_size));
  time_mlp_ = register_module(
      "time_mlp", std::make_shared<Sequential>(std::initializer_list<std::shared_ptr<Layer>>{
                      std::make_shared<Linear>(o.time_embedding_size, th, rng),
                      std::make_shared<SiLU>(), std::make_shared<Linear>(th, th, rng)}));
  init_conv_ = register_module("init_conv", conv3_replicate(o.data_channels, o.base_channels));

  // The channel plan: follow h's channels and the skip stack exactly as forward will.
  const auto levels = static_cast<int64_t>(o.channel_multipliers.size());
  int64_t h = o.base_channels;
  std::vector<int64_t> skip_channels{h};
  down_ = register_module("down", std::make_shared<ModuleList<UNetDownLevel>>());
  for (int64_t level = 0; level < levels; ++level) {
    const int64_t c = o.base_channels * o.channel_multipliers[static_cast<size_t>(level)];
    std::vector<ResBlockOptions> blocks;
    for (int64_t b = 0; b < o.blocks_per_level; ++b) {
      blocks.push_back(block(h, c));
      h = c;
      skip_channels.push_back(h);
    }
    const bool pool = level + 1 < levels;
    if (pool) skip_channels.push_back(h);
    down_->push_back(std::make_shared<UNetDownLevel>(blocks, pool, rng));
  }

  mid_ = register_module("mid", std::make_shared<ResBlock>(block(h, h), rng));
  if (o.attention)
    mid_attention_ =
        register_module("mid_attention", std::make_shared<SelfAttention>(h, o.norm, rng));

  up_ = register_module("up", std::make_shared<ModuleList<UNetUpLevel>>());
  for (int64_t level = levels - 1; level >= 0; --level) {
    const int64_t c = o.base_channels * o.channel_multipliers[static_cast<size_t>(level)];
    std::vector<ResBlockOptions> blocks;
    for (int64_t b = 0; b <= o.blocks_per_level; ++b) {
      blocks.push_back(block(h + skip_channels.back(), c));
      skip_channels.pop_back();
      h = c;
    }
    up_->push_back(std::make_shared<UNetUpLevel>(blocks, /*upsample=*/level > 0, rng));
  }

  out_norm_ = register_module("out_norm", make_norm(o.norm, h));
  out_conv_ = register_module("out_conv", conv3_replicate(h, o.data_channels));
}

void UNet::check_input(const Variable& x) const {
  const int rank = options_.spatial_dims + 2;
  const auto levels = static_cast<int>(options_.channel_multipliers.size());
  const int64_t divisor = int64_t{1} << (levels - 1);
  bool ok = x.ndim() == rank && x.size(1) == options_.data_channels;
  for (int d = 2; ok && d < rank; ++d) ok = x.size(d) > 0 && x.size(d) % divisor == 0;
  if (!ok)
    throw std::invalid_argument(
        "UNet: input must be [B, " + std::to_string(options_.data_channels) +
        (options_.spatial_dims == 1 ? ", L]" : ", H, W]") + " with spatial sizes divisible by " +
        std::to_string(divisor) + " (" + std::to_string(levels - 1) + " poolings), got " +
        x.shape().str());
}

template <typename Value, typename Pass>
Value UNet::flow(Value x, const Pass& pass) const {
  Value h = pass.layer(*init_conv_, x);
  std::vector<Value> skips{h};
  for (const auto& level : *down_) h = level->flow(h, skips, pass);
  h = pass.block(*mid_, h);
  if (mid_attention_) h = pass.layer(*mid_attention_, h);
  for (const auto& level : *up_) h = level->flow(h, skips, pass);
  return pass.output(*this, pass.head(*out_norm_, *out_conv_, h));
}

Variable UNet::embed_time(const std::vector<int64_t>& t) {
  return time_mlp_->forward(time_embedding_->forward(t));
}

Variable UNet::forward(const Variable& x, const std::vector<int64_t>& t) {
  check_input(x);
  check_steps(x, t);
  const Variable temb = embed_time(t);
  return flow(x, TensorPass{temb});
}

double UNet::lipschitz_bound(const lipschitz::LayerNorms& norms) const {
  return flow(1.0, BoundPass{norms});
}

std::string UNet::lipschitz_bound_note() const {
  return "AutoLip over the U-Net graph (residual: L_g + L_bypass; skip concat: sqrt(L1^2 + L2^2)), "
         "BatchNorm in eval mode";
}

}  // namespace dpm::nn
