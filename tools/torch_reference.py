#!/usr/bin/python3
"""PyTorch twins of dpmlab's networks (docs/protocol.md, The U-Net), to cross-check the C++ engine.

The U-Net (1-D or 2-D, BatchNorm or GroupNorm, optional self-attention) and the residual MLP
are built from the same config JSON that dpmlab stores in a checkpoint's
__metadata__["dpmlab.config"], with state_dict names equal to dpmlab's parameter and buffer
names, so a dpmlab checkpoint loads with load_state_dict(strict=True).

As a command it mirrors `dpmlab model check`: it reads a checkpoint and an input file (x, t, r),
runs one train-mode forward/backward of loss = sum(r * out) and one eval-mode forward, and writes
out_train, out_eval, grad_x, grad.<parameter> and buffer.<buffer> to a safetensors file.

Safetensors files are read and written here in pure Python (json + numpy), so the `safetensors`
package is not needed.
"""
import argparse
import json
import math
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

CONFIG_METADATA_KEY = "dpmlab.config"

# safetensors dtype names <-> little-endian numpy dtypes.
_DTYPES = {"F32": "<f4", "F64": "<f8", "I64": "<i8", "I32": "<i4"}
_DTYPE_NAMES = {np.dtype(v): k for k, v in _DTYPES.items()}


def read_safetensors(path):
    """Returns (tensors, metadata): an ordered dict name -> numpy array, and the str->str map."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise ValueError(f"{path}: too short for a safetensors file")
    (header_size,) = struct.unpack("<Q", blob[:8])
    if 8 + header_size > len(blob):
        raise ValueError(f"{path}: header length {header_size} runs past the end of the file")
    header = json.loads(blob[8 : 8 + header_size].decode("utf-8"))
    metadata = header.pop("__metadata__", {}) or {}
    data = memoryview(blob)[8 + header_size :]
    tensors = {}
    for name, info in sorted(header.items(), key=lambda item: item[1]["data_offsets"][0]):
        if info["dtype"] not in _DTYPES:
            raise ValueError(f"{path}: tensor '{name}' has unsupported dtype {info['dtype']}")
        begin, end = info["data_offsets"]
        shape = tuple(info["shape"])
        array = np.frombuffer(data[begin:end], dtype=_DTYPES[info["dtype"]])
        if array.size != math.prod(shape):
            raise ValueError(f"{path}: tensor '{name}' holds {array.size} values, shape {shape}")
        tensors[name] = array.reshape(shape).copy()
    return tensors, metadata


def write_safetensors(path, tensors, metadata=None):
    """tensors: iterable of (name, numpy array) or a dict; float32/float64/int64/int32 arrays."""
    items = list(tensors.items()) if isinstance(tensors, dict) else list(tensors)
    header = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    chunks, offset = [], 0
    for name, array in items:
        array = np.asarray(array, order="C")  # keeps 0-d shapes, unlike ascontiguousarray
        dtype = _DTYPE_NAMES[array.dtype.newbyteorder("<")]
        raw = array.astype(_DTYPES[dtype], copy=False).tobytes()
        header[name] = {"dtype": dtype, "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    encoded = json.dumps(header, separators=(",", ":")).encode("utf-8")
    encoded += b" " * (-len(encoded) % 8)  # the format pads the header to 8 bytes
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(encoded)))
        f.write(encoded)
        for raw in chunks:
            f.write(raw)


def read_config(metadata, path="checkpoint"):
    if CONFIG_METADATA_KEY not in metadata:
        raise ValueError(f"{path}: no '{CONFIG_METADATA_KEY}' in the metadata "
                         "(not written by save_model?)")
    return json.loads(metadata[CONFIG_METADATA_KEY])


# --- the networks ----------------------------------------------------------------------------


class SinusoidalTimeEmbedding(nn.Module):
    """emb(i) = [sin(i f_k), cos(i f_k)], f_k = exp(-ln(10000) k / (half - 1)); in float64, then
    rounded once to the network's dtype (float32: as dpmlab does)."""

    def __init__(self, size):
        super().__init__()
        if size < 4 or size % 2:
            raise ValueError(f"time embedding size must be even and >= 4, got {size}")
        self.size = size

    def forward(self, steps, dtype):
        half = self.size // 2
        rate = math.log(10000.0) / (half - 1)
        freqs = torch.exp(-rate * torch.arange(half, dtype=torch.float64))
        angles = steps.to(torch.float64)[:, None] * freqs[None, :]
        return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1).to(dtype)


def make_norm(kind, groups, channels, spatial_dims):
    if kind == "group":
        return nn.GroupNorm(groups, channels, eps=1e-5)
    batch_norm = nn.BatchNorm1d if spatial_dims == 1 else nn.BatchNorm2d
    return batch_norm(channels, eps=1e-5, momentum=0.1)


def conv3(spatial_dims, cin, cout, padding_mode="zeros"):
    conv = nn.Conv1d if spatial_dims == 1 else nn.Conv2d
    return conv(cin, cout, kernel_size=3, padding=1, padding_mode=padding_mode)


