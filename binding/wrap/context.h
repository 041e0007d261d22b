// Context: thin JS wrapper over one Scheduler (binding/core/scheduler.h) and its EventChannel. Requests are
// submitted and cancelled by id; results come back through the `onEvents` callback given to createContext.
//
// Threads: every method runs on the JS thread that created the context. The scheduler runs on its own thread.
#pragma once

#include <napi.h>

#include <memory>

#include "event_channel.h"
#include "handles.h"
#include "scheduler.h"

namespace tea {

class Context : public Napi::ObjectWrap<Context> {
 public:
  static Napi::Function Define(Napi::Env env);
  // Main thread: wraps a created llama_context; `model` is the JS Model it came from, kept alive by this context.
  static Napi::Object Create(Napi::Env env, ModelPtr model, llama_context* ctx, SchedulerOptions options, Napi::Object modelObject,
                             Napi::Function onEvents, std::unique_ptr<Speculation> speculation = nullptr);

  explicit Context(const Napi::CallbackInfo& info);
  ~Context() override;

 private:
  // generate(prompt: string, options: NativeGenerateOptions, stream: boolean): number  (the request id; options.lora:
  // [{ adapter: Lora, scale }] of this model, see lora.h)
  Napi::Value Generate(const Napi::CallbackInfo& info);
  // embed(texts: string[], normalize: boolean): number  (the request id)
  Napi::Value Embed(const Napi::CallbackInfo& info);
  // saveState(sequence: number, meta: string): number  (the request id; a 'state' event brings the file's bytes)
  Napi::Value SaveState(const Napi::CallbackInfo& info);
  // loadState(data: Buffer, sequence: number): number  (-1: an idle unreserved sequence; a 'state' event says which)
  Napi::Value LoadState(const Napi::CallbackInfo& info);
  // reserveSequence(): number  (a sequence only requests naming it use; ERR_QUEUE_FULL when none is left)
  Napi::Value ReserveSequence(const Napi::CallbackInfo& info);
  // releaseSequence(sequence: number): void
  Napi::Value ReleaseSequence(const Napi::CallbackInfo& info);
  // cancel(id: number): void  (unknown or finished ids are ignored)
  Napi::Value Cancel(const Napi::CallbackInfo& info);
  // info(): NativeContextInfo
  Napi::Value Info(const Napi::CallbackInfo& info);
  // dispose(): void  (idempotent; running requests finish with 'abort', queued ones fail with ERR_DISPOSED, and
  // their events are still delivered; returns once the scheduler thread has exited)
  Napi::Value Dispose(const Napi::CallbackInfo& info);
  // get disposed: boolean
  Napi::Value Disposed(const Napi::CallbackInfo& info);

  Scheduler& Live();
  void Shutdown();
  static void OnEnvCleanup(void* self);

  std::unique_ptr<EventChannel> channel_;
  std::unique_ptr<Scheduler> scheduler_;  // after channel_: destroyed first, so no event outlives the channel
  Napi::ObjectReference model_;
  uint64_t nextId_ = 1;
  bool embeddings_ = false;
  const llama_model* llamaModel_ = nullptr;  // what a request's LoRA adapters must have been loaded for
  napi_env env_ = nullptr;
  bool cleanupHook_ = false;
};

}  // namespace tea
