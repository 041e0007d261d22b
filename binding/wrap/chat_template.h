// Chat template rendering through llama.cpp: Jinja (llama.cpp's own engine, as llama-server renders) for a
// model's template or an explicit template string, and llama.cpp's built-in templates by name.
//
// Templates come from downloaded model files, so every Jinja parse and render runs under TemplateLimits (the
// budget of patches/jinja-limits.patch) on a thread of its own with a large stack: a template that recurses,
// nests, loops or grows without end stops with ERR_TEMPLATE naming the limit, never with a signal.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "llama.h"

struct common_chat_templates;

namespace tea {

struct ChatMessage {
  std::string role;
  std::string content;
};

// Defaults and bounds live in lib/model.ts (TEMPLATE_LIMITS), which validates them; 0 never reaches here.
struct TemplateLimits {
  uint32_t maxDepth = 256;
  uint64_t maxSteps = 500000;
  uint64_t maxOutputBytes = 16u << 20;
  uint32_t timeoutMs = 5000;
};

// Names accepted as built-in templates ("chatml", "llama3", "phi3", ...).
std::vector<std::string> BuiltinTemplateNames();
bool IsBuiltinTemplate(const std::string& name);

// One render: what the caller's thread collects (main thread), then Render() on any thread.
struct ChatRenderJob {
  const llama_model* model = nullptr;  // kept alive by the caller
  std::string source;                  // empty: the model's own template
  bool builtin = false;                // `source` names a built-in template
  std::vector<ChatMessage> messages;
  std::string openaiJson;              // optional {messages, tools} in OpenAI's format, for tool-using templates
  bool addAssistant = true;
  bool full = false;                   // Render() returns common_chat_params as JSON (prompt, grammar, parser...)
  TemplateLimits limits;
  std::shared_ptr<std::atomic<bool>> abort;           // optional
  std::shared_ptr<common_chat_templates> parsed;      // the cached parse of `source`, or null: Render() parses

  // Classifies `source` (main thread, before Render): a built-in name, Jinja, or ERR_TEMPLATE_NOT_FOUND listing
  // the built-ins (a misspelt name would otherwise render as a literal Jinja template that ignores the messages).
  void Classify();

  // Parses (when `parsed` is null) and renders on a new thread with a stack sized for limits.maxDepth, and waits
  // for it; the calling thread may be the main thread (the sync form) or a pool thread (the async form). Throws
  // TeaError: ERR_TEMPLATE (a limit), ERR_ABORTED, ERR_TEMPLATE_UNSUPPORTED, ERR_INVALID_ARGUMENT,
  // ERR_INVALID_SCHEMA. Returns the prompt, or with `full` the JSON of everything llama.cpp computed for it.
  std::string Render();
};

}  // namespace tea