class FiLM(nn.Module):
    def __init__(self, time_dim, channels):
        super().__init__()
        self.proj = nn.Linear(time_dim, 2 * channels)

    def forward(self, h, temb):
        scale, shift = self.proj(F.silu(temb)).chunk(2, dim=1)
        extra = (1,) * (h.dim() - 2)
        return h * (1 + scale.view(*scale.shape, *extra)) + shift.view(*shift.shape, *extra)


class ResBlock(nn.Module):
    def __init__(self, cin, cout, time_dim, spatial_dims, norm, groups):
        super().__init__()
        self.norm1 = make_norm(norm, groups, cin, spatial_dims)
        self.conv1 = conv3(spatial_dims, cin, cout)
        self.film = FiLM(time_dim, cout)
        self.norm2 = make_norm(norm, groups, cout, spatial_dims)
        self.conv2 = conv3(spatial_dims, cout, cout)
        self.bypass = conv3(spatial_dims, cin, cout) if cin != cout else None

    def forward(self, x, temb):
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.film(h, temb)
        h = self.conv2(F.silu(self.norm2(h)))
        return h + (self.bypass(x) if self.bypass is not None else x)


class SelfAttention(nn.Module):
    """out = x + proj(softmax(q k^T / sqrt(C)) v), (q, k, v) = qkv(norm(x)) per position."""

    def __init__(self, channels, spatial_dims, norm, groups):
        super().__init__()
        self.channels = channels
        self.norm = make_norm(norm, groups, channels, spatial_dims)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj = nn.Linear(channels, channels)

    def forward(self, x):
        b = x.shape[0]
        tokens = self.norm(x).reshape(b, self.channels, -1).transpose(1, 2)  # [B, S, C]
        q, k, v = self.qkv(tokens).chunk(3, dim=2)
        attention = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(self.channels), dim=2)
        mixed = self.proj(attention @ v)
        return x + mixed.transpose(1, 2).reshape(x.shape)


class DownLevel(nn.Module):
    def __init__(self, blocks, pool, spatial_dims):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        if pool:
            self.pool = nn.AvgPool1d(2) if spatial_dims == 1 else nn.AvgPool2d(2)
        else:
            self.pool = None

    def forward(self, h, temb, skips):
        for block in self.blocks:
            h = block(h, temb)
            skips.append(h)
        if self.pool is not None:
            h = self.pool(h)
            skips.append(h)
        return h


class UpLevel(nn.Module):
    def __init__(self, blocks, upsample):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest") if upsample else None

    def forward(self, h, temb, skips):
        for block in self.blocks:
            h = block(torch.cat([h, skips.pop()], dim=1), temb)
        if self.upsample is not None:
            h = self.upsample(h)
        return h


UNET_DEFAULTS = {"data_channels": 1, "base_channels": 16, "blocks_per_level": 2,
                 "time_embedding_size": 16, "time_hidden_size": 64, "norm": "batch",
                 "norm_groups": 8, "attention": False}


class UNet(nn.Module):
    def __init__(self, config):
        super().__init__()
        unknown = set(config) - set(UNET_DEFAULTS) - {"arch", "channel_multipliers"}
        if unknown:
            raise ValueError(f"unet config: unknown fields {sorted(unknown)}")
        c = dict(UNET_DEFAULTS, **config)
        sd = 1 if c["arch"] == "unet1d" else 2
        c.setdefault("channel_multipliers", [1, 2, 4, 8] if sd == 1 else [1, 2, 4])
        self.config = c
        base, mults, th = c["base_channels"], c["channel_multipliers"], c["time_hidden_size"]
        norm, groups = c["norm"], c["norm_groups"]

        def block(cin, cout):
            return ResBlock(cin, cout, th, sd, norm, groups)

        self.time_embedding = SinusoidalTimeEmbedding(c["time_embedding_size"])
        self.time_mlp = nn.Sequential(nn.Linear(c["time_embedding_size"], th), nn.SiLU(),
                                      nn.Linear(th, th))
        self.init_conv = conv3(sd, c["data_channels"], base, "replicate")

        # The channel plan, following h and the skip stack exactly as forward does.
        h = base
        skip_channels = [h]
        down = []
        for level, mult in enumerate(mults):
            blocks = []
            for _ in range(c["blocks_per_level"]):
                blocks.append(block(h, base * mult))
                h = base * mult
                skip_channels.append(h)
            pool = level + 1 < len(mults)
            if pool:
                skip_channels.append(h)
            down.append(DownLevel(blocks, pool, sd))
        self.down = nn.ModuleList(down)
        self.mid = block(h, h)
        self.mid_attention = SelfAttention(h, sd, norm, groups) if c["attention"] else None
        up = []
        for level in reversed(range(len(mults))):
            blocks = []
            for _ in range(c["blocks_per_level"] + 1):
                blocks.append(block(h + skip_channels.pop(), base * mults[level]))
                h = base * mults[level]
            up.append(UpLevel(blocks, upsample=level > 0))
        self.up = nn.ModuleList(up)
        self.out_norm = make_norm(norm, groups, h, sd)
        self.out_conv = conv3(sd, h, c["data_channels"], "replicate")

    def forward(self, x, t):
        temb = self.time_mlp(self.time_embedding(t, x.dtype))
        h = self.init_conv(x)
        skips = [h]
        for level in self.down:
            h = level(h, temb, skips)
        h = self.mid(h, temb)
        if self.mid_attention is not None:
            h = self.mid_attention(h)
        for level in self.up:
            h = level(h, temb, skips)
        return self.out_conv(F.silu(self.out_norm(h)))


