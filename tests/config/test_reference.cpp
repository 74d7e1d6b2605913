// The configuration reference (config/reference.h) against the parser and writer it documents:
// every key a config can hold has exactly one meaning, and the annotated defaults parse back
// to the defaults.
#include <catch2/catch.hpp>

#include <map>
#include <set>

#include "config/config.h"
#include "config/reference.h"

using namespace qrobust;

namespace {

void collect_keys(const YAML::Node& node, const std::string& prefix, std::vector<std::string>& out) {
  for (const auto& entry : node) {
    const std::string key = prefix + entry.first.as<std::string>();
    if (entry.second.IsMap()) collect_keys(entry.second, key + ".", out);
    else out.push_back(key);
  }
}

// The keys to_yaml writes for a config given as YAML text.
std::vector<std::string> written_keys(const std::string& yaml_text) {
  std::vector<std::string> keys;
  collect_keys(YAML::Load(config::to_yaml(config::parse_config(yaml_text, "config.yaml"))), "", keys);
  return keys;
}

}  // namespace

TEST_CASE("every key a config writes has one meaning, and every meaning names a key") {
  std::map<std::string, int> documented;
  for (const auto& doc : config::key_docs()) {
    INFO(doc.key);
    CHECK(++documented[doc.key] == 1);
    CHECK_FALSE(doc.meaning.empty());
    CHECK(doc.meaning.find('\n') == std::string::npos);
  }
  std::set<std::string> written;
  for (const auto& text : config::showcase_configs())
    for (const auto& key : written_keys(text)) {
      INFO("written by to_yaml for `" << text << "`: " << key);
      CHECK(documented.count(key));
      written.insert(key);
    }
  for (const auto& doc : config::key_docs()) {
    INFO("documented but written by no showcase config: " << doc.key);
    CHECK(written.count(doc.key));
  }
  // Keys that every config holds have no condition; the others name the setting they need.
  const auto defaults = written_keys("{}");
  const std::set<std::string> always(defaults.begin(), defaults.end());
  for (const auto& doc : config::key_docs()) {
    INFO(doc.key);
    CHECK(doc.when.empty() == (always.count(doc.key) == 1));
  }
  // The table follows to_yaml's order, so the reference reads like a config.
  std::vector<std::string> documented_defaults;
  for (const auto& doc : config::key_docs())
    if (doc.when.empty()) documented_defaults.push_back(doc.key);
  CHECK(documented_defaults == defaults);
}

TEST_CASE("the annotated defaults parse back to the default config, and list every key") {
  const std::string text = config::annotated_defaults();
  CHECK(config::to_yaml(config::parse_config(text, "config.yaml")) ==
        config::to_yaml(config::parse_config("{}", "config.yaml")));
  for (const auto& doc : config::key_docs()) {
    const auto leaf = doc.key.substr(doc.key.rfind('.') + 1);
    INFO(doc.key);
    CHECK_THAT(text, Catch::Contains(leaf + ":") && Catch::Contains("# " + doc.meaning));
    if (!doc.when.empty()) CHECK_THAT(text, Catch::Contains("(with " + doc.when + ")"));
  }
  // A commented-out key, uncommented, is accepted with its setting: AdaRound's iterations.
  CHECK_NOTHROW(config::parse_config("quant: {rounding: adaround, adaround: {iterations: 1000}}", "config.yaml"));
}
