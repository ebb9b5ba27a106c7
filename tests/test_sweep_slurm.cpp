// scripts/slurm/: the generated job array runs every shard once and the merge collects them.
// The batch script is always checked and run as Slurm would run it (one array task after the
// other, SLURM_ARRAY_TASK_ID set); when Slurm (slurm-wlm, munge) is installed and we are root, a
// private single-node cluster is started and the array goes through sbatch for real.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "sweep_fixture.h"

namespace kvlab {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::run_command;
using testing::SweepDir;

json six_runs() {
  return {{"base", testing::tiny_passkey_base()},
          {"models", {testing::tiny_model()}},
          {"caches", {"full", {{"cache", "streaming"}, {"budget", 32}}, {{"cache", "h2o"}, {"budget", 32}}}},
          {"grid", {{"interval", {1, 3}}}}};
}

std::string script_dir() { return testing::source_dir() + "/scripts/slurm"; }

std::string submit(const SweepDir& d, const std::string& flags) {
  return "KVLAB_BIN=" + testing::bin_dir() + " " + script_dir() + "/submit_sweep.sh " + d.file() + " --results-dir " +
         d.results() + " " + flags;
}

struct BatchScript {
  std::map<std::string, std::string> sbatch;  // option -> value, from the #SBATCH lines
  std::string command;                        // the rest, joined
};

BatchScript parse_batch_script(const std::string& path) {
  BatchScript b;
  std::istringstream in(testing::read_file(path));
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("#SBATCH ", 0) == 0) {
      const std::string opt = line.substr(8);
      const size_t eq = opt.find('=');
      b.sbatch[opt.substr(0, eq)] = eq == std::string::npos ? "" : opt.substr(eq + 1);
    } else if (!line.empty() && line[0] != '#') {
      b.command += line + "\n";
    }
  }
  return b;
}

void expect_every_run_once(const SweepDir& d) {
  const std::vector<std::string> ids = testing::ids_of(d.lines());
  EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()), testing::id_set(d.listing()));
  EXPECT_EQ(ids.size(), std::set<std::string>(ids.begin(), ids.end()).size()) << "no run twice";
}

TEST(SweepSlurm, GeneratedArrayRunsEveryShardAsSlurmWould) {
  SweepDir d;
  d.write(six_runs());
  auto gen = run_command(submit(d, "--shards 3 --no-submit --partition debug --time 00:20:00 --max-parallel 2"));
  ASSERT_EQ(gen.exit_code, 0) << gen.err;
  const std::string sweep_sbatch = d.results() + "/slurm/sweep.sbatch",
                    merge_sbatch = d.results() + "/slurm/merge.sbatch";
  EXPECT_EQ(gen.out, sweep_sbatch + "\n" + merge_sbatch + "\n");

  const BatchScript b = parse_batch_script(sweep_sbatch);
  EXPECT_EQ(b.sbatch.at("--array"), "0-2%2");
  EXPECT_EQ(b.sbatch.at("--partition"), "debug");
  EXPECT_EQ(b.sbatch.at("--time"), "00:20:00");
  EXPECT_EQ(b.sbatch.at("--output"), d.results() + "/slurm/shard-%a.out");
  EXPECT_TRUE(b.sbatch.count("--requeue")) << "a requeued shard resumes";
  EXPECT_EQ(b.sbatch.count("--gres"), 0u);
  EXPECT_NE(b.command.find(testing::bin_dir() + "/kvlab-sweep " + d.file()), std::string::npos) << b.command;
  EXPECT_NE(b.command.find("--results-dir " + d.results()), std::string::npos) << b.command;
  EXPECT_NE(b.command.find("--shard \"${SLURM_ARRAY_TASK_ID}/3\""), std::string::npos) << b.command;
  const BatchScript m = parse_batch_script(merge_sbatch);
  EXPECT_NE(m.command.find("kvlab-sweep --merge " + d.results()), std::string::npos) << m.command;

  // As Slurm runs an array: the same script once per task id, with the task's environment.
  for (int task = 0; task < 3; task++) {
    auto r =
        run_command("env SLURM_ARRAY_JOB_ID=7 SLURM_ARRAY_TASK_ID=" + std::to_string(task) +
                    " SLURM_ARRAY_TASK_COUNT=3 SLURM_JOB_ID=" + std::to_string(70 + task) + " bash " + sweep_sbatch);
    ASSERT_EQ(r.exit_code, 0) << "task " << task << ": " << r.err;
    EXPECT_NE(r.err.find("in shard " + std::to_string(task) + "/3"), std::string::npos) << r.err;
    EXPECT_EQ(d.lines("results.shard-" + std::to_string(task) + "-of-3.jsonl").size(), 2u);
  }
  auto merged = run_command("bash " + merge_sbatch);
  ASSERT_EQ(merged.exit_code, 0) << merged.err;
  expect_every_run_once(d);
  // A shard run again (a requeue) and a second merge change nothing.
  ASSERT_EQ(run_command("env SLURM_ARRAY_TASK_ID=1 bash " + sweep_sbatch).exit_code, 0);
  ASSERT_EQ(run_command(script_dir() + "/merge_shards.sh " + d.results() + " --bin " + testing::bin_dir()).exit_code,
            0);
  expect_every_run_once(d);
  EXPECT_EQ(d.lines().size(), 6u);

  auto gpus = run_command(submit(d, "--shards 2 --no-submit --gpus-per-task 4"));
  ASSERT_EQ(gpus.exit_code, 0) << gpus.err;
  const BatchScript g = parse_batch_script(sweep_sbatch);
  EXPECT_EQ(g.sbatch.at("--gres"), "gpu:4");
  EXPECT_NE(g.command.find("--gpus auto"), std::string::npos) << "one worker per GPU Slurm grants";
}

