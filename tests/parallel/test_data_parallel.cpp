// Data parallelism over c10d Gloo on loopback: worker processes are this test binary (a hidden
// test case) or the qrobust binary, launched with torchrun's environment variables.
#include <catch2/catch.hpp>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "parallel/data_parallel.h"
#include "test_support.h"
#include "util/atomic_file.h"
#include "util/errors.h"

extern char** environ;

using namespace qrobust;

namespace {

constexpr int64_t kBatch = 8;  // per process
constexpr int kSteps = 3;

// A model without batch norm, so that two shards of B give exactly the gradient of one batch of 2B.
torch::nn::Sequential tiny_model() {
  torch::manual_seed(11);
  return torch::nn::Sequential(torch::nn::Conv2d(torch::nn::Conv2dOptions(3, 4, 3)), torch::nn::ReLU(),
                               torch::nn::Flatten(), torch::nn::Linear(4 * 6 * 6, 5));
}

// Step s's global batch of 2B images.
std::pair<torch::Tensor, torch::Tensor> global_batch(int step) {
  auto generator = at::detail::createCPUGenerator(static_cast<uint64_t>(100 + step));
  return {torch::randn({2 * kBatch, 3, 8, 8}, generator), torch::randint(0, 5, {2 * kBatch}, generator, torch::kLong)};
}

// Trains `kSteps` plain SGD steps on images [first, first + count) of each global batch.
torch::nn::Sequential train_steps(int64_t first, int64_t count, parallel::DataParallel* parallel) {
  auto model = tiny_model();
  torch::optim::SGD optimizer(model->parameters(), torch::optim::SGDOptions(0.1).momentum(0.9));
  for (int step = 0; step < kSteps; ++step) {
    const auto [images, targets] = global_batch(step);
    optimizer.zero_grad();
    torch::nn::functional::cross_entropy(model->forward(images.narrow(0, first, count)), targets.narrow(0, first, count))
        .backward();
    if (parallel) parallel->average_gradients(model->parameters(), /*bucket_bytes=*/256);  // several buckets
    optimizer.step();
  }
  return model;
}

int free_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address));
  socklen_t length = sizeof(address);
  getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  close(fd);
  return ntohs(address.sin_port);
}

// Starts `program args` with RANK/WORLD_SIZE/MASTER_* added to the environment (and any
// `extra` variables); output goes to `log`.
pid_t launch(const std::vector<std::string>& command, int rank, int world_size, int port,
             const std::vector<std::string>& extra, const std::string& log) {
  std::vector<std::string> variables = {"RANK=" + std::to_string(rank), "LOCAL_RANK=" + std::to_string(rank),
                                        "WORLD_SIZE=" + std::to_string(world_size), "MASTER_ADDR=127.0.0.1",
                                        "MASTER_PORT=" + std::to_string(port)};
  variables.insert(variables.end(), extra.begin(), extra.end());
  for (char** e = environ; *e != nullptr; ++e) variables.emplace_back(*e);
  std::vector<char*> env, argv;
  for (auto& v : variables) env.push_back(v.data());
  env.push_back(nullptr);
  std::vector<std::string> args = command;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  pid_t pid = 0;
  REQUIRE(posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), env.data()) == 0);
  posix_spawn_file_actions_destroy(&actions);
  return pid;
}

