#include "config/yaml_reader.h"

#include <yaml-cpp/eventhandler.h>

#include <cmath>
#include <limits>
#include <map>
#include <sstream>

namespace qrobust::config {

namespace {
std::string describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map: return "a map";
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Null: return "nothing";
    default: return "\"" + node.Scalar() + "\"";
  }
}

constexpr int kMaxNesting = 32;  // a config is 3 levels deep; an alias can make a node contain itself

// What yaml-cpp would let through: a key given twice in one map (the first one would win), a key
// that is not a plain name, and nesting without end (an alias inside what it names).
void check_keys(const YAML::Node& node, const std::string& path, const std::string& file, int depth = 0) {
  if (depth > kMaxNesting)
    throw ConfigError(file + ":" + std::to_string(node.Mark().line + 1) + ": " + (path.empty() ? "" : path + ": ") +
                      "nested deeper than " + std::to_string(kMaxNesting) + " levels (an alias inside itself?)");
  if (node.IsSequence())
    for (const auto& item : node) check_keys(item, path, file, depth + 1);
  if (!node.IsMap()) return;
  std::map<std::string, int> first_line;
  for (const auto& entry : node) {
    const int line = entry.first.Mark().line + 1;
    if (!entry.first.IsScalar())
      throw ConfigError(file + ":" + std::to_string(line) + ": " + (path.empty() ? "" : path + ": ") +
                        "a key must be a plain name, got " + describe(entry.first));
    const auto key = entry.first.Scalar();
    const std::string key_path = path.empty() ? key : path + "." + key;
    const auto [seen, inserted] = first_line.emplace(key, line);
    if (!inserted)
      throw ConfigError(file + ":" + std::to_string(line) + ": " + key_path + ": given twice (first at line " +
                        std::to_string(seen->second) + ")");
    check_keys(entry.second, key_path, file, depth + 1);
  }
}

// Config strings are names and paths: printable UTF-8 (a control character or a broken byte
// sequence would not survive the resolved config.yaml written back, found by fuzz/fuzz_config.cpp).
bool printable_utf8(const std::string& text) {
  for (size_t i = 0; i < text.size();) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x20 || c == 0x7f) return false;
    const size_t length = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
    if (length == 0 || i + length > text.size()) return false;
    for (size_t k = 1; k < length; ++k)
      if ((static_cast<unsigned char>(text[i + k]) >> 6) != 0x2) return false;
    i += length;
  }
  return true;
}

std::string join(const std::set<std::string>& items) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : ", ") + item;
  return out;
}
}  // namespace

namespace {

// Counts a stream's documents, stopping at the first empty one: yaml-cpp 0.7's LoadAll never
// returns on some malformed input (a lone ",", yaml-cpp#1040), and its fix stops there too.
class DocumentCounter : public YAML::EventHandler {
 public:
  bool empty = true;
  YAML::Mark start;
  void OnDocumentStart(const YAML::Mark& mark) override { start = mark, empty = true; }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override { empty = false; }
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t, const std::string&) override { empty = false; }
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {
    empty = false;
  }
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {
    empty = false;
  }
  void OnMapEnd() override {}
};

// Something other than blank lines, comments and document markers.
bool has_content(const std::string& text) {
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    const auto first = line.find_first_not_of(" \t\r");
    if (first == std::string::npos || line[first] == '#') continue;
    const auto word = line.substr(first, line.find_last_not_of(" \t\r") + 1 - first);
    if (word != "---" && word != "...") return true;
  }
  return false;
}

}  // namespace

YAML::Node parse_yaml(const std::string& text, const std::string& file) {
  try {
    std::istringstream stream(text);
    YAML::Parser parser(stream);
    DocumentCounter counter;
    for (int documents = 0; parser.HandleNextDocument(counter) && !counter.empty;)
      if (++documents == 2)
        throw ConfigError(file + ":" + std::to_string(counter.start.line + 1) +
                          ": a second YAML document (after ---): a config is one document");
    YAML::Node root = YAML::Load(text);
    if (root.IsNull() && has_content(text)) throw ConfigError(file + ":1: invalid YAML: no value could be read");
    if (root.IsNull()) return YAML::Node(YAML::NodeType::Map);
    if (!root.IsMap()) throw ConfigError(file + ":1: expected a map of config sections, got " + describe(root));
    check_keys(root, "", file);
    return root;
  } catch (const YAML::ParserException& e) {
    throw ConfigError(file + ":" + std::to_string(e.mark.line + 1) + ": invalid YAML: " + e.msg);
  }
}

