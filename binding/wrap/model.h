// Model: JS wrapper over one llama_model (ModelHandle). Created by ModelLoadWorker, never by `new` from JS.
#pragma once

#include <napi.h>

#include <map>
#include <memory>
#include <string>

#include "chat_template.h"
#include "handles.h"

struct common_chat_templates;

namespace tea {

// Parsed Jinja templates by source text (main thread only): parsing is far slower than rendering.
using TemplateCache = std::map<std::string, std::shared_ptr<common_chat_templates>>;

// What the load worker reads off the model on its thread, so the main thread never walks the metadata.
struct ModelInfo {
  std::string architecture;
  std::string name;
  std::string description;
  std::string chatTemplate;  // empty when the model has none
  bool hasChatTemplate = false;
  int32_t trainedContextLength = 0;
  int32_t embeddingLength = 0;
  int32_t layerCount = 0;
  int32_t vocabSize = 0;
  int32_t headCount = 0;
  int32_t headCountKv = 0;
  uint64_t parameterCount = 0;
  uint64_t sizeBytes = 0;
  int32_t bosToken = -1;
  int32_t eosToken = -1;
  bool hasEncoder = false;
  bool hasDecoder = true;
  bool isRecurrent = false;
  bool vocabOnly = false;
  std::map<std::string, std::string> metadata;

  static ModelInfo Read(const llama_model* model, bool vocabOnly);
};

class Model : public Napi::ObjectWrap<Model> {
 public:
  static Napi::Function Define(Napi::Env env);
  // Main thread: wraps a loaded model (from ModelLoadWorker::Result).
  static Napi::Object Create(Napi::Env env, ModelPtr handle, ModelInfo info);

  explicit Model(const Napi::CallbackInfo& info);
  ~Model() override;

  // Throws ERR_DISPOSED after dispose().
  const ModelPtr& handle() const;

 private:
  // info(): ModelInfo
  Napi::Value Info(const Napi::CallbackInfo& info);
  // tokenize(text: string, addSpecial: boolean, parseSpecial: boolean): Int32Array
  Napi::Value TokenizeText(const Napi::CallbackInfo& info);
  // detokenize(tokens: Int32Array, removeSpecial: boolean, unparseSpecial: boolean): string
  Napi::Value DetokenizeTokens(const Napi::CallbackInfo& info);
  // tokenizeAsync(text: string, addSpecial: boolean, parseSpecial: boolean, abort?: AbortFlag): Promise<Int32Array>
  // (on a pool thread; ERR_ABORTED once the flag is set, checked between tokenizer pieces)
  Napi::Value TokenizeAsync(const Napi::CallbackInfo& info);
  // detokenizeAsync(tokens: Int32Array | number[], removeSpecial: boolean, unparseSpecial: boolean, abort?: AbortFlag): Promise<string>
  Napi::Value DetokenizeAsync(const Napi::CallbackInfo& info);
  // tokenToPiece(token: number, special: boolean): string
  Napi::Value TokenPiece(const Napi::CallbackInfo& info);
  // tokenPieces(tokens: Int32Array | number[]): Uint8Array[], each token's bytes as llama-server's /tokenize
  // with_pieces renders them (special tokens as text)
  Napi::Value TokenPieces(const Napi::CallbackInfo& info);
  // vocabulary(): NativeVocabulary, the special token ids (-1: none) and what tokenizing adds
  Napi::Value Vocabulary(const Napi::CallbackInfo& info);
  // applyChatTemplate(messages: {role, content}[], template: string | null, addAssistant: boolean,
  //                   limits: NativeTemplateLimits, abort: AbortFlag | null, openaiJson?: string): Promise<string>
  // Main thread; the render runs on its own thread (ChatTemplateWorker).
  Napi::Value ApplyChatTemplate(const Napi::CallbackInfo& info);
  // applyChatTemplateSync(messages, template, addAssistant, limits, _, openaiJson?): string
  // Main thread, which waits for the render thread: the same limits hold, but nothing can abort it but them.
  Napi::Value ApplyChatTemplateSync(const Napi::CallbackInfo& info);
  // Main thread: reads the arguments of either form into a job.
  ChatRenderJob PrepareRender(const Napi::CallbackInfo& info);
  // createContext(options: NativeContextOptions, onEvents: (events: NativeEvent[]) => void, draft?: Model): Promise<Context>
  // (`draft`: a draft model for speculative decoding, kept alive by the context)
  Napi::Value CreateContext(const Napi::CallbackInfo& info);
  // loadLora(path: string): Promise<Lora>  (llama_adapter_lora_init on a pool thread; ERR_LORA_INVALID when the
  // file is not an adapter of this model)
  Napi::Value LoadLora(const Napi::CallbackInfo& info);
  // dispose(): void  (idempotent; frees the model once its contexts and running workers let go of it)
  Napi::Value Dispose(const Napi::CallbackInfo& info);
  // get disposed: boolean
  Napi::Value Disposed(const Napi::CallbackInfo& info);

  ModelPtr handle_;
  ModelInfo info_;
  // Shared with running ChatTemplateWorkers, which add their parse on the main thread.
  std::shared_ptr<TemplateCache> templates_ = std::make_shared<TemplateCache>();
};

}  // namespace tea
