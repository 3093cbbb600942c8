#include "experiments/report/table.hpp"

#include <algorithm>
#include <stdexcept>

namespace dpm::experiments::report {
namespace {

// Display width: UTF-8 continuation bytes (the "±" of a cell) take no column.
size_t width(const std::string& text) {
  return static_cast<size_t>(
      std::count_if(text.begin(), text.end(), [](char c) { return (c & 0xC0) != 0x80; }));
}

std::string markdown_line(const std::vector<std::string>& cells) {
  std::string line = "|";
  for (const std::string& cell : cells) line += " " + cell + " |";
  return line + "\n";
}

}  // namespace

Table::Table(std::vector<std::string> header) : header_(std::move(header)) {
  if (header_.empty()) throw std::invalid_argument("report::Table: no columns");
}

Table& Table::add_row(std::vector<std::string> cells) {
  if (cells.size() != header_.size())
    throw std::invalid_argument("report::Table: a row of " + std::to_string(cells.size()) +
                                " cells in a table of " + std::to_string(header_.size()) +
                                " columns");
  rows_.push_back(std::move(cells));
  return *this;
}

std::string Table::markdown() const {
  std::string out = markdown_line(header_) + "|";
  for (size_t c = 0; c < header_.size(); ++c) out += "---|";
  out += "\n";
  for (const auto& row : rows_) out += markdown_line(row);
  return out;
}

std::string Table::text() const {
  std::vector<size_t> widths(header_.size());
  for (size_t c = 0; c < header_.size(); ++c) {
    widths[c] = width(header_[c]);
    for (const auto& row : rows_) widths[c] = std::max(widths[c], width(row[c]));
  }
  auto line = [&](const std::vector<std::string>& cells) {
    std::string out;
    for (size_t c = 0; c < cells.size(); ++c) {
      out += cells[c];
      if (c + 1 < cells.size()) out += std::string(widths[c] - width(cells[c]) + 2, ' ');
    }
    return out + "\n";
  };
  std::string out = line(header_);
  for (size_t c = 0; c < header_.size(); ++c)
    out += std::string(widths[c], '-') + (c + 1 < header_.size() ? "  " : "\n");
  for (const auto& row : rows_) out += line(row);
  return out;
}

}  // namespace dpm::experiments::report
