#pragma once
// Multi-process data parallelism on LibTorch's own engine, c10d: a TCP store for rendezvous
// and ProcessGroupGloo for collectives. Launch is torchrun-compatible: every process reads
// RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT from its environment, e.g.
//   torchrun --nproc-per-node 2 build/qrobust train --config ...
// Each process trains on its shard of every global batch; after the backward pass the
// gradients are averaged over processes in buckets, so every replica takes the same step.
// Only rank 0 writes outputs. Builds without c10d's Gloo headers (QROBUST_DISTRIBUTED off)
// reject WORLD_SIZE > 1 with a clear error.
#include <torch/torch.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace qrobust::parallel {

struct DistributedEnv {
  int64_t rank = 0, world_size = 1, local_rank = 0;
  std::string master_addr = "127.0.0.1";
  int64_t master_port = 29500;
};

// The torchrun variables, or nullopt when WORLD_SIZE is unset or 1. Throws UsageError naming a
// malformed or missing variable.
std::optional<DistributedEnv> distributed_env();

class DataParallel {
 public:
  // Rendezvous with the other processes (rank 0 hosts the store). Collectives that wait longer
  // than `timeout` for a peer fail instead of hanging.
  explicit DataParallel(const DistributedEnv& env, std::chrono::milliseconds timeout = std::chrono::minutes(10));
  ~DataParallel();

  int64_t rank() const { return env_.rank; }
  int64_t world_size() const { return env_.world_size; }
  bool is_main() const { return env_.rank == 0; }

  // Replaces every gradient with its mean over all processes; parameters are packed into
  // buckets of about `bucket_bytes` so that each bucket is one all-reduce.
  void average_gradients(const std::vector<torch::Tensor>& parameters, int64_t bucket_bytes = 25 << 20);
  // Sums `values` (any device) over all processes, in place.
  void sum(torch::Tensor& values);
  // Waits until every process reaches the same call.
  void barrier();
  // Strings through the store: every rank publishes under its own key; any rank may fetch.
  void publish(const std::string& key, const std::string& value);
  std::string fetch(const std::string& key);

 private:
  struct Engine;
  DistributedEnv env_;
  std::unique_ptr<Engine> engine_;
};

}  // namespace qrobust::parallel
