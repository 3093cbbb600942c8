// Crash safety with real processes and real signals: a checkpoint writer SIGKILLed at random
// moments, a training run stopped by SIGINT from another process, and writes into a directory
// that refuses them. The children run hidden test cases of this same binary ("[.crash_child]"),
// started by fork + exec so that they begin with fresh threads (oneTBB does not survive a fork).
#include <fcntl.h>
#include <linux/fs.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <catch2/catch.hpp>

#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "autograd/io/safetensors.hpp"
#include "autograd/ops.hpp"
#include "nn/activation.hpp"
#include "nn/checkpoint.hpp"
#include "nn/linear.hpp"
#include "nn/optim/adam.hpp"
#include "nn/sequential.hpp"
#include "tests/temp_dir.hpp"
#include "trainers/trainer.hpp"

namespace fs = std::filesystem;
using dpm::testing::TempDir;
using namespace dpm;

namespace {

constexpr const char* kChildDirVariable = "DPM_CRASH_CHILD_DIR";
constexpr const char* kWriterChild = "crash child: checkpoint writer";
constexpr const char* kTrainerChild = "crash child: training run";

// ---------------------------------------------------------------------------------------------
// Child processes

// Starts this test binary running one hidden test case, with kChildDirVariable = dir and its
// stdout (Catch2's report) discarded. Everything exec needs is prepared before fork: after a
// fork only async-signal-safe calls are allowed.
pid_t start_child(const std::string& test_case, const fs::path& dir) {
  std::string exe = fs::read_symlink("/proc/self/exe").string();
  std::vector<std::string> env_strings;
  for (char** e = environ; *e; ++e)
    if (std::strncmp(*e, kChildDirVariable, std::strlen(kChildDirVariable)) != 0)
      env_strings.emplace_back(*e);
  env_strings.push_back(std::string(kChildDirVariable) + "=" + dir.string());
  std::vector<char*> envp, argv = {exe.data(), const_cast<char*>(test_case.c_str()), nullptr};
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    int devnull = ::open("/dev/null", O_WRONLY);
    if (devnull >= 0) ::dup2(devnull, STDOUT_FILENO);
    ::execve(exe.c_str(), argv.data(), envp.data());
    ::_exit(127);
  }
  return pid;
}

int wait_for(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) REQUIRE(errno == EINTR);
  return status;
}

