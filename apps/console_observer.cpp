#include "console_observer.h"

#include <spdlog/spdlog.h>

#include <cstdio>

namespace qrobust::cli {

void ConsoleObserver::on_epoch_start(int64_t epoch, int64_t epochs, int64_t steps, int64_t images) {
  line_ = std::make_unique<util::ProgressLine>("epoch " + std::to_string(epoch + 1) + "/" + std::to_string(epochs),
                                               images, "img");
  steps_ = steps;
  smoothed_loss_ = 0;
}

void ConsoleObserver::on_step(int64_t step, int64_t images_done, double loss) {
  smoothed_loss_ = step == 0 ? loss : 0.95 * smoothed_loss_ + 0.05 * loss;
  char detail[64];
  std::snprintf(detail, sizeof(detail), "step %lld/%lld loss %.4f", static_cast<long long>(step + 1),
                static_cast<long long>(steps_), smoothed_loss_);
  line_->update(images_done, detail);
}

void ConsoleObserver::on_epoch_end(const nlohmann::json& record) {
  char detail[160];
  std::snprintf(detail, sizeof(detail), "train loss %.4f acc %.2f%% | test loss %.4f acc %.2f%%",
                record["train"]["loss"].get<double>(), record["train"]["accuracy"].get<double>(),
                record["test"]["loss"].get<double>(), record["test"]["accuracy"].get<double>());
  line_->finish(detail);
}

}  // namespace qrobust::cli