void apply_override(YAML::Node& root, const std::string& assignment, YamlOrigin& origin) {
  const auto equals = assignment.find('=');
  if (equals == std::string::npos || equals == 0)
    throw ConfigError("--set " + assignment + ": expected key.path=value");
  const std::string path = assignment.substr(0, equals);
  YAML::Node value;
  try {
    value = YAML::Load(assignment.substr(equals + 1));
  } catch (const YAML::ParserException& e) {
    throw ConfigError("--set " + path + ": invalid YAML value: " + e.msg);
  }
  check_keys(value, path, "--set " + path);
  std::vector<std::string> keys;
  std::stringstream parts(path);
  for (std::string key; std::getline(parts, key, '.');) {
    if (key.empty()) throw ConfigError("--set " + assignment + ": empty key in \"" + path + "\"");
    keys.push_back(key);
  }
  // yaml-cpp nodes are references: reset() rebinds, plain assignment would overwrite.
  YAML::Node node;
  node.reset(root);
  for (size_t i = 0; i + 1 < keys.size(); ++i) {
    YAML::Node child = node[keys[i]];
    if (!child.IsDefined() || child.IsNull()) {
      node[keys[i]] = YAML::Node(YAML::NodeType::Map);
      child = node[keys[i]];
    }
    if (!child.IsMap()) throw ConfigError("--set " + path + ": " + keys[i] + " is not a section");
    node.reset(child);
  }
  node[keys.back()] = value;
  origin.overridden.insert(path);
}

YamlSection::YamlSection(YAML::Node node, std::string path, std::shared_ptr<const YamlOrigin> origin)
    : node_(std::move(node)), path_(std::move(path)), origin_(std::move(origin)) {}

bool YamlSection::has(const std::string& key) const { return node_.IsMap() && node_[key].IsDefined(); }

std::string YamlSection::location(const std::string& key) const {
  const std::string full = key_path(key);
  for (const auto& overridden : origin_->overridden)
    if (full == overridden || full.rfind(overridden + ".", 0) == 0 || overridden.rfind(full + ".", 0) == 0)
      return "--set " + overridden;
  YAML::Mark mark = node_.Mark();
  if (has(key)) mark = node_[key].Mark();
  if (mark.is_null()) return origin_->file;
  return origin_->file + ":" + std::to_string(mark.line + 1);
}

void YamlSection::fail(const std::string& key, const std::string& message) const {
  throw ConfigError(location(key) + ": " + key_path(key) + ": " + message);
}

YAML::Node YamlSection::scalar(const std::string& key, const char* expected) {
  read_.insert(key);
  YAML::Node value = node_[key];
  if (!value.IsScalar()) fail(key, std::string("expected ") + expected + ", got " + describe(value));
  return value;
}

double YamlSection::number(const std::string& key, double fallback) {
  if (!has(key)) return (read_.insert(key), fallback);
  const YAML::Node value = scalar(key, "a number");
  try {
    const double parsed = value.as<double>();
    if (!std::isfinite(parsed)) fail(key, "expected a finite number, got " + describe(value));
    // Every number ends up in float tensors or optimizer options.
    if (std::abs(parsed) > std::numeric_limits<float>::max())
      fail(key, "expected a number within float range (magnitude <= 3.4e38), got " + describe(value));
    return parsed;
  } catch (const YAML::BadConversion&) {
    fail(key, "expected a number, got " + describe(value));
  }
}

int64_t YamlSection::integer(const std::string& key, int64_t fallback) {
  if (!has(key)) return (read_.insert(key), fallback);
  const YAML::Node value = scalar(key, "an integer");
  try {
    return value.as<int64_t>();
  } catch (const YAML::BadConversion&) {
    fail(key, "expected an integer, got " + describe(value));
  }
}

bool YamlSection::boolean(const std::string& key, bool fallback) {
  if (!has(key)) return (read_.insert(key), fallback);
  const YAML::Node value = scalar(key, "true or false");
  try {
    return value.as<bool>();
  } catch (const YAML::BadConversion&) {
    fail(key, "expected true or false, got " + describe(value));
  }
}

