#pragma once
// Typed reading of a YAML tree with errors that point at the source: every error names the
// file and line (or the --set flag) and the full key path, e.g.
//   configs/x.yaml:7: train.lr: expected a number, got "fast"
// Each config section reads its keys through a YamlSection and calls finish(), which rejects
// any key it did not read.
#include <yaml-cpp/yaml.h>

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "util/errors.h"
#include "util/names.h"

namespace qrobust::config {

class ConfigError : public UsageError {
 public:
  using UsageError::UsageError;
};

// Where a tree came from: the file, and which key paths were set on the command line.
struct YamlOrigin {
  std::string file;
  std::set<std::string> overridden;
};

// Parses a YAML document; a syntax error becomes a ConfigError with file and line.
YAML::Node parse_yaml(const std::string& text, const std::string& file);

// Applies "a.b.c=value" (value parsed as YAML) to `root`, recording the path in `origin`.
void apply_override(YAML::Node& root, const std::string& assignment, YamlOrigin& origin);

// A number as error messages quote it (shortest stream form: 0.0001, 3e-05).
std::string number_text(double value);

class YamlSection {
 public:
  // `path` is the dotted key path of `node` ("" for the document root).
  YamlSection(YAML::Node node, std::string path, std::shared_ptr<const YamlOrigin> origin);

  bool has(const std::string& key) const;
  double number(const std::string& key, double fallback);
  int64_t integer(const std::string& key, int64_t fallback);
  bool boolean(const std::string& key, bool fallback);
  std::string text(const std::string& key, const std::string& fallback);
  std::vector<int64_t> integers(const std::string& key, const std::vector<int64_t>& fallback);
  std::vector<double> numbers(const std::string& key, const std::vector<double>& fallback);  // finite, float range
  std::vector<std::string> strings(const std::string& key, const std::vector<std::string>& fallback);
  // One of `choices`; anything else is an error listing them.
  std::string choice(const std::string& key, const std::string& fallback, const std::vector<std::string>& choices);
  // The same for an enum, by its names.
  template <class E, size_t N>
  E choice(const std::string& key, E fallback, const util::Names<E, N>& names) {
    return *util::value_of(choice(key, util::name_of(fallback, names), util::all_names(names)), names);
  }
  // A nested map; an absent key gives an empty section.
  YamlSection section(const std::string& key);
  // The keys of a nested map, in file order (empty when absent).
  std::vector<std::string> keys(const std::string& key);
  // A nested map of "dotted.key.path: value" entries as "dotted.key.path=value" assignments
  // (apply_override's form; values written back as flow-style YAML).
  std::vector<std::string> assignments(const std::string& key);

  // Throws a ConfigError located at `key` (at this section if the key is absent).
  [[noreturn]] void fail(const std::string& key, const std::string& message) const;
  // Rejects keys that were never read.
  void finish() const;

  std::string key_path(const std::string& key) const { return path_.empty() ? key : path_ + "." + key; }

 private:
  YAML::Node scalar(const std::string& key, const char* expected);
  std::string location(const std::string& key) const;

  YAML::Node node_;
  std::string path_;
  std::shared_ptr<const YamlOrigin> origin_;
  std::set<std::string> read_;
};

}  // namespace qrobust::config
