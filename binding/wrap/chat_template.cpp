#include "chat_template.h"

#include <algorithm>

#include "chat.h"
#include "errors.h"

namespace tea {

std::vector<std::string> BuiltinTemplateNames() {
  const int32_t count = llama_chat_builtin_templates(nullptr, 0);
  std::vector<const char*> names(static_cast<size_t>(std::max(count, 0)));
  llama_chat_builtin_templates(names.data(), names.size());
  return std::vector<std::string>(names.begin(), names.end());
}

bool IsBuiltinTemplate(const std::string& name) {
  const auto names = BuiltinTemplateNames();
  return std::find(names.begin(), names.end(), name) != names.end();
}

std::string RenderBuiltin(const std::string& name, const std::vector<ChatMessage>& messages, bool addAssistant) {
  std::vector<llama_chat_message> chat;
  size_t total = 0;
  for (const ChatMessage& m : messages) {
    chat.push_back({m.role.c_str(), m.content.c_str()});
    total += m.role.size() + m.content.size();
  }
  std::string out(total * 2 + 256, '\0');
  int32_t n = llama_chat_apply_template(name.c_str(), chat.data(), chat.size(), addAssistant, out.data(), static_cast<int32_t>(out.size()));
  if (n > static_cast<int32_t>(out.size())) {
    out.resize(static_cast<size_t>(n));
    n = llama_chat_apply_template(name.c_str(), chat.data(), chat.size(), addAssistant, out.data(), static_cast<int32_t>(out.size()));
  }
  if (n < 0) throw TeaError("ERR_TEMPLATE_UNSUPPORTED", "llama.cpp does not support the chat template '" + name + "'");
  out.resize(static_cast<size_t>(n));
  return out;
}

std::shared_ptr<common_chat_templates> ParseJinja(const llama_model* model, const std::string& source) {
  try {
    common_chat_templates_ptr parsed = common_chat_templates_init(model, source);
    if (!parsed) throw TeaError("ERR_TEMPLATE_UNSUPPORTED", "chat template could not be parsed");
    return std::shared_ptr<common_chat_templates>(parsed.release(), common_chat_templates_free);
  } catch (const TeaError&) {
    throw;
  } catch (const std::exception& e) {
    throw TeaError("ERR_TEMPLATE_UNSUPPORTED", std::string("chat template could not be parsed: ") + e.what());
  }
}

std::string RenderJinja(const common_chat_templates* templates, const std::vector<ChatMessage>& messages, bool addAssistant) {
  common_chat_templates_inputs inputs;
  inputs.use_jinja = true;
  inputs.add_generation_prompt = addAssistant;
  for (const ChatMessage& m : messages) {
    common_chat_msg msg;
    msg.role = m.role;
    msg.content = m.content;
    inputs.messages.push_back(std::move(msg));
  }
  try {
    return common_chat_templates_apply(templates, inputs).prompt;
  } catch (const std::exception& e) {
    throw TeaError("ERR_TEMPLATE_UNSUPPORTED", std::string("chat template failed to render: ") + e.what());
  }
}

}  // namespace tea