TEST(SweepSlurm, BadSubmissionsQueueNothing) {
  SweepDir d;
  d.write(six_runs());
  EXPECT_EQ(run_command(submit(d, "--shards 0 --no-submit")).exit_code, 2);
  EXPECT_EQ(run_command(submit(d, "--no-submit")).exit_code, 2) << "--shards is required";
  auto missing =
      run_command("KVLAB_BIN=" + testing::bin_dir() + " " + script_dir() + "/submit_sweep.sh /no/such.json --shards 2");
  EXPECT_EQ(missing.exit_code, 2);
  json bad = six_runs();
  bad["caches"] = {"lacash"};
  d.write(bad);
  auto r = run_command(submit(d, "--shards 2 --no-submit"));
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("unknown cache policy"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(d.results() + "/slurm")) << "nothing written for a sweep kvlab-sweep refuses";
  d.write(six_runs());
  auto big = run_command(submit(d, "--shards 2 --no-submit -- --memory-limit 1MiB"));
  EXPECT_EQ(big.exit_code, 3) << "runs that cannot fit are refused before queueing: " << big.err;
}

// A single-node Slurm cluster of our own: munged, slurmctld and slurmd with private sockets,
// ports and state, stopped (by pid) when the test ends.
class PrivateSlurm {
 public:
  explicit PrivateSlurm(const std::string& dir) : dir_(dir) {}
  ~PrivateSlurm() {
    for (const char* name : {"slurmd", "slurmctld", "munged"}) {
      std::ifstream f(dir_ + "/" + name + ".pid");
      long pid = 0;
      if (f >> pid && pid > 1) kill(pid_t(pid), SIGTERM);
    }
  }
  // "" when it is up, else why not.
  std::string start() {
    char host[256] = {};
    gethostname(host, sizeof host - 1);
    std::string node(host);
    node = node.substr(0, node.find('.'));
    const int port = 20000 + int(getpid() % 20000);
    fs::create_directories(dir_ + "/state");
    fs::create_directories(dir_ + "/spool");
    {
      std::ifstream urandom("/dev/urandom", std::ios::binary);
      std::string key(256, '\0');
      urandom.read(key.data(), std::streamsize(key.size()));
      testing::write_file(dir_ + "/munge.key", key);
      fs::permissions(dir_ + "/munge.key", fs::perms::owner_read | fs::perms::owner_write);
    }
    std::string conf =
        "ClusterName=kvlabtest\nSlurmctldHost=" + node + "\nSlurmUser=root\nSlurmdUser=root\n" +
        "SlurmctldPort=" + std::to_string(port) + "\nSlurmdPort=" + std::to_string(port + 1) +
        "\nAuthType=auth/munge\nAuthInfo=socket=" + dir_ + "/munge.sock\nCredType=cred/munge\n" +
        "StateSaveLocation=" + dir_ + "/state\nSlurmdSpoolDir=" + dir_ + "/spool\n" + "SlurmctldPidFile=" + dir_ +
        "/slurmctld.pid\nSlurmdPidFile=" + dir_ + "/slurmd.pid\n" + "SlurmctldLogFile=" + dir_ +
        "/slurmctld.log\nSlurmdLogFile=" + dir_ + "/slurmd.log\n" +
        "ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\nJobAcctGatherType=jobacct_gather/none\n"
        "SchedulerType=sched/builtin\nSelectType=select/cons_tres\nSelectTypeParameters=CR_CPU\n"
        "ReturnToService=2\nJobCompType=jobcomp/none\nAccountingStorageType=accounting_storage/none\n"
        "MpiDefault=none\nNodeName=" +
        node + " CPUs=" + std::to_string(std::max(1u, std::thread::hardware_concurrency())) +
        " RealMemory=1000 State=UNKNOWN\nPartitionName=debug Nodes=" + node +
        " Default=YES MaxTime=INFINITE State=UP\n";
    testing::write_file(dir_ + "/slurm.conf", conf);
    setenv("SLURM_CONF", (dir_ + "/slurm.conf").c_str(), 1);
    auto munge = run_command("munged --force --socket=" + dir_ + "/munge.sock --key-file=" + dir_ + "/munge.key" +
                             " --pid-file=" + dir_ + "/munged.pid --log-file=" + dir_ +
                             "/munged.log --seed-file=" + dir_ + "/munged.seed");
    if (munge.exit_code != 0) return "munged: " + munge.err;
    if (auto r = run_command("slurmctld"); r.exit_code != 0) return "slurmctld: " + r.err;
    if (auto r = run_command("slurmd"); r.exit_code != 0) return "slurmd: " + r.err;
    for (int i = 0; i < 150; i++) {
      if (run_command("sinfo -h -o %t").out.find("idle") != std::string::npos) return "";
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    return "the node never became idle: " + run_command("sinfo; tail -n 5 " + dir_ + "/slurmd.log").out;
  }

 private:
  std::string dir_;
};

bool have(const char* program) { return run_command(std::string("command -v ") + program).exit_code == 0; }

TEST(SweepSlurm, ArrayRunsOnASingleNodeSlurmCluster) {
  for (const char* p : {"slurmctld", "slurmd", "munged", "sbatch", "squeue", "sinfo"})
    if (!have(p))
      GTEST_SKIP() << p
                   << " not found: install Debian's slurm-wlm and munge to run the array through real Slurm "
                      "(the batch script itself is tested above)";
  if (geteuid() != 0) GTEST_SKIP() << "a private slurmctld/slurmd needs root (SlurmdUser=root)";
  SweepDir d;
  d.write(six_runs());
  PrivateSlurm slurm(d.dir + "/slurm-cluster");
  if (std::string why = slurm.start(); !why.empty()) GTEST_SKIP() << "could not start a private Slurm: " << why;

  auto r = run_command(submit(d, "--shards 3"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("submitted array job"), std::string::npos) << r.out;
  bool drained = false;
  for (int i = 0; i < 900 && !drained; i++) {
    drained = run_command("squeue -h").out.empty();
    if (!drained) std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  ASSERT_TRUE(drained) << run_command("squeue").out;
  for (int task = 0; task < 3; task++)
    EXPECT_EQ(d.lines("results.shard-" + std::to_string(task) + "-of-3.jsonl").size(), 2u)
        << testing::read_file(d.results() + "/slurm/shard-" + std::to_string(task) + ".out");
  EXPECT_NE(testing::read_file(d.results() + "/slurm/merge.out").find("6 lines added"), std::string::npos);
  expect_every_run_once(d);
}

}  // namespace
}  // namespace kvlab
