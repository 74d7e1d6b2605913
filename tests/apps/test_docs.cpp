// The docs check: README.md and docs/ against the code. Every relative link resolves, every
// config and experiment file the docs name exists and validates, every `qrobust SUBCOMMAND
// --flag` they show is a real subcommand and flag, and the generated reference
// (scripts/update_reference.sh) is what the binary prints today.
#include <catch2/catch.hpp>

#include <filesystem>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "config/config.h"
#include "experiment/experiment.h"
#include "test_support.h"
#include "util/atomic_file.h"

using namespace qrobust;
namespace fs = std::filesystem;

namespace {

const fs::path kSource = QROBUST_SOURCE_DIR;

std::string output_of(const std::string& command) { return testing::run_command(command).output; }

// README.md and every Markdown file under docs/, as (path, text).
std::map<fs::path, std::string> documents() {
  std::map<fs::path, std::string> docs{{kSource / "README.md", util::read_file((kSource / "README.md").string())}};
  for (const auto& entry : fs::recursive_directory_iterator(kSource / "docs"))
    if (entry.is_regular_file() && entry.path().extension() == ".md")
      docs[entry.path()] = util::read_file(entry.path().string());
  return docs;
}

// The text inside code: fenced blocks and `inline spans`.
std::vector<std::string> code_of(const std::string& markdown) {
  std::vector<std::string> code;
  static const std::regex fence("```[a-z]*\\n([\\s\\S]*?)```");
  std::string prose;
  size_t last = 0;
  for (auto it = std::sregex_iterator(markdown.begin(), markdown.end(), fence); it != std::sregex_iterator(); ++it) {
    code.push_back((*it)[1].str());
    prose += markdown.substr(last, static_cast<size_t>(it->position()) - last);
    last = static_cast<size_t>(it->position() + it->length());
  }
  prose += markdown.substr(last);
  static const std::regex span("`([^`\\n]+)`");
  for (auto it = std::sregex_iterator(prose.begin(), prose.end(), span); it != std::sregex_iterator(); ++it)
    code.push_back((*it)[1].str());
  return code;
}

// GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens.
std::string anchor_of(const std::string& heading) {
  std::string anchor;
  for (unsigned char c : heading) {
    if (std::isalnum(c) || c == '-' || c == '_' || c >= 0x80) anchor += static_cast<char>(std::tolower(c));
    else if (c == ' ') anchor += '-';
  }
  return anchor;
}

std::set<std::string> anchors_of(const std::string& markdown) {
  std::set<std::string> anchors;
  std::map<std::string, int> seen;
  static const std::regex heading("(^|\\n)#+ ([^\\n]+)");
  std::string outside_code = markdown;
  outside_code = std::regex_replace(outside_code, std::regex("```[\\s\\S]*?```"), "");
  for (auto it = std::sregex_iterator(outside_code.begin(), outside_code.end(), heading); it != std::sregex_iterator(); ++it) {
    const auto base = anchor_of((*it)[2].str());
    const int n = seen[base]++;
    anchors.insert(n == 0 ? base : base + "-" + std::to_string(n));
  }
  return anchors;
}

// Every subcommand's help ("" for the top level's), from the binary itself.
std::map<std::string, std::string> help_texts() {
  auto help_of = [](const std::string& sub) {
    return output_of(std::string(QROBUST_BINARY) + (sub.empty() ? "" : " " + sub) + " --help");
  };
  std::map<std::string, std::string> help{{"", help_of("")}};
  const auto listing = help[""].find("Subcommands:");
  REQUIRE(listing != std::string::npos);
  std::istringstream lines(help[""].substr(listing));
  std::string line;
  std::getline(lines, line);
  while (std::getline(lines, line)) {
    std::istringstream words(line);
    std::string name;
    if (words >> name) help[name] = help_of(name);
  }
  return help;
}

// The subcommands and the flags their help names.
std::map<std::string, std::set<std::string>> cli_flags() {
  std::map<std::string, std::set<std::string>> flags;
  static const std::regex flag("--[a-z][a-z0-9-]*");
  for (const auto& [sub, help] : help_texts())
    for (auto it = std::sregex_iterator(help.begin(), help.end(), flag); it != std::sregex_iterator(); ++it)
      flags[sub].insert(it->str());
  return flags;
}

// Runs the test's body with the source tree as the working directory (configs name paths
// relative to it), and puts the previous one back.
struct InSourceTree {
  fs::path previous = fs::current_path();
  InSourceTree() { fs::current_path(kSource); }
  ~InSourceTree() { fs::current_path(previous); }
};

}  // namespace

