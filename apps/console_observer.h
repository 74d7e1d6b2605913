#pragma once
// Progress of a training run on stderr: a live line per epoch (step, img/s, ETA, loss) and a
// summary line per finished epoch.
#include <memory>

#include "train/trainer.h"
#include "util/progress.h"

namespace qrobust::cli {

class ConsoleObserver : public train::TrainObserver {
 public:
  void on_epoch_start(int64_t epoch, int64_t epochs, int64_t steps, int64_t images) override;
  void on_step(int64_t step, int64_t images_done, double loss) override;
  void on_epoch_end(const nlohmann::json& record) override;

 private:
  std::unique_ptr<util::ProgressLine> line_;
  double smoothed_loss_ = 0;
  int64_t steps_ = 0;
};

}  // namespace qrobust::cli
