#pragma once
// The configuration reference, built from the code so that it cannot drift: every key a run
// config holds, its default (what to_yaml writes for a config that sets nothing) and a
// one-line meaning. `qrobust config --defaults` prints it, docs/reference/config.md is that
// output, and tests/config/test_reference.cpp fails when a key has no meaning, a meaning names
// no key, or the committed copy differs.
#include <string>
#include <vector>

namespace qrobust::config {

struct KeyDoc {
  std::string key;      // dotted path, e.g. "quant.adaround.iterations"
  std::string meaning;  // one line
  std::string when;     // "" for keys every config holds; else the setting that brings the key in
};

// Every key, in the order to_yaml writes them.
const std::vector<KeyDoc>& key_docs();

// Configs that together hold every key: the defaults first, then one per setting that brings
// in keys of its own (imagefolder data, each kind of penalty, AdaRound), as YAML text.
const std::vector<std::string>& showcase_configs();

// The default config as YAML, each key followed by its meaning as a comment; the keys only
// another setting brings in follow their section, commented out, with their default and when
// they apply. Parses as a config (the commented keys are comments).
std::string annotated_defaults();

}  // namespace qrobust::config
