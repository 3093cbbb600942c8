#include "experiments/training_report.hpp"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <map>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "experiments/report/format.hpp"
#include "experiments/report/gnuplot.hpp"
#include "experiments/report/table.hpp"

namespace dpm::experiments {
namespace {

namespace fs = std::filesystem;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Appends (step, value); a step at or before the last one supersedes what follows it (the steps
// a resumed run replays after its last resume file are logged twice).
void append(StepValues& series, int64_t step, double value) {
  while (!series.empty() && series.back().first >= step) series.pop_back();
  series.emplace_back(step, value);
}

// Reads one metrics line's fields, naming the file, the line and the field in every error.
class LineReader {
 public:
  LineReader(const std::string& file, int64_t line, const nlohmann::json& record)
      : file_(file), line_(line), record_(record) {}

  bool has(const char* key) const { return record_.contains(key) && !record_.at(key).is_null(); }
  double number(const char* key) const { return number_in(record_, key); }
  int64_t integer(const char* key) const {
    const nlohmann::json& v = record_.at(key);
    if (!v.is_number_integer()) fail(key, "an integer");
    return v.get<int64_t>();
  }
  double number_in(const nlohmann::json& object, const char* key) const {
    if (!object.contains(key) || !object.at(key).is_number()) fail(key, "a number");
    return object.at(key).get<double>();
  }
  const nlohmann::json& object(const char* key) const {
    if (!record_.at(key).is_object()) fail(key, "an object");
    return record_.at(key);
  }
  const nlohmann::json& array(const char* key) const {
    if (!record_.at(key).is_array()) fail(key, "an array");
    return record_.at(key);
  }
  [[noreturn]] void fail(const std::string& key, const std::string& expected) const {
    throw std::runtime_error(file_ + ":" + std::to_string(line_) + ": field '" + key + "' is not " +
                             expected);
  }

 private:
  const std::string& file_;
  int64_t line_;
  const nlohmann::json& record_;
};

LayerTrajectory& layer_named(TrainingTrajectory& trajectory, const std::string& name) {
  for (LayerTrajectory& layer : trajectory.layers)
    if (layer.name == name) return layer;
  trajectory.layers.push_back({name, "layer", {}});
  return trajectory.layers.back();
}

void read_spectral(const LineReader& line, TrainingTrajectory& trajectory) {
  const int64_t step = line.integer("spectral_step");
  if (!trajectory.certified_bound.empty() && trajectory.certified_bound.back().first == step)
    return;  // the same scan, repeated on every metrics line until the next one
  for (const auto& [name, sigma] : line.object("sigma").items()) {
    if (!sigma.is_number()) line.fail("sigma." + name, "a number");
    append(layer_named(trajectory, name).sigma, step, sigma.get<double>());
  }
  append(trajectory.certified_bound, step,
         line.has("lipschitz_bound") ? line.number("lipschitz_bound") : kNaN);
}

void read_jacobian(const LineReader& line, TrainingTrajectory& trajectory) {
  const int64_t step = line.integer("jacobian_step");
  for (const nlohmann::json& entry : line.array("jacobian")) {
    if (!entry.is_object() || !entry.contains("t") || !entry.at("t").is_number_integer())
      line.fail("jacobian", "a list of objects with an integer 't'");
    const int64_t t = entry.at("t").get<int64_t>();
    auto it = std::find_if(trajectory.tracked.begin(), trajectory.tracked.end(),
                           [&](const TrackedStepTrajectory& s) { return s.t == t; });
    if (it == trajectory.tracked.end()) {
      TrackedStepTrajectory s;
      s.t = t;
      s.snr_db = line.number_in(entry, "snr_db");
      s.log_concave_bound = line.number_in(entry, "log_concave_bound");
      s.cme_lower = line.number_in(entry, "cme_lower");
      if (entry.contains("exact_cme_max")) s.exact_cme_max = line.number_in(entry, "exact_cme_max");
      if (entry.contains("exact_cme_mean"))
        s.exact_cme_mean = line.number_in(entry, "exact_cme_mean");
      trajectory.tracked.push_back(s);
      it = trajectory.tracked.end() - 1;
    }
    append(it->mu_max, step, line.number_in(entry, "mu_max"));
    append(it->mu_mean, step, line.number_in(entry, "mu_mean"));
    append(it->eps_max, step, line.number_in(entry, "eps_max"));
    append(it->eps_mean, step, line.number_in(entry, "eps_mean"));
  }
}

void read_line(const LineReader& line, TrainingTrajectory& trajectory) {
  if (line.has("train_loss")) {  // an epoch line
    const int64_t step = line.integer("step");
    append(trajectory.train_loss, step, line.number("train_loss"));
    if (line.has("val_loss")) append(trajectory.val_loss, step, line.number("val_loss"));
    return;
  }
  if (line.has("loss")) append(trajectory.loss, line.integer("step"), line.number("loss"));
  if (line.has("layer_type"))
    for (const auto& [name, type] : line.object("layer_type").items()) {
      if (!type.is_string()) line.fail("layer_type." + name, "a string");
      layer_named(trajectory, name).type = type.get<std::string>();
    }
  if (line.has("spectral_step")) read_spectral(line, trajectory);
  if (line.has("jacobian_step")) read_jacobian(line, trajectory);
}

}  // namespace

const TrackedStepTrajectory* TrainingTrajectory::step(int64_t t) const {
  for (const TrackedStepTrajectory& s : tracked)
    if (s.t == t) return &s;
  return nullptr;
}

TrainingTrajectory read_training_metrics(const fs::path& metrics_file) {
  std::ifstream in(metrics_file);
  if (!in)
    throw std::runtime_error(metrics_file.string() +
                             ": cannot read the metrics (is this a `dpmlab train` run directory?)");
  TrainingTrajectory trajectory;
  trajectory.source = metrics_file.string();
  std::string text;
  int64_t number = 0;
  while (std::getline(in, text)) {
    ++number;
    if (text.empty()) continue;
    nlohmann::json record;
    try {
      record = nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception&) {
      // The last line of a run killed mid-write may be cut short; anything else is corruption.
      if (in.peek() == std::char_traits<char>::eof()) break;
      throw std::runtime_error(trajectory.source + ":" + std::to_string(number) +
                               ": not a JSON line");
    }
    if (!record.is_object())
      throw std::runtime_error(trajectory.source + ":" + std::to_string(number) +
                               ": not a JSON object");
    try {
      read_line(LineReader(trajectory.source, number, record), trajectory);
    } catch (const nlohmann::json::exception& e) {
      throw std::runtime_error(trajectory.source + ":" + std::to_string(number) + ": " + e.what());
    }
    ++trajectory.lines;
  }
  return trajectory;
}

std::vector<CrossingSummary> crossing_summary(const TrainingTrajectory& trajectory) {
  std::vector<CrossingSummary> out;
  for (const TrackedStepTrajectory& s : trajectory.tracked) {
    if (s.mu_max.empty()) continue;
    CrossingSummary c;
    c.t = s.t;
    c.snr_db = s.snr_db;
    for (const auto& [step, value] : s.mu_max)
      if (value > s.log_concave_bound) {
        c.first_above_bound = step;
        break;
      }
    c.last_step = s.mu_max.back().first;
    c.last_mu_max = s.mu_max.back().second;
    c.over_bound = c.last_mu_max / s.log_concave_bound;
    c.over_exact = s.exact_cme_max ? c.last_mu_max / *s.exact_cme_max : kNaN;
    out.push_back(c);
  }
  return out;
}

namespace report {
namespace {

std::string step_label(const std::optional<int64_t>& step) {
  return step ? std::to_string(*step) : "never";
}

// A constant drawn across the steps of `along`.
Curve level(const std::string& title, const std::string& style, double value,
            const StepValues& along) {
  return {title,
          style,
          {{static_cast<double>(along.front().first), value},
           {static_cast<double>(along.back().first), value}}};
}

std::vector<std::pair<double, double>> points(const StepValues& series) {
  std::vector<std::pair<double, double>> xy;
  for (const auto& [step, value] : series) xy.emplace_back(static_cast<double>(step), value);
  return xy;
}

bool all_positive(const StepValues& series) {
  return std::all_of(series.begin(), series.end(), [](const auto& p) { return p.second > 0; });
}

Plot loss_plot(const TrainingTrajectory& trajectory, const fs::path& dir) {
  std::vector<Curve> curves{{"training loss (logged steps)", "lines", points(trajectory.loss)}};
  if (!trajectory.val_loss.empty())
    curves.push_back({"validation loss (epochs)", "linespoints pt 7", points(trajectory.val_loss)});
  std::string settings = "set title 'Loss'\nset xlabel 'step'\nset ylabel 'loss'\n";
  if (all_positive(trajectory.loss) && all_positive(trajectory.val_loss))
    settings += "set logscale y\n";
  return curve_plot(dir, "training_loss", settings, curves);
}

// One plot per layer kind: every layer when there are few, else the max, median and min over
// the kind's layers at each scan.
std::vector<Plot> sigma_plots(const TrainingTrajectory& trajectory, const fs::path& dir) {
  constexpr size_t kEveryLayerUpTo = 8;
  std::map<std::string, std::vector<const LayerTrajectory*>> by_type;
  for (const LayerTrajectory& layer : trajectory.layers) by_type[layer.type].push_back(&layer);
  std::vector<Plot> plots;
  for (const auto& [type, layers] : by_type) {
    std::vector<Curve> curves;
    if (layers.size() <= kEveryLayerUpTo) {
      for (const LayerTrajectory* layer : layers)
        curves.push_back({layer->name, "linespoints pt 7 ps 0.5", points(layer->sigma)});
    } else {
      std::map<int64_t, std::vector<double>> at_step;
      for (const LayerTrajectory* layer : layers)
        for (const auto& [step, sigma] : layer->sigma) at_step[step].push_back(sigma);
      Curve high{"max over the " + std::to_string(layers.size()) + " layers", "lines", {}};
      Curve middle{"median", "lines dt 2", {}}, low{"min", "lines dt 3", {}};
      for (auto& [step, values] : at_step) {
        std::sort(values.begin(), values.end());
        const double x = static_cast<double>(step);
        high.xy.emplace_back(x, values.back());
        middle.xy.emplace_back(x, values[values.size() / 2]);
        low.xy.emplace_back(x, values.front());
      }
      curves = {high, middle, low};
    }
    plots.push_back(curve_plot(dir, "sigma_" + type,
                               "set title 'Spectral norms of the " + type +
                                   " layers'\nset xlabel 'step'\nset ylabel 'sigma'\n",
                               curves));
  }
  return plots;
}

Plot bound_plot(const TrainingTrajectory& trajectory, const fs::path& dir) {
  return curve_plot(dir, "certified_bound",
                    "set title 'Certified Lipschitz bound of the network (product of layer "
                    "norms)'\nset xlabel 'step'\nset ylabel 'bound'\nset logscale y\n",
                    {{"certified bound", "linespoints pt 7", points(trajectory.certified_bound)}});
}

Plot mu_plot(const TrackedStepTrajectory& s, const fs::path& dir) {
  std::vector<Curve> curves{
      {"Lip(mu_theta), max over probes", "linespoints pt 7", points(s.mu_max)},
      {"mean over probes", "lines", points(s.mu_mean)},
      level("1/sqrt(alpha_t) (exact CME, log-concave priors)", "lines dt 2 lw 2",
            s.log_concave_bound, s.mu_max),
      level("c_t (exact CME, every prior, lower)", "lines dt 3 lw 2", s.cme_lower, s.mu_max)};
  if (s.exact_cme_max)
    curves.push_back(
        level("exact CME at the probes, max", "lines dt 4 lw 2", *s.exact_cme_max, s.mu_max));
  return curve_plot(dir, "mu_t" + std::to_string(s.t),
                    "set title 'Empirical Lip(mu_theta(., t)) at t = " + std::to_string(s.t) +
                        " (" + number(s.snr_db, "%g") +
                        " dB)'\nset xlabel 'step'\nset ylabel 'Jacobian norm'\n"
                        "set key below\n",
                    curves);
}

std::string jacobian_section(const TrainingTrajectory& trajectory) {
  std::string md = "## Empirical Lipschitz constants while training\n\n";
  if (!trajectory.has_jacobian())
    return md +
           "This run did not track them (no \"jacobian\" fields in the metrics; the run was "
           "trained without `--track-jacobian K`, or by a dpmlab version without it).\n\n";
  Table table({"t", "SNR (dB)", "1/sqrt(alpha_t)", "c_t", "exact CME max at probes",
               "first scan above 1/sqrt(alpha_t)", "last scan", "Lip(mu) max", "/ bound", "/ exact",
               "Lip(eps) max"});
  for (const CrossingSummary& c : crossing_summary(trajectory)) {
    const TrackedStepTrajectory& s = *trajectory.step(c.t);
    table.add_row({std::to_string(c.t), number(c.snr_db, "%g"), number(s.log_concave_bound),
                   number(s.cme_lower), s.exact_cme_max ? number(*s.exact_cme_max) : "n/a",
                   step_label(c.first_above_bound), std::to_string(c.last_step),
                   number(c.last_mu_max), number(c.over_bound, "%.4f"),
                   number(c.over_exact, "%.4f"), number(s.eps_max.back().second)});
  }
  md += table.markdown() + "\n";
  md +=
      "Lip(mu) is the largest Jacobian norm of the network's reverse mean over the probe "
      "points, a lower bound on its Lipschitz constant. The exact stepwise CME's norm is at "
      "least c_t everywhere, and at most 1/sqrt(alpha_t) when the prior is log-concave (a GMM "
      "need not be).\n\n";
  for (const CrossingSummary& c : crossing_summary(trajectory)) {
    md += "- t = " + std::to_string(c.t) + " (" + number(c.snr_db, "%g") + " dB): ";
    md += c.first_above_bound
              ? "first above the log-concave bound at step " + std::to_string(*c.first_above_bound)
              : std::string("never above the log-concave bound");
    md += "; at step " + std::to_string(c.last_step) + " it is " + number(c.over_bound, "%.4f") +
          " times the bound";
    if (std::isfinite(c.over_exact))
      md += " and " + number(c.over_exact, "%.4f") + " times the exact CME's norm";
    md += ".\n";
  }
  return md + "\n";
}

std::string spectral_section(const TrainingTrajectory& trajectory) {
  std::string md = "## Layer spectral norms and the certified bound\n\n";
  if (!trajectory.has_spectral())
    return md + "This run did not track them (train with `--track-spectral K`).\n\n";
  std::map<std::string, std::pair<int64_t, double>> by_type;  // layers, largest last sigma
  for (const LayerTrajectory& layer : trajectory.layers) {
    auto& [count, largest] = by_type[layer.type];
    ++count;
    if (!layer.sigma.empty()) largest = std::max(largest, layer.sigma.back().second);
  }
  Table table({"layer kind", "layers", "largest sigma at the last scan"});
  for (const auto& [type, entry] : by_type)
    table.add_row({type, std::to_string(entry.first), number(entry.second)});
  md += table.markdown() + "\n";
  const StepValues& bound = trajectory.certified_bound;
  if (!bound.empty() && std::isfinite(bound.back().second))
    md += "Certified bound (product of the layer factors, maximised over t): " +
          number(bound.front().second) + " at step " + std::to_string(bound.front().first) + ", " +
          number(bound.back().second) + " at step " + std::to_string(bound.back().first) + ".\n\n";
  return md;
}

std::vector<std::vector<std::string>> tracking_rows(const TrainingTrajectory& trajectory) {
  std::vector<std::vector<std::string>> rows;
  for (const TrackedStepTrajectory& s : trajectory.tracked)
    for (size_t i = 0; i < s.mu_max.size(); ++i)
      rows.push_back({std::to_string(s.mu_max[i].first), std::to_string(s.t), csv_number(s.snr_db),
                      csv_number(s.mu_max[i].second), csv_number(s.mu_mean[i].second),
                      csv_number(s.eps_max[i].second), csv_number(s.eps_mean[i].second),
                      csv_number(s.log_concave_bound), csv_number(s.cme_lower),
                      csv_number(s.exact_cme_max ? *s.exact_cme_max : kNaN)});
  return rows;
}

}  // namespace

Written write(const TrainingTrajectory& trajectory, const fs::path& dir) {
  fs::create_directories(dir);
  std::string md = "# Training report\n\nFrom " + trajectory.source + " (" +
                   std::to_string(trajectory.lines) + " lines";
  if (!trajectory.loss.empty())
    md += ", up to step " + std::to_string(trajectory.loss.back().first) + "; last logged loss " +
          number(trajectory.loss.back().second);
  if (!trajectory.val_loss.empty()) {
    auto best = std::min_element(trajectory.val_loss.begin(), trajectory.val_loss.end(),
                                 [](const auto& a, const auto& b) { return a.second < b.second; });
    md += "; best validation loss " + number(best->second) + " at step " +
          std::to_string(best->first);
  }
  md += ").\n\n" + jacobian_section(trajectory) + spectral_section(trajectory);

  std::vector<Plot> plots;
  if (!trajectory.loss.empty()) plots.push_back(loss_plot(trajectory, dir));
  for (Plot& plot : sigma_plots(trajectory, dir)) plots.push_back(std::move(plot));
  if (!trajectory.certified_bound.empty() &&
      std::isfinite(trajectory.certified_bound.back().second))
    plots.push_back(bound_plot(trajectory, dir));
  for (const TrackedStepTrajectory& s : trajectory.tracked)
    if (!s.mu_max.empty()) plots.push_back(mu_plot(s, dir));

  Written written{md, {"training.md", "tracking.csv"}, {}};
  write_text(dir / "training.md", md);
  write_csv(dir / "tracking.csv",
            "step,t,snr_db,mu_max,mu_mean,eps_max,eps_mean,log_concave_bound,cme_lower,"
            "exact_cme_max",
            tracking_rows(trajectory));
  written.plots = render_plots(plots, dir, "training-report");
  return written;
}

}  // namespace report
}  // namespace dpm::experiments
