// ComputeThread: one long-lived thread per context that runs all of that context's llama.cpp work.
//
// Why: ggml's CPU backend uses OpenMP, which keeps a thread team per calling thread. Decoding from whichever
// libuv pool thread picks up the next operation creates a new team for each of them while the previous teams
// still spin, on the same cores (measured on 2 cores: generation 3-10x slower in some runs). One stable caller
// keeps one team, as in llama.cpp's own tools.
#pragma once

#include <condition_variable>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>

namespace tea {

class ComputeThread {
 public:
  ComputeThread();
  // Main thread (or wherever the owning handle is released): stops and joins the idle thread.
  ~ComputeThread();
  ComputeThread(const ComputeThread&) = delete;
  ComputeThread& operator=(const ComputeThread&) = delete;

  // Called from a libuv pool thread (a worker's Execute): runs `job` on the compute thread and blocks until it
  // is done, rethrowing what it threw. One job at a time: the context's busy flag guarantees it.
  void Run(const std::function<void()>& job);

 private:
  void Loop();  // the compute thread

  std::mutex mutex_;
  std::condition_variable wake_;
  const std::function<void()>* job_ = nullptr;
  bool done_ = false;
  bool stop_ = false;
  std::exception_ptr error_;
  std::thread thread_;  // last: starts after the members above exist
};

}  // namespace tea