// Polls until `ready` holds or `timeout` passes (the sanitizer builds are slow to start).
template <typename Ready>
bool wait_until(Ready ready, std::chrono::seconds timeout = std::chrono::seconds(120)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!ready()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

fs::path child_dir() {
  const char* dir = std::getenv(kChildDirVariable);
  REQUIRE(dir != nullptr);  // only the parent tests below start these
  return dir;
}

// ---------------------------------------------------------------------------------------------
// The checkpoint writer: generation g is one 16 MB tensor whose element i is g + i / 2^20.

constexpr int64_t kCheckpointFloats = int64_t{4} << 20;

float checkpoint_value(int64_t generation, int64_t i) {
  return static_cast<float>(generation) + static_cast<float>(i >> 20);
}

// The generation a checkpoint holds, after checking every element against it.
int64_t checked_generation(const std::string& path) {
  SafeTensors file = read_safetensors(path);
  int64_t generation = std::stoll(file.metadata.at("generation"));
  const Tensor& w = file.get("w");
  REQUIRE(w.numel() == kCheckpointFloats);
  int64_t wrong = 0;
  for (int64_t i = 0; i < w.numel(); ++i) wrong += w.data()[i] != checkpoint_value(generation, i);
  CHECK(wrong == 0);
  return generation;
}

// ---------------------------------------------------------------------------------------------
// The training run: a small regression MLP, 300 steps, no validation (so nothing but the
// weights and the streams decides the outcome).

constexpr int64_t kTrainingSteps = 300;

// Marks the run as started once a few steps are done (so the SIGINT handler is in place), and
// paces the child so that a signal lands mid-run; neither changes what is computed.
struct Pacer : train::Callback {
  fs::path started_marker;
  std::chrono::milliseconds per_step{0};
  std::string name() const override { return "pacer"; }
  void on_step(const train::StepInfo& info, nlohmann::json&) override {
    if (info.step == 5 && !started_marker.empty()) std::ofstream(started_marker) << "started\n";
    std::this_thread::sleep_for(per_step);
  }
};

struct TrainingRun {
  std::shared_ptr<nn::Sequential> model;
  std::unique_ptr<optim::Adam> optimizer;
  std::unique_ptr<train::Trainer> trainer;
};

TrainingRun make_training_run(const fs::path& out_dir) {
  Rng rng(11);
  TrainingRun run;
  run.model = std::make_shared<nn::Sequential>(std::initializer_list<std::shared_ptr<nn::Layer>>{
      std::make_shared<nn::Linear>(1, 32, rng), std::make_shared<nn::SiLU>(),
      std::make_shared<nn::Linear>(32, 1, rng)});
  run.optimizer = std::make_unique<optim::Adam>(run.model->arena(), optim::AdamOptions{.lr = 1e-2});
  Tensor data = Tensor::empty({256, 2});
  for (int64_t i = 0; i < 256; ++i) {
    double x = rng.uniform(-1, 1);
    data.at({i, 0}) = static_cast<float>(x);
    data.at({i, 1}) = static_cast<float>(std::sin(3 * x));
  }
  train::TrainerOptions options;
  options.batch_size = 32;
  options.max_steps = kTrainingSteps;
  options.resume_every = 0;  // only the SIGINT save
  options.out_dir = out_dir.string();
  options.progress = false;
  auto model = run.model;
  train::LossFn loss = [model](const datasets::Batch& batch, Rng& noise) {
    Variable xy(batch.data);
    Variable x = slice(xy, 1, 0, 1);
    Variable noisy = x + Variable(randn(x.shape(), noise, 0.0f, 0.01f));
    return mse_loss(model->forward(noisy), slice(xy, 1, 1, 2));
  };
  run.trainer =
      std::make_unique<train::Trainer>(*run.model, *run.optimizer, loss, data, Tensor(), options);
  return run;
}

std::vector<float> weights(TrainingRun& run) {
  return run.model->arena().values().to_vector();
}

// ---------------------------------------------------------------------------------------------
// Unwritable destinations

std::string save_error(const std::string& path, const nn::Module& model) {
  try {
    nn::save_state(path, model, {{"generation", "2"}});
  } catch (const SafetensorsError& e) {
    return e.what();
  }
  return "(no error)";
}

// Makes `dir` refuse new files even for root: the immutable attribute where the filesystem and
// the capabilities allow it, permission bits otherwise (they bind only non-root users). Returns
// false when neither works here; the destructor undoes it.
class ReadOnlyDirectory {
 public:
  explicit ReadOnlyDirectory(const fs::path& dir) : dir_(dir) {
    if (::geteuid() != 0) {
      fs::permissions(dir_, fs::perms::owner_read | fs::perms::owner_exec);
      mode_ = Mode::permissions;
      return;
    }
    int fd = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY);
    int flags = 0;
    if (fd >= 0 && ::ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0) {
      flags |= FS_IMMUTABLE_FL;
      if (::ioctl(fd, FS_IOC_SETFLAGS, &flags) == 0) mode_ = Mode::immutable;
    }
    if (fd >= 0) ::close(fd);
  }
  ~ReadOnlyDirectory() {
    if (mode_ == Mode::permissions) fs::permissions(dir_, fs::perms::owner_all);
    if (mode_ == Mode::immutable) {
      int fd = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY);
      int flags = 0;
      if (fd >= 0 && ::ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0) {
        flags &= ~FS_IMMUTABLE_FL;
        ::ioctl(fd, FS_IOC_SETFLAGS, &flags);
      }
      if (fd >= 0) ::close(fd);
    }
  }
  ReadOnlyDirectory(const ReadOnlyDirectory&) = delete;
  ReadOnlyDirectory& operator=(const ReadOnlyDirectory&) = delete;
  bool active() const { return mode_ != Mode::none; }

 private:
  enum class Mode { none, permissions, immutable };
  fs::path dir_;
  Mode mode_ = Mode::none;
};

std::string file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Hidden test cases: the children.

TEST_CASE("crash child: checkpoint writer", "[.crash_child]") {
  const std::string path = (child_dir() / "checkpoint.safetensors").string();
  // Continues after the generation on disk, so the parent sees progress across restarts.
  int64_t generation = fs::exists(path) ? checked_generation(path) + 1 : 0;
  Tensor w = Tensor::empty({kCheckpointFloats});
  for (;; ++generation) {  // until SIGKILL
    for (int64_t i = 0; i < w.numel(); ++i) w.data()[i] = checkpoint_value(generation, i);
    write_safetensors(path, {{"w", w}}, {{"generation", std::to_string(generation)}});
  }
}

TEST_CASE("crash child: training run", "[.crash_child]") {
  const fs::path dir = child_dir();
  TrainingRun run = make_training_run(dir);
  auto pacer = std::make_shared<Pacer>();
  pacer->started_marker = dir / "started";
  pacer->per_step = std::chrono::milliseconds(3);
  run.trainer->add_callback(pacer);
  train::TrainResult result = run.trainer->fit();
  std::ofstream(dir / "result") << train::stop_reason_name(result.reason) << ' ' << result.steps
                                << '\n';
  CHECK(result.reason == train::StopReason::interrupted);
}

// ---------------------------------------------------------------------------------------------
// The tests.