std::string YamlSection::text(const std::string& key, const std::string& fallback) {
  if (!has(key)) return (read_.insert(key), fallback);
  const std::string value = scalar(key, "a string").Scalar();
  if (!printable_utf8(value)) fail(key, "expected printable text, got control characters or bytes that are not UTF-8");
  return value;
}

std::vector<int64_t> YamlSection::integers(const std::string& key, const std::vector<int64_t>& fallback) {
  read_.insert(key);
  if (!has(key)) return fallback;
  const YAML::Node value = node_[key];
  if (!value.IsSequence()) fail(key, "expected a list of integers, got " + describe(value));
  std::vector<int64_t> out;
  for (const auto& item : value) {
    try {
      out.push_back(item.as<int64_t>());
    } catch (const YAML::BadConversion&) {
      fail(key, "expected a list of integers, got an element " + describe(item));
    }
  }
  return out;
}

std::vector<double> YamlSection::numbers(const std::string& key, const std::vector<double>& fallback) {
  read_.insert(key);
  if (!has(key)) return fallback;
  const YAML::Node value = node_[key];
  if (!value.IsSequence()) fail(key, "expected a list of numbers, got " + describe(value));
  std::vector<double> out;
  for (const auto& item : value) {
    double parsed = 0;
    try {
      parsed = item.as<double>();
    } catch (const YAML::BadConversion&) {
      fail(key, "expected a list of numbers, got an element " + describe(item));
    }
    if (!std::isfinite(parsed) || std::abs(parsed) > std::numeric_limits<float>::max())
      fail(key, "expected finite numbers within float range, got an element " + describe(item));
    out.push_back(parsed);
  }
  return out;
}

std::vector<std::string> YamlSection::strings(const std::string& key, const std::vector<std::string>& fallback) {
  read_.insert(key);
  if (!has(key)) return fallback;
  const YAML::Node value = node_[key];
  if (!value.IsSequence()) fail(key, "expected a list of strings, got " + describe(value));
  std::vector<std::string> out;
  for (const auto& item : value) {
    if (!item.IsScalar()) fail(key, "expected a list of strings, got an element " + describe(item));
    if (!printable_utf8(item.Scalar())) fail(key, "expected printable text, got control characters or bytes that are not UTF-8");
    out.push_back(item.Scalar());
  }
  return out;
}

std::string number_text(double value) {
  std::ostringstream out;
  out << value;
  return out.str();
}

std::string YamlSection::choice(const std::string& key, const std::string& fallback,
                                const std::vector<std::string>& choices) {
  const std::string value = text(key, fallback);
  for (const auto& c : choices)
    if (value == c) return value;
  std::string list;
  for (const auto& c : choices) list += (list.empty() ? "" : ", ") + c;
  fail(key, "expected one of " + list + ", got \"" + value + "\"");
}

YamlSection YamlSection::section(const std::string& key) {
  read_.insert(key);
  if (!has(key) || node_[key].IsNull()) return YamlSection(YAML::Node(YAML::NodeType::Map), key_path(key), origin_);
  if (!node_[key].IsMap()) fail(key, "expected a section (a map of keys), got " + describe(node_[key]));
  return YamlSection(node_[key], key_path(key), origin_);
}

std::vector<std::string> YamlSection::keys(const std::string& key) {
  std::vector<std::string> out;
  for (const auto& entry : section(key).node_) out.push_back(entry.first.as<std::string>());
  return out;
}

std::vector<std::string> YamlSection::assignments(const std::string& key) {
  std::vector<std::string> out;
  for (const auto& entry : section(key).node_) {
    YAML::Emitter value;
    value << YAML::Flow << entry.second;
    out.push_back(entry.first.as<std::string>() + "=" + value.c_str());
  }
  return out;
}

void YamlSection::finish() const {
  if (!node_.IsMap()) return;
  for (const auto& entry : node_) {
    const std::string key = entry.first.as<std::string>();
    if (read_.count(key)) continue;
    throw ConfigError(location(key) + ": " + key_path(key) + ": unknown key (known here: " + join(read_) + ")");
  }
}

}  // namespace qrobust::config
