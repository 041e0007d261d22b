// EventChannel: the one path from a scheduler thread to JavaScript. Events pile up in a buffer; the first event
// after a delivery schedules one thread-safe-function call, which hands JavaScript everything that arrived until
// it runs, in one array (a fast model costs one JS call per wake-up, not one per token).
//
// Threads: Publish runs on any thread (the scheduler's, or the main thread for Cancel). Started, the Deliver
// callback and Close run on the JS thread that created the channel. The channel keeps the event loop alive only
// while requests are in flight (Started counts them up, terminal events count them down).
#pragma once

#include <napi.h>

#include <memory>
#include <mutex>
#include <vector>

#include "task.h"

namespace tea {

class EventChannel : public EventSink {
 public:
  // Main thread. `onEvents(events: NativeEvent[])` must not throw.
  EventChannel(Napi::Env env, Napi::Function onEvents);
  ~EventChannel() override;

  void Publish(std::vector<Event>&& events) override;
  // Main thread: a request was submitted.
  void Started();
  // Main thread: no more events will be published; releases the thread-safe function once queued calls ran.
  void Close();

 private:
  struct State {
    std::mutex mutex;
    std::vector<Event> pending;
    bool scheduled = false;
    int64_t inFlight = 0;  // main thread only
  };
  static void Deliver(Napi::Env env, Napi::Function onEvents, const std::shared_ptr<State>& state, Napi::ThreadSafeFunction tsfn);

  std::shared_ptr<State> state_ = std::make_shared<State>();
  Napi::ThreadSafeFunction tsfn_;
  Napi::Env env_;
  bool closed_ = false;
};

}  // namespace tea
