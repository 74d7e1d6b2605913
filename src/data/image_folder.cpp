#include "data/image_folder.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <mutex>
#include <set>

#include "data/datasets.h"
#include "data/resize.h"
#include "util/atomic_file.h"
#include "util/errors.h"

namespace qrobust::data {
namespace fs = std::filesystem;

namespace {

constexpr uint64_t kMaxImageBytes = 64ull << 20;  // a JPEG photo is a few MiB

// A region of the full-resolution image, in pixels.
struct Box {
  int64_t top = 0, left = 0, height = 0, width = 0;
};

// torchvision's RandomResizedCrop.get_params (scale 0.08-1, ratio 3/4-4/3).
Box random_resized_crop(int64_t height, int64_t width, std::mt19937_64& random) {
  const double area = static_cast<double>(height * width);
  const double min_ratio = 3.0 / 4.0, max_ratio = 4.0 / 3.0;
  std::uniform_real_distribution<double> scale(0.08, 1.0), log_ratio(std::log(min_ratio), std::log(max_ratio));
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target_area = area * scale(random), aspect = std::exp(log_ratio(random));
    const auto w = static_cast<int64_t>(std::lround(std::sqrt(target_area * aspect)));
    const auto h = static_cast<int64_t>(std::lround(std::sqrt(target_area / aspect)));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      const int64_t top = std::uniform_int_distribution<int64_t>(0, height - h)(random);
      const int64_t left = std::uniform_int_distribution<int64_t>(0, width - w)(random);
      return {top, left, h, w};
    }
  }
  const double in_ratio = static_cast<double>(width) / static_cast<double>(height);
  int64_t w = width, h = height;
  if (in_ratio < min_ratio) h = std::lround(static_cast<double>(w) / min_ratio);
  else if (in_ratio > max_ratio) w = std::lround(static_cast<double>(h) * max_ratio);
  return {(height - h) / 2, (width - w) / 2, h, w};
}

bool is_image_file(const fs::path& path) {
  static const std::set<std::string> extensions{".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp"};
  std::string ext = path.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return extensions.count(ext) > 0;
}

}  // namespace

struct JpegFiles::SkipLog {
  std::mutex mutex;
  std::set<std::string> files;
};

JpegFiles::JpegFiles(std::vector<std::string> paths, ImageFolderOptions options)
    : paths_(std::move(paths)), options_(options), skip_log_(std::make_shared<SkipLog>()) {}

std::shared_ptr<const JpegFiles> JpegFiles::select(const torch::Tensor& index) const {
  const auto picks = index.to(torch::kLong).contiguous();
  std::vector<std::string> paths;
  paths.reserve(static_cast<size_t>(picks.numel()));
  for (int64_t i = 0; i < picks.numel(); ++i) paths.push_back(path(picks.data_ptr<int64_t>()[i]));
  auto selected = std::make_shared<JpegFiles>(std::move(paths), options_);
  selected->skip_log_ = skip_log_;
  return selected;
}

torch::Tensor JpegFiles::load(int64_t i, std::mt19937_64* random) const {
  auto out = torch::empty({3, options_.image_size(), options_.image_size()}, torch::kUInt8);
  load_into(i, random, out);
  return out;
}

void JpegFiles::load_into(int64_t i, std::mt19937_64* random, torch::Tensor& out) const {
  const int64_t crop = options_.image_size();
  try {
    const std::string bytes = util::read_file(path(i), kMaxImageBytes);
    const JpegSize full = jpeg_size(bytes);
    // Decodes at `scale` only the part of `region` (scaled pixels) that the resize reads.
    auto resize_from = [&](JpegScale scale, PixelWindow region, const ResizeGeometry& geometry, bool mirror) {
      const WindowResize resize(geometry);
      const PixelWindow& source = resize.source();
      const auto pixels =
          decode_jpeg(bytes, scale, PixelWindow{region.top + source.top, region.left + source.left, source.height, source.width});
      resize.apply(pixels, mirror, out);
    };
    if (random != nullptr) {
      const Box box = random_resized_crop(full.height, full.width, *random);
      const bool mirror = std::uniform_real_distribution<double>(0, 1)(*random) < 0.5;
      const JpegScale scale = covering_scale(box.width, box.height, crop, crop);
      // The box in the scaled image's pixels (the scaled size is rounded up, so clamp).
      const JpegSize scaled = scale.apply(full);
      const double f = scale.factor();
      const int64_t top = std::min<int64_t>(std::lround(box.top * f), scaled.height - 1);
      const int64_t left = std::min<int64_t>(std::lround(box.left * f), scaled.width - 1);
      const int64_t h = std::clamp<int64_t>(std::lround(box.height * f), 1, scaled.height - top);
      const int64_t w = std::clamp<int64_t>(std::lround(box.width * f), 1, scaled.width - left);
      resize_from(scale, {top, left, h, w}, {h, w, crop, crop, {0, 0, crop, crop}}, mirror);
      return;
    }
    // torchvision's Resize(resize) then CenterCrop(S).
    int64_t height = full.height, width = full.width;
    if (options_.resize() > 0) {
      const int64_t r = options_.resize();
      if (full.width <= full.height) {
        width = r;
        height = r * full.height / full.width;
      } else {
        height = r;
        width = r * full.width / full.height;
      }
    }
    if (height < crop || width < crop)
      throw RuntimeFailure(std::to_string(height) + "x" + std::to_string(width) + " is smaller than the " +
                           std::to_string(crop) + "x" + std::to_string(crop) + " center crop");
    const JpegScale scale = covering_scale(full.width, full.height, width, height);
    const JpegSize scaled = scale.apply(full);
    const int64_t top = std::lround((height - crop) / 2.0), left = std::lround((width - crop) / 2.0);
    resize_from(scale, {0, 0, scaled.height, scaled.width}, {scaled.height, scaled.width, height, width, {top, left, crop, crop}},
                false);
  } catch (const RuntimeFailure& e) {
    throw RuntimeFailure(path(i) + ": " + e.what());
  } catch (const c10::Error& e) {
    throw RuntimeFailure(path(i) + ": " + first_line(e.what()));
  }
}

