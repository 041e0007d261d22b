#include "compute_thread.h"

namespace tea {

ComputeThread::ComputeThread() : thread_([this] { Loop(); }) {}

ComputeThread::~ComputeThread() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

void ComputeThread::Run(const std::function<void()>& job) {
  std::unique_lock<std::mutex> lock(mutex_);
  job_ = &job;
  done_ = false;
  error_ = nullptr;
  wake_.notify_all();
  wake_.wait(lock, [this] { return done_; });
  job_ = nullptr;
  if (error_) std::rethrow_exception(error_);
}

void ComputeThread::Loop() {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    wake_.wait(lock, [this] { return stop_ || (job_ != nullptr && !done_); });
    if (stop_) return;
    const std::function<void()>* job = job_;
    lock.unlock();
    std::exception_ptr error;
    try {
      (*job)();
    } catch (...) {
      error = std::current_exception();
    }
    lock.lock();
    error_ = error;
    done_ = true;
    wake_.notify_all();
  }
}

}  // namespace tea