TEST_CASE("every relative link in README.md and docs/ resolves, anchors included") {
  const auto docs = documents();
  static const std::regex link("\\]\\(([^)\\s]+)\\)");
  int checked = 0;
  for (const auto& [path, text] : docs) {
    for (auto it = std::sregex_iterator(text.begin(), text.end(), link); it != std::sregex_iterator(); ++it) {
      const std::string target = (*it)[1].str();
      if (target.rfind("http://", 0) == 0 || target.rfind("https://", 0) == 0 || target.rfind("mailto:", 0) == 0) continue;
      const auto hash = target.find('#');
      const std::string file = target.substr(0, hash);
      const fs::path resolved = file.empty() ? path : (path.parent_path() / file).lexically_normal();
      INFO(path.string() << " links to " << target);
      CHECK(fs::exists(resolved));
      if (hash != std::string::npos && resolved.extension() == ".md" && fs::exists(resolved))
        CHECK(anchors_of(util::read_file(resolved.string())).count(target.substr(hash + 1)));
      ++checked;
    }
  }
  CHECK(checked > 20);
}

TEST_CASE("every config and experiment file the docs name exists and validates") {
  InSourceTree in_source;
  testing::TempDir results;
  // A name followed by ":LINE" quotes an error message, not a file.
  static const std::regex named("(configs|experiments)/([A-Za-z0-9_.@+-]+)\\.yaml(?!:[0-9])");
  std::set<std::string> files;
  for (const auto& [path, text] : documents())
    for (auto it = std::sregex_iterator(text.begin(), text.end(), named); it != std::sregex_iterator(); ++it) {
      const std::string stem = (*it)[2].str();
      // Placeholders such as experiments/NAME.yaml name no file.
      if (std::all_of(stem.begin(), stem.end(), [](char c) { return std::isupper(static_cast<unsigned char>(c)) || c == '_'; }))
        continue;
      files.insert(it->str());
    }
  CHECK(files.size() > 10);
  for (const auto& file : files) {
    INFO(file);
    REQUIRE(fs::is_regular_file(file));
    if (file.rfind("configs/", 0) == 0)
      CHECK_NOTHROW(config::load_config(file));
    else
      CHECK_NOTHROW(experiment::load_experiment(file, results.path()));
  }
}

TEST_CASE("every qrobust command the docs show is a real subcommand with real flags") {
  const auto flags = cli_flags();
  REQUIRE(flags.count("sweep-bits"));
  // `qrobust SUB ...` up to the end of the command (a comment, a pipe, the next line).
  static const std::regex command("(?:^|[\\s/])qrobust ((?:[a-z][a-z-]*)?)([^#|\\n]*)");
  static const std::regex flag("(?:^|[\\s\\[(])(--[a-z][a-z0-9-]*)");
  int commands = 0;
  for (const auto& [path, text] : documents()) {
    // The generated CLI reference is the binary's own help (checked below).
    if (path.parent_path().filename() == "reference") continue;
    for (const auto& code : code_of(text))
      for (auto it = std::sregex_iterator(code.begin(), code.end(), command); it != std::sregex_iterator(); ++it) {
        const std::string sub = (*it)[1].str(), rest = (*it)[2].str();
        INFO(path.filename().string() << ": qrobust " << sub << rest);
        REQUIRE(flags.count(sub));
        for (auto f = std::sregex_iterator(rest.begin(), rest.end(), flag); f != std::sregex_iterator(); ++f)
          CHECK(flags.at(sub).count((*f)[1].str()));
        ++commands;
      }
  }
  CHECK(commands > 20);
}

TEST_CASE("every flag in the help has a one-line meaning") {
  // The option column, then at least two spaces and the meaning; CLI11 puts the meaning of a
  // long option column on the next line, indented.
  static const std::regex same_line("^  -\\S*(?: \\S+)*\\s{2,}\\S");
  static const std::regex next_line("^\\s{20,}\\S");
  for (const auto& [sub, help] : help_texts()) {
    std::vector<std::string> lines;
    std::istringstream stream(help);
    for (std::string line; std::getline(stream, line);) lines.push_back(line);
    for (size_t i = 0; i < lines.size(); ++i) {
      if (lines[i].rfind("  -", 0) != 0) continue;
      INFO("qrobust " << sub << " --help: " << lines[i]);
      CHECK((std::regex_search(lines[i], same_line) ||
             (i + 1 < lines.size() && std::regex_search(lines[i + 1], next_line))));
    }
  }
}

TEST_CASE("the generated reference in docs/reference is what the binary prints") {
  testing::TempDir out;
  const auto result =
      testing::run_command((kSource / "scripts/update_reference.sh").string() + " " + QROBUST_BINARY + " " + out.path());
  INFO(result.output);
  REQUIRE(result.exit_code == 0);
  for (const char* name : {"config.md", "cli.md"}) {
    INFO("docs/reference/" << name << " is out of date: run scripts/update_reference.sh and commit it");
    CHECK(util::read_file(out.file(name)) == util::read_file((kSource / "docs/reference" / name).string()));
  }
}
