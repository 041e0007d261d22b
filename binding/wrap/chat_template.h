// Chat template rendering through llama.cpp: Jinja (llama.cpp's own engine, as llama-server renders) for a
// model's template or an explicit template string, and llama.cpp's built-in templates by name.
#pragma once

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

// Names accepted as built-in templates ("chatml", "llama3", "phi3", ...).
std::vector<std::string> BuiltinTemplateNames();
bool IsBuiltinTemplate(const std::string& name);

// Renders with a built-in template by name. Throws ERR_TEMPLATE_UNSUPPORTED.
std::string RenderBuiltin(const std::string& name, const std::vector<ChatMessage>& messages, bool addAssistant);

// Parses a Jinja template (the model's own when `source` is empty). Throws ERR_TEMPLATE_UNSUPPORTED.
std::shared_ptr<common_chat_templates> ParseJinja(const llama_model* model, const std::string& source);

// Renders a parsed template. Throws ERR_TEMPLATE_UNSUPPORTED when the template fails to render.
std::string RenderJinja(const common_chat_templates* templates, const std::vector<ChatMessage>& messages, bool addAssistant);

}  // namespace tea
