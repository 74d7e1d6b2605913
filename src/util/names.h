#pragma once
// The names of an enum's values, for the edge of the program only: configs, the command line
// and result files name a choice in text; the library takes the enum. Each enum that a config
// names declares one table beside it, e.g.
//   enum class Granularity { kPerTensor, kPerChannel };
//   inline constexpr util::Names<Granularity, 2> kGranularityNames{{{Granularity::kPerTensor, "per_tensor"}, ...}};
// (the pattern of CTranslate2's str_to_compute_type / compute_type_to_str).
#include <array>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace qrobust::util {

template <class E>
struct Named {
  E value;
  const char* name;
};

template <class E, size_t N>
using Names = std::array<Named<E>, N>;

template <class E, size_t N>
const char* name_of(E value, const Names<E, N>& names) {
  for (const auto& entry : names)
    if (entry.value == value) return entry.name;
  return "?";  // unreachable for a complete table
}

template <class E, size_t N>
std::optional<E> value_of(std::string_view name, const Names<E, N>& names) {
  for (const auto& entry : names)
    if (name == entry.name) return entry.value;
  return std::nullopt;
}

template <class E, size_t N>
std::vector<std::string> all_names(const Names<E, N>& names) {
  std::vector<std::string> out;
  for (const auto& entry : names) out.emplace_back(entry.name);
  return out;
}

}  // namespace qrobust::util
