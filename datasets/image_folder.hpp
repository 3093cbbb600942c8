#pragma once
// Image files through stb_image / stb_image_write: a folder of PNG/JPEG images as one tensor, and
// a grid of images (e.g. samples of a model) as one PNG.
#include <string>

#include "autograd/tensor.hpp"

namespace dpm::datasets {

enum class ColorMode { gray, rgb };  // 1 or 3 channels; stb converts whatever the file holds

// Loads every *.png, *.jpg and *.jpeg (any case) directly in `dir`, sorted by file name so the
// order is deterministic; other files, hidden files and subfolders are ignored. All images must
// have the same size. Returns [n, C, H, W] in [0, 1]. Throws std::runtime_error naming the file
// for unreadable images (with stb's reason) and for the first image whose size differs.
Tensor load_image_folder(const std::string& dir, ColorMode color = ColorMode::rgb);

// One image file as [C, H, W] in [0, 1].
Tensor load_image(const std::string& path, ColorMode color = ColorMode::rgb);

// True for a sample shape write_png_grid can draw: [C, H, W] with 1 (gray) or 3 (RGB) channels.
bool is_image_shape(const Shape& sample_shape);

// How float pixels map to 0..255: clamp to [0, 1], or min-max normalise over the whole tensor
// (a constant tensor becomes black).
enum class PixelScaling { clamp, min_max };

// Writes images [n, C, H, W] (C = 1 or 3) as a PNG grid of `columns` columns (fewer when n is
// smaller) with `padding` black pixels around and between the tiles. Written to a temporary file
// in the same folder and renamed into place, so readers never see a partial file.
// Non-finite pixels throw std::invalid_argument (they mean a diverged model, not an image).
void write_png_grid(const std::string& path, const Tensor& images, int columns = 8, int padding = 2,
                    PixelScaling scaling = PixelScaling::clamp);

}  // namespace dpm::datasets
