// Context: JS wrapper over one llama_context (ContextHandle). Runs one operation at a time; the TypeScript layer
// queues calls, and a second concurrent call from elsewhere is rejected with ERR_BUSY rather than corrupting state.
#pragma once

#include <napi.h>

#include "handles.h"

namespace tea {

class Context : public Napi::ObjectWrap<Context> {
 public:
  static Napi::Function Define(Napi::Env env);
  // Main thread: wraps a created context; `model` is the JS Model it came from, kept alive by this context.
  static Napi::Object Create(Napi::Env env, ContextPtr handle, Napi::Object model);

  explicit Context(const Napi::CallbackInfo& info);

 private:
  // complete(prompt: string, options: NativeCompleteOptions, onChunk: ((text: string) => void) | null,
  //          abort?: AbortFlag): Promise<NativeCompletion>
  Napi::Value Complete(const Napi::CallbackInfo& info);
  // embed(texts: string[], normalize: boolean, abort?: AbortFlag): Promise<Float32Array[]>
  Napi::Value Embed(const Napi::CallbackInfo& info);
  // info(): { contextSize: number, batchSize: number, microBatchSize: number, embeddings: boolean, pooling: number }
  Napi::Value Info(const Napi::CallbackInfo& info);
  // dispose(): void  (idempotent; aborts a running operation, which frees the context when it returns)
  Napi::Value Dispose(const Napi::CallbackInfo& info);
  // get disposed: boolean
  Napi::Value Disposed(const Napi::CallbackInfo& info);

  // Main thread: the live handle, marked busy for a new operation. Throws ERR_DISPOSED or ERR_BUSY.
  ContextPtr Acquire();

  ContextPtr handle_;
  Napi::ObjectReference model_;
};

}  // namespace tea