class ResidualMLPBlock(nn.Module):
    def __init__(self, width, conditioning):
        super().__init__()
        self.fc1 = nn.Linear(width, width)
        self.fc2 = nn.Linear(width, width)
        if conditioning == "film":
            self.film = FiLM(width, width)

    def forward(self, h, te):
        if hasattr(self, "film"):
            return h + self.fc2(F.silu(self.film(self.fc1(F.silu(h)), te)))
        return h + self.fc2(F.silu(self.fc1(F.silu(h + te))))


MLP_DEFAULTS = {"dim": 64, "width": 512, "depth": 4, "time_embedding_size": 128,
                "conditioning": "add"}


class ResidualMLP(nn.Module):
    def __init__(self, config):
        super().__init__()
        unknown = set(config) - set(MLP_DEFAULTS) - {"arch"}
        if unknown:
            raise ValueError(f"mlp config: unknown fields {sorted(unknown)}")
        c = dict(MLP_DEFAULTS, **config)
        if c["conditioning"] not in ("add", "film"):
            raise ValueError(f"mlp config: conditioning {c['conditioning']!r} (expected add or film)")
        self.config = c
        w = c["width"]
        self.time_embedding = SinusoidalTimeEmbedding(c["time_embedding_size"])
        self.time_mlp = nn.Sequential(nn.Linear(c["time_embedding_size"], w), nn.SiLU(),
                                      nn.Linear(w, w))
        self.in_proj = nn.Linear(c["dim"], w)
        self.blocks = nn.ModuleList(ResidualMLPBlock(w, c["conditioning"]) for _ in range(c["depth"]))
        self.out_proj = nn.Linear(w, c["dim"])

    def forward(self, x, t):
        te = self.time_mlp(self.time_embedding(t, x.dtype))
        h = self.in_proj(x.reshape(x.shape[0], self.config["dim"]))
        for block in self.blocks:
            h = block(h, te)
        return self.out_proj(F.silu(h)).reshape(x.shape)


def make_model(config):
    arch = config.get("arch")
    if arch in ("unet1d", "unet2d"):
        return UNet(config)
    if arch == "mlp":
        return ResidualMLP(config)
    raise ValueError(f"unknown arch {arch!r} (expected unet1d, unet2d or mlp)")


def to_state_dict(tensors):
    """dpmlab tensors -> a torch state_dict; num_batches_tracked is float in dpmlab, int64 here."""
    state = {}
    for name, array in tensors.items():
        value = torch.from_numpy(np.asarray(array, order="C"))
        if name.endswith("num_batches_tracked"):
            value = value.round().to(torch.int64)
        state[name] = value
    return state


def load_model(path):
    """Builds the model from the checkpoint's config and loads its tensors strictly."""
    tensors, metadata = read_safetensors(path)
    model = make_model(read_config(metadata, path))
    model.load_state_dict(to_state_dict(tensors), strict=True)
    return model


def run_check(model, x, t, r, dtype=torch.float32):
    """The torch side of `dpmlab model check`, computed in dtype (the model is converted):
    returns a list of (name, numpy array of that dtype)."""
    model.to(dtype)
    x = torch.from_numpy(np.asarray(x, order="C")).to(dtype).requires_grad_(True)
    steps = torch.from_numpy(np.asarray(t)).round().to(torch.int64)
    r = torch.from_numpy(np.asarray(r, order="C")).to(dtype)
    model.train()
    model.zero_grad(set_to_none=True)
    out_train = model(x, steps)
    (r * out_train).sum().backward()
    results = [("out_train", out_train.detach()), ("grad_x", x.grad)]
    for name, p in model.named_parameters():
        results.append(("grad." + name, p.grad if p.grad is not None else torch.zeros_like(p)))
    for name, b in model.named_buffers():
        results.append(("buffer." + name, b.detach().clone()))
    model.eval()
    with torch.no_grad():
        results.append(("out_eval", model(x.detach(), steps)))
    return [(name, value.detach().to(dtype).numpy()) for name, value in results]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="dpmlab checkpoint (safetensors)")
    parser.add_argument("--input", required=True, help="safetensors file with x, t and r")
    parser.add_argument("--out", required=True, help="safetensors file to write")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    inputs, _ = read_safetensors(args.input)
    results = run_check(load_model(args.checkpoint), inputs["x"], inputs["t"], inputs["r"])
    write_safetensors(args.out, results)
    print(f"wrote {args.out} ({len(results)} tensors)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
