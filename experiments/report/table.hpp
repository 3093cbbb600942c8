#pragma once
// Table: the one table renderer of the reports. A table is built once, from cells already
// formatted (report/format.hpp), and rendered as markdown (the report files) or as plain text
// with aligned columns (a terminal), so the two never disagree.
#include <string>
#include <vector>

namespace dpm::experiments::report {

class Table {
 public:
  explicit Table(std::vector<std::string> header);

  // Appends a row; throws std::invalid_argument unless it has one cell per header column.
  Table& add_row(std::vector<std::string> cells);
  bool empty() const { return rows_.empty(); }
  size_t size() const { return rows_.size(); }

  // "| a | b |\n|---|---|\n| 1 | 2 |\n".
  std::string markdown() const;
  // Columns padded to their widest cell, two spaces apart; a dashed line under the header.
  std::string text() const;

 private:
  std::vector<std::string> header_;
  std::vector<std::vector<std::string>> rows_;
};

}  // namespace dpm::experiments::report