// The exit code, or -1 if the process is still running after `timeout` (it is then killed).
int wait_for(pid_t pid, std::chrono::seconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  while (waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::vector<torch::Tensor> parameters_of(torch::nn::Sequential& model) { return model->parameters(); }

}  // namespace

TEST_CASE("the torchrun environment is read, and mistakes in it are named") {
  auto with = [](std::vector<std::pair<const char*, const char*>> values) {
    for (const char* name : {"RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"}) unsetenv(name);
    for (auto [name, value] : values) setenv(name, value, 1);
  };
  with({});
  CHECK(!parallel::distributed_env());
  with({{"WORLD_SIZE", "1"}});
  CHECK(!parallel::distributed_env());
  with({{"WORLD_SIZE", "2"}, {"RANK", "1"}, {"MASTER_ADDR", "10.0.0.2"}, {"MASTER_PORT", "29400"}});
  const auto env = parallel::distributed_env();
  REQUIRE(env);
  CHECK(env->rank == 1);
  CHECK(env->local_rank == 1);
  CHECK(env->master_addr == "10.0.0.2");
  with({{"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "1"}});
  CHECK_THROWS_WITH(parallel::distributed_env(), Catch::Contains("RANK is not set"));
  with({{"WORLD_SIZE", "2"}, {"RANK", "2"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "1"}});
  CHECK_THROWS_WITH(parallel::distributed_env(), Catch::Contains("RANK 2 is not below WORLD_SIZE 2"));
  with({{"WORLD_SIZE", "two"}});
  CHECK_THROWS_WITH(parallel::distributed_env(), Catch::Contains("WORLD_SIZE must be a non-negative integer, got \"two\""));
  with({{"WORLD_SIZE", "2"}, {"RANK", "0"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "70000"}});
  CHECK_THROWS_WITH(parallel::distributed_env(), Catch::Contains("MASTER_PORT must be in 1..65535"));
  with({});
}

#ifdef QROBUST_DISTRIBUTED

// Run by the test below as each of two worker processes.
TEST_CASE("data-parallel worker", "[.ddp-worker]") {
  const auto env = parallel::distributed_env();
  REQUIRE(env);
  parallel::DataParallel parallel(*env, std::chrono::seconds(60));
  auto model = train_steps(parallel.rank() * kBatch, kBatch, &parallel);
  if (parallel.is_main()) torch::save(parameters_of(model), std::getenv("QROBUST_DDP_OUT"));
}

TEST_CASE("two processes with batch B end with the weights of one process with batch 2B") {
  testing::TempDir dir;
  const int port = free_port();
  const std::vector<std::string> worker = {"/proc/self/exe", "[ddp-worker]"};
  const std::vector<std::string> out = {"QROBUST_DDP_OUT=" + dir.file("weights.pt")};
  const pid_t rank0 = launch(worker, 0, 2, port, out, dir.file("rank0.log"));
  const pid_t rank1 = launch(worker, 1, 2, port, out, dir.file("rank1.log"));
  const int status0 = wait_for(rank0, std::chrono::seconds(120)), status1 = wait_for(rank1, std::chrono::seconds(120));
  INFO(util::read_file(dir.file("rank0.log")) << util::read_file(dir.file("rank1.log")));
  REQUIRE(status0 == 0);
  REQUIRE(status1 == 0);
  std::vector<torch::Tensor> distributed;
  torch::load(distributed, dir.file("weights.pt"));
  auto single = train_steps(0, 2 * kBatch, nullptr);
  const auto reference = parameters_of(single);
  REQUIRE(distributed.size() == reference.size());
  for (size_t i = 0; i < reference.size(); ++i) {
    INFO("parameter " << i);
    CHECK(((distributed[i] - reference[i]).norm() / reference[i].norm()).item<double>() < 1e-5);
  }
  // The steps did move the weights: equality is not the initialization's.
  auto initial = tiny_model();
  CHECK(((initial->parameters()[0] - reference[0]).norm() / reference[0].norm()).item<double>() > 1e-3);
}

TEST_CASE("qrobust train on two processes: rank 0 writes the run, a killed rank stops the other with an error") {
  testing::TempDir data, dir;
  testing::write_cifar10(data.path(), 64);
  auto config = testing::tiny_config(data.path(), 1);
  const std::string yaml = config::to_yaml(config);
  testing::write_bytes(dir.file("tiny.yaml"), yaml);
  const std::vector<std::string> train = {QROBUST_BINARY, "train", "--config", dir.file("tiny.yaml"), "--out", dir.file("run")};
  {
    const int port = free_port();
    const pid_t rank0 = launch(train, 0, 2, port, {}, dir.file("rank0.log"));
    const pid_t rank1 = launch(train, 1, 2, port, {}, dir.file("rank1.log"));
    CHECK(wait_for(rank0, std::chrono::seconds(120)) == 0);
    CHECK(wait_for(rank1, std::chrono::seconds(120)) == 0);
    CHECK(std::filesystem::exists(dir.file("run/metrics.json")));
    CHECK(std::filesystem::exists(dir.file("run/checkpoint.pt")));
    CHECK(util::read_file(dir.file("rank1.log")).find("training tiny") == std::string::npos);  // rank 1 is quiet
  }
  {
    // A sweep shared out over two processes gives the rows of a sweep in one.
    const std::vector<std::string> sweep = {QROBUST_BINARY, "sweep-bits", "--run", dir.file("run"), "--weight-bits", "8,4,3",
                                            "--act-bits", "8,4,3"};
    auto with_out = [&](const std::string& out) {
      auto command = sweep;
      command.insert(command.end(), {"--out", out});
      return command;
    };
    const int port = free_port();
    const pid_t rank0 = launch(with_out(dir.file("shared/sweep.json")), 0, 2, port, {}, dir.file("sweep0.log"));
    const pid_t rank1 = launch(with_out(dir.file("shared/sweep.json")), 1, 2, port, {}, dir.file("sweep1.log"));
    CHECK(wait_for(rank0, std::chrono::seconds(120)) == 0);
    CHECK(wait_for(rank1, std::chrono::seconds(120)) == 0);
    const pid_t alone = launch(with_out(dir.file("alone/sweep.json")), 0, 1, port, {}, dir.file("alone.log"));
    CHECK(wait_for(alone, std::chrono::seconds(120)) == 0);
    const auto shared = nlohmann::json::parse(util::read_file(dir.file("shared/sweep.json")))["rows"];
    const auto single = nlohmann::json::parse(util::read_file(dir.file("alone/sweep.json")))["rows"];
    REQUIRE(shared.size() == 10);
    for (size_t i = 0; i < shared.size(); ++i) {
      CHECK(shared[i]["config"] == single[i]["config"]);
      CHECK(shared[i]["accuracy"].get<double>() == Approx(single[i]["accuracy"].get<double>()));
      CHECK(shared[i]["loss"].get<double>() == Approx(single[i]["loss"].get<double>()));
    }
  }
  {
    const std::vector<std::string> long_train = {QROBUST_BINARY, "train", "--config", dir.file("tiny.yaml"), "--out",
                                                 dir.file("long"), "--set", "train.epochs=1000"};
    const int port = free_port();
    const pid_t rank0 = launch(long_train, 0, 2, port, {}, dir.file("long0.log"));
    const pid_t rank1 = launch(long_train, 1, 2, port, {}, dir.file("long1.log"));
    // Kill rank 1 once training is under way (rank 0 has logged an epoch).
    for (int i = 0; i < 600 && util::read_file(dir.file("long0.log")).find("epoch 1/") == std::string::npos; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    kill(rank1, SIGKILL);
    waitpid(rank1, nullptr, 0);
    const auto killed_at = std::chrono::steady_clock::now();
    const int status = wait_for(rank0, std::chrono::seconds(60));
    const auto log = util::read_file(dir.file("long0.log"));
    INFO(log);
    CHECK(status == 1);
    CHECK(std::chrono::steady_clock::now() - killed_at < std::chrono::seconds(30));
    CHECK_THAT(log, Catch::Contains("rank 0: ") && Catch::Contains("another process exited, was killed or stopped answering"));
  }
}

TEST_CASE("qrobust train runs under torchrun, with the agent's store", "[torchrun]") {
  if (std::system("torchrun --help > /dev/null 2>&1") != 0) {
    WARN("no torchrun (Debian: python3-torch): not checked");
    return;
  }
  testing::TempDir data, dir;
  testing::write_cifar10(data.path(), 64);
  testing::write_bytes(dir.file("tiny.yaml"), config::to_yaml(testing::tiny_config(data.path(), 1)));
  // --redirects/--tee 1: Debian's torchrun 1.13 on Python 3.11 fails with its default of 0. The
  // timeout only bounds a hang: on a loaded machine torchrun's own start takes minutes.
  const std::string command = "timeout 300 torchrun --nproc_per_node 2 --master_port " + std::to_string(free_port()) +
                              " --redirects 1 --tee 1 --no_python " + QROBUST_BINARY + " train --config " +
                              dir.file("tiny.yaml") + " --out " + dir.file("run") + " > " + dir.file("log") + " 2>&1";
  const int status = std::system(command.c_str());
  INFO(util::read_file(dir.file("log")));
  CHECK(status == 0);
  CHECK(std::filesystem::exists(dir.file("run/metrics.json")));
}

#endif
