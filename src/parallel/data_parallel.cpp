#include "parallel/data_parallel.h"

#include <cstdlib>

#include "util/errors.h"

#ifdef QROBUST_DISTRIBUTED
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#endif

namespace qrobust::parallel {
namespace {

std::optional<std::string> variable(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr ? std::optional<std::string>(value) : std::nullopt;
}

int64_t integer_variable(const char* name, std::optional<int64_t> fallback) {
  const auto text = variable(name);
  if (!text) {
    if (fallback) return *fallback;
    throw UsageError(std::string("distributed launch: ") + name + " is not set (WORLD_SIZE > 1 needs RANK, MASTER_ADDR, MASTER_PORT)");
  }
  try {
    size_t used = 0;
    const int64_t value = std::stoll(*text, &used);
    if (used == text->size() && value >= 0) return value;
  } catch (const std::exception&) {
  }
  throw UsageError(std::string("distributed launch: ") + name + " must be a non-negative integer, got \"" + *text + "\"");
}

}  // namespace

std::optional<DistributedEnv> distributed_env() {
  const int64_t world_size = integer_variable("WORLD_SIZE", 1);
  if (world_size <= 1) return std::nullopt;
  DistributedEnv env;
  env.world_size = world_size;
  env.rank = integer_variable("RANK", std::nullopt);
  if (env.rank >= world_size)
    throw UsageError("distributed launch: RANK " + std::to_string(env.rank) + " is not below WORLD_SIZE " + std::to_string(world_size));
  env.local_rank = integer_variable("LOCAL_RANK", env.rank);
  env.master_addr = variable("MASTER_ADDR").value_or("");
  if (env.master_addr.empty()) throw UsageError("distributed launch: MASTER_ADDR is not set");
  env.master_port = integer_variable("MASTER_PORT", std::nullopt);
  if (env.master_port < 1 || env.master_port > 65535)
    throw UsageError("distributed launch: MASTER_PORT must be in 1..65535, got " + std::to_string(env.master_port));
  return env;
}

#ifdef QROBUST_DISTRIBUTED

struct DataParallel::Engine {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> group;
};

namespace {

// A collective's failure names this process and says what it usually means.
template <class Call>
void collective(int64_t rank, const std::string& what, Call&& call,
                const char* likely_cause = "another process exited, was killed or stopped answering") {
  try {
    call();
  } catch (const std::exception& e) {  // c10::Error, or Gloo's own I/O exceptions
    throw RuntimeFailure("rank " + std::to_string(rank) + ": " + what + " failed; " + likely_cause + " (" +
                         first_line(e.what()) + ")");
  }
}

}  // namespace

DataParallel::DataParallel(const DistributedEnv& env, std::chrono::milliseconds timeout)
    : env_(env), engine_(std::make_unique<Engine>()) {
  const std::string address = env.master_addr + ":" + std::to_string(env.master_port);
  collective(env.rank, "joining the process group at " + address, [&] {
    // Under torchrun the agent already serves a store on MASTER_PORT: every worker is a client
    // and keys live under the restart attempt's prefix, as torch.distributed does.
    const char* agent_store = std::getenv("TORCHELASTIC_USE_AGENT_STORE");
    const bool use_agent_store = agent_store != nullptr && std::string(agent_store) == "True";
    c10d::TCPStoreOptions options;
    options.port = static_cast<std::uint16_t>(env.master_port);
    options.isServer = env.rank == 0 && !use_agent_store;
    options.numWorkers = static_cast<std::size_t>(env.world_size);
    options.waitWorkers = !use_agent_store;
    options.timeout = timeout;
    auto tcp_store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, options);
    if (use_agent_store) {
      const char* attempt = std::getenv("TORCHELASTIC_RESTART_COUNT");
      engine_->store = c10::make_intrusive<c10d::PrefixStore>(
          std::string("/worker/attempt_") + (attempt != nullptr ? attempt : "0"), tcp_store);
    } else {
      engine_->store = tcp_store;
    }
    auto group_options = c10d::ProcessGroupGloo::Options::create(timeout);
    group_options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(env.master_addr == "localhost" ? "127.0.0.1" : env.master_addr));
    engine_->group = c10::make_intrusive<c10d::ProcessGroupGloo>(engine_->store, static_cast<int>(env.rank),
                                                                 static_cast<int>(env.world_size), group_options);
  }, "is MASTER_PORT free on rank 0 and reachable from the others, and did every rank start?");
}

DataParallel::~DataParallel() = default;

void DataParallel::average_gradients(const std::vector<torch::Tensor>& parameters, int64_t bucket_bytes) {
  std::vector<torch::Tensor> bucket;
  int64_t bytes = 0;
  auto flush = [&] {
    if (bucket.empty()) return;
    std::vector<torch::Tensor> grads;
    for (const auto& p : bucket) grads.push_back(p.grad().flatten());
    // Gloo reduces CPU tensors; gradients on another device travel through the host.
    std::vector<torch::Tensor> flat{torch::cat(grads).cpu()};
    collective(env_.rank, "the gradient all-reduce", [&] { engine_->group->allreduce(flat)->wait(); });
    flat[0].div_(static_cast<double>(env_.world_size));
    int64_t offset = 0;
    for (const auto& p : bucket) {
      const int64_t n = p.grad().numel();
      p.mutable_grad().copy_(flat[0].narrow(0, offset, n).view_as(p.grad()));
      offset += n;
    }
    bucket.clear();
    bytes = 0;
  };
  for (const auto& p : parameters) {
    if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);
    bucket.push_back(p);
    bytes += p.grad().numel() * static_cast<int64_t>(p.grad().element_size());
    if (bytes >= bucket_bytes) flush();
  }
  flush();
}

void DataParallel::sum(torch::Tensor& values) {
  std::vector<torch::Tensor> host{values.detach().cpu().contiguous()};
  collective(env_.rank, "an all-reduce", [&] { engine_->group->allreduce(host)->wait(); });
  values.copy_(host[0]);
}

void DataParallel::barrier() {
  collective(env_.rank, "a barrier", [&] { engine_->group->barrier()->wait(); });
}

void DataParallel::publish(const std::string& key, const std::string& value) {
  collective(env_.rank, "publishing to the store", [&] {
    engine_->store->set(key, std::vector<uint8_t>(value.begin(), value.end()));
  });
}

std::string DataParallel::fetch(const std::string& key) {
  std::vector<uint8_t> bytes;
  collective(env_.rank, "reading the store", [&] { bytes = engine_->store->get(key); });
  return std::string(bytes.begin(), bytes.end());
}

#else

struct DataParallel::Engine {};

DataParallel::DataParallel(const DistributedEnv& env, std::chrono::milliseconds) : env_(env) {
  throw UsageError("WORLD_SIZE is " + std::to_string(env.world_size) +
                   " but this qrobust was built without c10d Gloo (QROBUST_DISTRIBUTED is off)");
}
DataParallel::~DataParallel() = default;
void DataParallel::average_gradients(const std::vector<torch::Tensor>&, int64_t) {}
void DataParallel::sum(torch::Tensor&) {}
void DataParallel::barrier() {}
void DataParallel::publish(const std::string&, const std::string&) {}
std::string DataParallel::fetch(const std::string&) { return {}; }

#endif

}  // namespace qrobust::parallel
