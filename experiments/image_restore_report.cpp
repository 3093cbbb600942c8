#include "experiments/image_restore_report.hpp"

#include <algorithm>
#include <cmath>
#include <map>

#include "autograd/io/safetensors.hpp"
#include "datasets/image_folder.hpp"
#include "experiments/report/format.hpp"
#include "experiments/report/gnuplot.hpp"
#include "experiments/report/table.hpp"

namespace dpm::experiments::report {
namespace {

using Entry = ImageRestoreEntry;

std::string with_se(double value, double se, const char* pattern) {
  return number(value, pattern) + " ± " + number(se, "%.2g");
}

std::vector<const Entry*> task_entries(const ImageRestoreResults& results, RestoreTask task) {
  std::vector<const Entry*> rows;
  for (const Entry& e : results.entries)
    if (e.task == task) rows.push_back(&e);
  return rows;
}

Table task_table(const std::vector<const Entry*>& rows) {
  Table table({"method", "steps", "PSNR (dB)", "SSIM", "NFE", "backward", "time"});
  for (const Entry* e : rows) {
    const bool solver = e->steps > 0;
    table.add_row({e->method, solver ? std::to_string(e->steps) : "",
                   e->finite ? with_se(e->psnr, e->psnr_se, "%.2f") : "diverged (non-finite)",
                   e->finite ? with_se(e->ssim, e->ssim_se, "%.3f") : "",
                   solver ? std::to_string(e->evaluations) : "",
                   solver ? std::to_string(e->backward_passes) : "", duration(e->seconds)});
  }
  return table;
}

// Per task: the best solver by PSNR and by SSIM, and how far each is above the measurement.
std::string summary(const ImageRestoreResults& results) {
  std::string md = "## Summary\n\n";
  for (RestoreTask task : results.plan.tasks) {
    const std::vector<const Entry*> rows = task_entries(results, task);
    const Entry* measurement = rows.front();
    const Entry *best_psnr = nullptr, *best_ssim = nullptr;
    for (const Entry* e : rows)
      if (e->steps > 0 && e->finite) {
        if (!best_psnr || e->psnr > best_psnr->psnr) best_psnr = e;
        if (!best_ssim || e->ssim > best_ssim->ssim) best_ssim = e;
      }
    md += "- " + describe(results.plan, task) + ": ";
    if (!best_psnr) {
      md += "every solver diverged.\n";
      continue;
    }
    md += "best PSNR " + best_psnr->method + " (" + number(best_psnr->psnr, "%.2f") + " dB, " +
          number(best_psnr->psnr - measurement->psnr, "%+.2f") + " dB over the measurement), " +
          "best SSIM " + best_ssim->method + " (" + number(best_ssim->ssim, "%.3f") + " against " +
          number(measurement->ssim, "%.3f") + ").\n";
  }
  return md + "- Cost of the whole run: " + duration(results.seconds) + ".\n\n";
}

std::string grid_name(RestoreTask task) {
  return std::string("grid_") + choice_name(task) + ".png";
}

// Per shown image a row: the truth, then every entry of the task (the measurement first).
void write_grid(const ImageRestoreResults& results, RestoreTask task,
                const std::filesystem::path& path) {
  const std::vector<int64_t>& s = results.image_shape;
  const int64_t numel = s[0] * s[1] * s[2];
  std::vector<const std::vector<float>*> columns = {&results.x0};
  for (size_t i = 0; i < results.entries.size(); ++i)
    if (results.entries[i].task == task) columns.push_back(&results.restored[i]);
  const int64_t rows = results.plan.grid_images;
  std::vector<float> tiles;
  tiles.reserve(rows * columns.size() * numel);
  for (int64_t r = 0; r < rows; ++r)
    for (const std::vector<float>* column : columns)
      tiles.insert(tiles.end(), column->begin() + r * numel, column->begin() + (r + 1) * numel);
  const int64_t count = rows * static_cast<int64_t>(columns.size());
  datasets::write_png_grid(path.string(),
                           Tensor::from_vector(Shape{count, s[0], s[1], s[2]}, std::move(tiles)),
                           static_cast<int>(columns.size()));
}

// PSNR per task, one curve per method; the tasks are the x axis.
Plot psnr_plot(const ImageRestoreResults& results, const std::filesystem::path& dir) {
  std::map<std::string, Curve> curves;
  std::string tics;
  const std::vector<RestoreTask>& tasks = results.plan.tasks;
  for (size_t i = 0; i < tasks.size(); ++i) {
    tics += std::string(i ? ", " : "") + "'" + choice_name(tasks[i]) + "' " + std::to_string(i);
    for (const Entry* e : task_entries(results, tasks[i]))
      if (e->finite) {
        Curve& c = curves[e->method];
        c.title = e->method;
        c.style = e->steps > 0 ? "linespoints pt 7" : "linespoints dt 2 pt 6";
        c.xy.push_back({static_cast<double>(i), e->psnr});
      }
  }
  std::vector<Curve> list;
  for (auto& [name, c] : curves) list.push_back(c);
  return curve_plot(dir, "psnr",
                    "set title 'PSNR per task (" + std::to_string(results.plan.images) +
                        " images, sigma_y " + number(results.plan.sigma_y) + ")'\nset xtics (" +
                        tics + ")\nset xrange [-0.5:" + std::to_string(tasks.size() - 0.5) +
                        "]\nset ylabel 'PSNR (dB)'\nset key outside right\n",
                    list);
}

void write_measurements(const ImageRestoreResults& results, const std::filesystem::path& path) {
  const std::vector<int64_t>& s = results.image_shape;
  const int64_t n = results.plan.images;
  const Shape images{n, s[0], s[1], s[2]};
  NamedTensors tensors = {{"x0", Tensor::from_vector(images, results.x0)}};
  for (const RestoreMeasurements& m : results.measurements) {
    const std::string task = choice_name(m.task);
    tensors.push_back({"y: " + task, Tensor::from_vector(Shape{n, m.rows}, m.y)});
    if (!m.observed.empty())
      tensors.push_back(
          {"observed: " + task, Tensor::from_vector(Shape{s[0], s[1], s[2]}, m.observed)});
    if (!m.row_map.empty()) {
      tensors.push_back({"L: " + task, Tensor::from_vector(Shape{m.out_height, s[1]}, m.row_map)});
      tensors.push_back({"R: " + task, Tensor::from_vector(Shape{m.out_width, s[2]}, m.col_map)});
    }
  }
  for (size_t i = 0; i < results.entries.size(); ++i)
    tensors.push_back({"x_hat: " + std::string(choice_name(results.entries[i].task)) + ", " +
                           results.entries[i].method,
                       Tensor::from_vector(images, results.restored[i])});
  write_safetensors(path.string(), tensors,
                    {{"format", "dpmlab restore measurements"},
                     {"units", "pixels in [0, 1]; x_hat clamped to [0, 1] as scored"},
                     {"operators",
                      "masks: y = the observed pixels (observed = 1) in row-major order; "
                      "super-resolution and blur: Y = L X R^T in every channel"}});
}

}  // namespace

std::string markdown(const ImageRestoreResults& results) {
  const ImageRestorePlan& plan = results.plan;
  const std::vector<int64_t>& s = results.image_shape;
  std::string md =
      "# Image restoration with a DM prior\n\nNetwork " + plan.checkpoint +
      " (T = " + std::to_string(results.T) + "); images " + std::to_string(plan.first_image) +
      " to " + std::to_string(plan.first_image + plan.images - 1) + " of " +
      (plan.data == "fashion-mnist" ? "the Fashion-MNIST test split" : plan.data) + ", [" +
      std::to_string(s[0]) + ", " + std::to_string(s[1]) + ", " + std::to_string(s[2]) +
      "] in [0, 1]; y = A x0 + sigma_y n with sigma_y = " + number(plan.sigma_y) +
      " in pixel units (seed " + std::to_string(plan.seed) +
      "). PSNR and SSIM per image (restorations clamped to [0, 1], data range 1), mean ± "
      "standard error over the images. The measurement row is A^+ y as an image (y for blur).\n\n" +
      summary(results);
  for (RestoreTask task : plan.tasks) {
    md +=
        "## " + describe(plan, task) + "\n\n" + task_table(task_entries(results, task)).markdown();
    if (plan.grid_images > 0)
      md += "\n![" + std::string(choice_name(task)) + "](" + grid_name(task) +
            ") (per row: truth, measurement, then each solver)\n";
    md += "\n";
  }
  return md;
}

nlohmann::json to_json(const ImageRestoreResults& results) {
  nlohmann::json json = {{"config", results.plan.to_json()},
                         {"T", results.T},
                         {"image_shape", results.image_shape},
                         {"seconds", results.seconds},
                         {"entries", nlohmann::json::array()}};
  for (const Entry& e : results.entries) {
    nlohmann::json entry = {{"task", choice_name(e.task)},
                            {"method", e.method},
                            {"steps", e.steps},
                            {"finite", e.finite},
                            {"evaluations", e.evaluations},
                            {"backward_passes", e.backward_passes},
                            {"seconds", e.seconds}};
    if (e.finite)
      entry.update(
          {{"psnr", e.psnr}, {"psnr_se", e.psnr_se}, {"ssim", e.ssim}, {"ssim_se", e.ssim_se}});
    json["entries"].push_back(entry);
  }
  return json;
}

Written write(const ImageRestoreResults& results, const std::filesystem::path& dir) {
  std::vector<std::vector<std::string>> rows;
  for (const Entry& e : results.entries) {
    const double nan = std::nan("");
    rows.push_back({choice_name(e.task), e.method, std::to_string(e.steps),
                    csv_number(e.finite ? e.psnr : nan), csv_number(e.finite ? e.psnr_se : nan),
                    csv_number(e.finite ? e.ssim : nan), csv_number(e.finite ? e.ssim_se : nan),
                    std::to_string(e.evaluations), std::to_string(e.backward_passes),
                    csv_number(e.seconds)});
  }
  Written written{markdown(results),
                  {"restore.md", "restore.json", "restore.csv", "measurements.safetensors"},
                  {}};
  write_text(dir / "restore.md", written.markdown);
  write_text(dir / "restore.json", to_json(results).dump(2) + "\n");
  write_csv(dir / "restore.csv",
            "task,method,steps,psnr,psnr_se,ssim,ssim_se,evaluations,backward_passes,seconds",
            rows);
  write_measurements(results, dir / "measurements.safetensors");
  if (results.plan.grid_images > 0)
    for (RestoreTask task : results.plan.tasks) {
      write_grid(results, task, dir / grid_name(task));
      written.files.push_back(grid_name(task));
    }
  const std::vector<Plot> plots = {psnr_plot(results, dir)};
  for (const Plot& p : plots) written.files.push_back(p.name + ".gp");
  written.plots = render_plots(plots, dir, "restore");
  return written;
}

}  // namespace dpm::experiments::report