TEST_CASE("a checkpoint writer killed at random moments never leaves a torn checkpoint",
          "[crash]") {
  TempDir tmp("dpm_crash_kill");
  const std::string path = tmp.file("checkpoint.safetensors");
  std::mt19937_64 random(20240617);
  int64_t last_generation = -1;
  ino_t last_inode = 0;
  auto inode = [&] {
    struct stat info {};
    return ::stat(path.c_str(), &info) == 0 ? info.st_ino : ino_t{0};
  };
  for (int round = 0; round < 6; ++round) {
    pid_t child = start_child(kWriterChild, tmp.path);
    // Let the child commit at least one new checkpoint (every commit renames a new file into
    // place), then kill it somewhere in its loop.
    REQUIRE(wait_until([&] { return inode() != last_inode && inode() != 0; }));
    std::this_thread::sleep_for(std::chrono::microseconds(random() % 400'000));
    REQUIRE(::kill(child, SIGKILL) == 0);
    int status = wait_for(child);
    REQUIRE(WIFSIGNALED(status));
    CHECK(WTERMSIG(status) == SIGKILL);

    INFO("round " << round);
    int64_t generation = checked_generation(path);
    CHECK(generation > last_generation);
    last_generation = generation;
    last_inode = inode();
    // Besides the checkpoint, only the killed writers' temporary files may be left.
    for (const auto& entry : fs::directory_iterator(tmp.path)) {
      const std::string name = entry.path().filename().string();
      INFO(name);
      CHECK(
          (name == "checkpoint.safetensors" || name.rfind("checkpoint.safetensors.tmp.", 0) == 0));
    }
  }
}

TEST_CASE("SIGINT from another process saves a resume file that continues bitwise", "[crash]") {
  TrainingRun straight = make_training_run("");
  straight.trainer->fit();
  const std::vector<float> expected = weights(straight);

  std::mt19937_64 random(77);
  for (int round = 0; round < 3; ++round) {
    TempDir tmp("dpm_crash_sigint");
    pid_t child = start_child(kTrainerChild, tmp.path);
    REQUIRE(wait_until([&] { return fs::exists(tmp.path / "started"); }));
    std::this_thread::sleep_for(std::chrono::milliseconds(random() % 300));
    REQUIRE(::kill(child, SIGINT) == 0);
    int status = wait_for(child);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);

    std::string reason;
    int64_t steps = 0;
    std::ifstream(tmp.path / "result") >> reason >> steps;
    INFO("round " << round << ": the child stopped with " << reason << " after " << steps
                  << " steps");
    CHECK(reason == "interrupted");
    CHECK(steps >= 5);
    CHECK(steps < kTrainingSteps);

    TrainingRun resumed = make_training_run(tmp.path / "resumed");
    resumed.trainer->resume((tmp.path / "resume.safetensors").string());
    CHECK(resumed.trainer->step() == steps);
    train::TrainResult result = resumed.trainer->fit();
    CHECK(result.steps == kTrainingSteps);
    std::vector<float> got = weights(resumed);
    REQUIRE(got.size() == expected.size());
    CHECK(std::memcmp(got.data(), expected.data(), got.size() * sizeof(float)) == 0);
  }
}

TEST_CASE("a checkpoint that cannot be written fails clearly and keeps the previous one",
          "[crash]") {
  TempDir tmp("dpm_crash_unwritable");
  TrainingRun run = make_training_run("");
  const std::string path = tmp.file("model.safetensors");
  nn::save_state(path, *run.model, {{"generation", "1"}});
  const std::string previous = file_bytes(path);
  run.model->arena().values().fill_(0.5f);  // the state a failed save would have written

  SECTION("a directory that refuses new files") {
    ReadOnlyDirectory read_only(tmp.path);
    if (!read_only.active()) {
      WARN("running as root without the immutable attribute: covered by the other sections");
    } else {
      CHECK_THAT(save_error(path, *run.model), Catch::Contains("cannot create") &&
                                                   Catch::Contains(tmp.path.string()) &&
                                                   Catch::Contains("not writable"));
    }
  }
  SECTION("a write that fails midway (the file size limit standing in for a full disk)") {
    rlimit saved{};
    REQUIRE(::getrlimit(RLIMIT_FSIZE, &saved) == 0);
    rlimit small = saved;
    small.rlim_cur = 512;                              // the header fits, the weights do not
    auto old_handler = std::signal(SIGXFSZ, SIG_IGN);  // write() returns EFBIG instead
    REQUIRE(::setrlimit(RLIMIT_FSIZE, &small) == 0);
    std::string message = save_error(path, *run.model);
    ::setrlimit(RLIMIT_FSIZE, &saved);
    std::signal(SIGXFSZ, old_handler);
    CHECK_THAT(message, Catch::Contains(path) && Catch::Contains("File too large"));
  }
  SECTION("a destination whose directory is a regular file") {
    const std::string blocked = path + "/model.safetensors";
    CHECK_THAT(save_error(blocked, *run.model),
               Catch::Contains(blocked) && Catch::Contains("Not a directory"));
  }

  CHECK(file_bytes(path) == previous);
  CHECK(read_safetensors(path).metadata.at("generation") == "1");
  for (const auto& entry : fs::directory_iterator(tmp.path))
    CHECK(entry.path().filename() == "model.safetensors");  // no temporary file left behind
}
