#include "test_support.h"
#include "train/trainer.h"

#include <sys/wait.h>
#include <zlib.h>

#include <array>
#include <cstdio>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>

namespace qrobust::testing {
namespace fs = std::filesystem;

TempDir::TempDir() {
  std::random_device device;
  path_ = (fs::temp_directory_path() / ("qrobust_test_" + std::to_string(device()))).string();
  fs::create_directories(path_);
}

TempDir::~TempDir() {
  std::error_code ignored;
  fs::remove_all(path_, ignored);
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

void save_corpus_sample(const std::string& harness, const std::string& bytes) {
  const char* root = std::getenv("QROBUST_FUZZ_CORPUS");
  if (root == nullptr || *root == '\0') return;
  const std::string dir = std::string(root) + "/" + harness;
  std::filesystem::create_directories(dir);
  write_bytes(dir + "/" + std::to_string(std::hash<std::string>{}(bytes)), bytes);
}

std::pair<torch::Tensor, torch::Tensor> synthetic_images(int64_t n, int64_t channels, int64_t size, uint64_t seed) {
  auto generator = at::detail::createCPUGenerator(seed);
  auto labels = torch::randint(0, 10, {n}, generator, torch::kLong);
  // Brightness grows with the class; the noise keeps every image distinct.
  auto images = torch::rand({n, channels, size, size}, generator) * 60.0 + labels.view({n, 1, 1, 1}).to(torch::kFloat) * 18.0;
  return {images.clamp(0, 255).to(torch::kUInt8), labels};
}

namespace {
std::string cifar_records(const torch::Tensor& images, const torch::Tensor& labels) {
  std::string bytes;
  for (int64_t i = 0; i < labels.size(0); ++i) {
    bytes.push_back(static_cast<char>(labels[i].item<int64_t>()));
    auto pixels = images[i].contiguous();
    bytes.append(reinterpret_cast<const char*>(pixels.data_ptr<uint8_t>()), 3 * 32 * 32);
  }
  return bytes;
}

std::string big_endian(uint32_t value) {
  return {static_cast<char>(value >> 24), static_cast<char>(value >> 16), static_cast<char>(value >> 8),
          static_cast<char>(value)};
}

void write_maybe_gzipped(const std::string& path, const std::string& bytes, bool gzip) {
  if (!gzip) return write_bytes(path, bytes);
  gzFile file = gzopen((path + ".gz").c_str(), "wb");
  gzwrite(file, bytes.data(), static_cast<unsigned>(bytes.size()));
  gzclose(file);
}
}  // namespace

void write_cifar10(const std::string& dir, int64_t per_file, uint64_t seed) {
  fs::create_directories(dir);
  const std::vector<std::string> names = {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
                                          "data_batch_4.bin", "data_batch_5.bin", "test_batch.bin"};
  for (size_t f = 0; f < names.size(); ++f) {
    auto [images, labels] = synthetic_images(per_file, 3, 32, seed * 100 + f);
    write_bytes(dir + "/" + names[f], cifar_records(images, labels));
  }
}

void write_idx(const std::string& dir, int64_t train, int64_t test, bool gzip, uint64_t seed) {
  fs::create_directories(dir);
  for (auto [prefix, n] : {std::pair<std::string, int64_t>{"train", train}, {"t10k", test}}) {
    auto [images, labels] = synthetic_images(n, 1, 28, seed + (prefix == "train" ? 0 : 1));
    std::string image_bytes = big_endian(2051) + big_endian(static_cast<uint32_t>(n)) + big_endian(28) + big_endian(28);
    image_bytes.append(reinterpret_cast<const char*>(images.contiguous().data_ptr<uint8_t>()), n * 28 * 28);
    std::string label_bytes = big_endian(2049) + big_endian(static_cast<uint32_t>(n));
    auto small = labels.to(torch::kUInt8).contiguous();
    label_bytes.append(reinterpret_cast<const char*>(small.data_ptr<uint8_t>()), n);
    write_maybe_gzipped(dir + "/" + prefix + "-images-idx3-ubyte", image_bytes, gzip);
    write_maybe_gzipped(dir + "/" + prefix + "-labels-idx1-ubyte", label_bytes, gzip);
  }
}

config::ExperimentConfig tiny_config(const std::string& data_dir, int64_t epochs) {
  config::ExperimentConfig c;
  c.name = "tiny";
  c.seed = 7;
  c.device = "cpu";
  c.threads = 1;
  c.data.dataset = config::Dataset::kCifar10;
  c.data.root = data_dir;
  c.data.batch_size = 32;
  c.data.eval_batch_size = 64;
  c.model.name("resnet8").width(4);
  c.train.epochs = epochs;
  c.train.lr = 0.05;
  c.train.schedule = config::Schedule::kCosine;
  return c;
}

TrainedTinyRun::TrainedTinyRun(int64_t epochs, const std::function<void(config::ExperimentConfig&)>& adjust) {
  write_cifar10(data.path(), 48);
  config = tiny_config(data.path(), epochs);
  if (adjust) adjust(config);
  train::TrainOptions options;
  options.run_dir = runs.file("run");
  train::train(config, options);
  checkpoint = train::checkpoint_path(options.run_dir);
}

const std::vector<ShippedModel>& shipped_models() {
  static const std::vector<ShippedModel> models = {{"resnet20", 4}, {"resnet56", 4},  {"resnet18_cifar", 8},
                                                   {"resnet18", 8}, {"resnet50", 8},  {"vgg_like", 8},
                                                   {"vgg11_bn", 8}, {"vgg16_bn", 8}};
  return models;
}

CommandResult run_command(const std::string& command) {
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  std::string output;
  std::array<char, 4096> buffer;
  while (size_t n = fread(buffer.data(), 1, buffer.size(), pipe)) output.append(buffer.data(), n);
  const int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, output};
}

}  // namespace qrobust::testing