torch::Tensor JpegFiles::load_batch(const torch::Tensor& index, bool augment, uint64_t seed,
                                    std::vector<int64_t>& kept) const {
  const auto picks = index.to(torch::kLong).contiguous();
  const int64_t n = picks.numel(), crop = options_.image_size();
  auto images = torch::empty({n, 3, crop, crop}, torch::kUInt8);
  kept.clear();
  for (int64_t k = 0; k < n; ++k) {
    std::mt19937_64 random(mix_seed(seed, static_cast<uint64_t>(k)));
    try {
      auto slot = images.select(0, static_cast<int64_t>(kept.size()));
      load_into(picks.data_ptr<int64_t>()[k], augment ? &random : nullptr, slot);
      kept.push_back(k);
    } catch (const RuntimeFailure& e) {
      if (options_.strict()) throw RuntimeFailure(std::string(e.what()) + " (data.strict is on)");
      std::lock_guard<std::mutex> lock(skip_log_->mutex);
      if (skip_log_->files.insert(path(picks.data_ptr<int64_t>()[k])).second)
        spdlog::warn("skipping an unreadable image ({} so far): {}", skip_log_->files.size(), e.what());
    }
  }
  return images.narrow(0, 0, static_cast<int64_t>(kept.size()));
}

int64_t JpegFiles::skipped() const {
  std::lock_guard<std::mutex> lock(skip_log_->mutex);
  return static_cast<int64_t>(skip_log_->files.size());
}

std::vector<std::string> image_folder_classes(const std::string& root, const std::string& split) {
  const fs::path folder = fs::path(root) / split;
  std::error_code error;
  if (!fs::is_directory(folder, error)) throw RuntimeFailure(folder.string() + ": image folder not found");
  std::vector<std::string> classes;
  for (const auto& entry : fs::directory_iterator(folder))
    if (entry.is_directory() && entry.path().filename().string().front() != '.') classes.push_back(entry.path().filename().string());
  std::sort(classes.begin(), classes.end());
  if (classes.empty()) throw RuntimeFailure(folder.string() + ": no class folders");
  return classes;
}

ImageFolder::ImageFolder(const std::string& root, const std::string& split, ImageFolderOptions options)
    : classes_(image_folder_classes(root, split)) {
  std::vector<std::string> paths;
  std::vector<int64_t> labels;
  for (size_t label = 0; label < classes_.size(); ++label) {
    std::vector<std::string> files;
    for (const auto& entry : fs::recursive_directory_iterator(fs::path(root) / split / classes_[label]))
      if (entry.is_regular_file() && is_image_file(entry.path())) files.push_back(entry.path().string());
    std::sort(files.begin(), files.end());
    for (auto& file : files) {
      paths.push_back(std::move(file));
      labels.push_back(static_cast<int64_t>(label));
    }
  }
  if (paths.empty()) throw RuntimeFailure((fs::path(root) / split).string() + ": no image files");
  files_ = std::make_shared<JpegFiles>(std::move(paths), options);
  targets_ = torch::tensor(labels, torch::kLong);
}

torch::data::Example<> ImageFolder::get(size_t index) {
  return {files_->load(static_cast<int64_t>(index), nullptr), targets_[static_cast<int64_t>(index)]};
}

torch::optional<size_t> ImageFolder::size() const { return static_cast<size_t>(files_->size()); }

}  // namespace qrobust::data
