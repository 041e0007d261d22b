#include "chat_template.h"

#include <algorithm>
#include <chrono>
#include <exception>
#include <functional>

#ifdef _WIN32
#include <windows.h>
#else
#include <pthread.h>
#endif

#include "chat.h"
#include "errors.h"
#include "sampler.h"
#include "jinja/render_budget.h"

namespace tea {

namespace {

// Stack for the render thread: the depth limit must trip long before the stack ends. A nesting level of the
// engine (execute -> execute_impl -> a macro's std::function -> exec_statements ...) takes a few KB in a release
// build; 64 KB per level leaves a wide margin for sanitizer and debug builds. Only the pages touched are
// committed. render_budget::stack_floor is the backstop should frames ever be larger.
constexpr size_t kStackPerLevel = 64 * 1024;
constexpr size_t kStackBase = 16u << 20;
constexpr size_t kStackReserve = 1u << 20;  // kept free below the floor for what runs between two depth checks

size_t StackBytes(const TemplateLimits& limits) { return kStackBase + kStackPerLevel * limits.maxDepth; }

struct ThreadCall {
  const std::function<void()>* fn;
  std::exception_ptr error;

  void Run() {
    try {
      (*fn)();
    } catch (...) {
      error = std::current_exception();
    }
  }
};

#ifdef _WIN32
DWORD WINAPI ThreadMain(LPVOID arg) {
  static_cast<ThreadCall*>(arg)->Run();
  return 0;
}
#else
void* ThreadMain(void* arg) {
  static_cast<ThreadCall*>(arg)->Run();
  return nullptr;
}
#endif

// Runs `fn` on a new thread with `stackBytes` of stack and joins it; rethrows what `fn` threw. std::thread cannot
// choose its stack size, and the default (8 MB on Linux, 512 KB on macOS secondary threads) is what a deep
// template would overflow.
void RunWithStack(size_t stackBytes, const std::function<void()>& fn) {
  ThreadCall call{&fn, nullptr};
#ifdef _WIN32
  HANDLE thread = CreateThread(nullptr, stackBytes, &ThreadMain, &call, STACK_SIZE_PARAM_IS_A_RESERVATION, nullptr);
  if (!thread) throw TeaError("ERR_INTERNAL", "could not start the chat template thread");
  WaitForSingleObject(thread, INFINITE);
  CloseHandle(thread);
#else
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, stackBytes);
  pthread_t thread;
  const int rc = pthread_create(&thread, &attr, &ThreadMain, &call);
  pthread_attr_destroy(&attr);
  if (rc != 0) throw TeaError("ERR_INTERNAL", "could not start the chat template thread (pthread_create " + std::to_string(rc) + ")");
  pthread_join(thread, nullptr);
#endif
  if (call.error) std::rethrow_exception(call.error);
}

// Installs a budget as this thread's current one for its lifetime (render thread).
class BudgetScope {
 public:
  explicit BudgetScope(jinja::render_budget* budget) : previous_(jinja::current_budget()) { jinja::current_budget() = budget; }
  ~BudgetScope() { jinja::current_budget() = previous_; }
  BudgetScope(const BudgetScope&) = delete;
  BudgetScope& operator=(const BudgetScope&) = delete;

 private:
  jinja::render_budget* previous_;
};

// A tripped budget wins over whatever error the engine made of it (the engine wraps exceptions with the source
// position, and llama.cpp's capability probes swallow some).
void ThrowIfTripped(const jinja::render_budget& budget) {
  if (!budget.tripped) return;
  const std::string limit = budget.tripped;
  if (limit == "aborted") throw TeaError("ERR_ABORTED", "chat template rendering was aborted");
  throw TeaError("ERR_TEMPLATE", "chat template stopped at the " + limit + " limit: " + budget.detail +
                                     " (raise it with the " + limit + " option if the template is trusted)");
}

std::string JoinNames(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

void RejectNul(const std::vector<ChatMessage>& messages) {
  for (size_t i = 0; i < messages.size(); ++i) {
    const bool inRole = messages[i].role.find('\0') != std::string::npos;
    if (inRole || messages[i].content.find('\0') != std::string::npos) {
      throw TeaError("ERR_INVALID_ARGUMENT", "messages[" + std::to_string(i) + "]." + (inRole ? "role" : "content") +
                                                 " holds a NUL character, which llama.cpp's built-in templates would cut the text at; "
                                                 "remove it or use a Jinja template");
    }
  }
}

std::string RenderBuiltin(const std::string& name, const std::vector<ChatMessage>& messages, bool addAssistant) {
  RejectNul(messages);
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
  common_chat_templates_ptr parsed = common_chat_templates_init(model, source);
  if (!parsed) throw TeaError("ERR_TEMPLATE_UNSUPPORTED", "chat template could not be parsed");
  return std::shared_ptr<common_chat_templates>(parsed.release(), common_chat_templates_free);
}

// A map of kwargs whose values are JSON texts, as common_chat_templates_inputs takes them.
std::map<std::string, std::string> Kwargs(const common_json& object) {
  std::map<std::string, std::string> out;
  for (const auto& item : object.items()) out[item.key()] = item.value().dump();
  return out;
}

common_chat_params RenderJinja(const common_chat_templates* templates, const ChatRenderJob& job) {
  common_chat_templates_inputs inputs;
  inputs.use_jinja = true;
  inputs.add_generation_prompt = job.addAssistant;
  if (!job.openaiJson.empty()) {
    common_json extra;
    try {
      extra = common_json::parse(job.openaiJson);
      if (extra.contains("messages")) inputs.messages = common_chat_msgs_parse_oaicompat(extra.at("messages"));
      if (extra.contains("tools")) inputs.tools = common_chat_tools_parse_oaicompat(extra.at("tools"));
      if (extra.contains("tool_choice")) inputs.tool_choice = common_chat_tool_choice_parse_oaicompat(extra.at("tool_choice").get<std::string>());
      if (extra.contains("parallel_tool_calls")) inputs.parallel_tool_calls = extra.at("parallel_tool_calls").get<bool>();
      if (extra.contains("grammar")) inputs.grammar = extra.at("grammar").get<std::string>();
      if (extra.contains("json_schema")) inputs.json_schema = extra.at("json_schema").dump();
      if (extra.contains("reasoning_format")) inputs.reasoning_format = common_reasoning_format_from_name(extra.at("reasoning_format").get<std::string>());
      if (extra.contains("enable_thinking")) inputs.enable_thinking = extra.at("enable_thinking").get<bool>();
      if (extra.contains("chat_template_kwargs")) inputs.chat_template_kwargs = Kwargs(extra.at("chat_template_kwargs"));
    } catch (const std::exception& e) {
      throw TeaError("ERR_INVALID_ARGUMENT", std::string("openaiJson: ") + e.what());
    }
  }
  if (inputs.messages.empty()) {
    for (const ChatMessage& m : job.messages) {
      common_chat_msg msg;
      msg.role = m.role;
      msg.content = m.content;
      inputs.messages.push_back(std::move(msg));
    }
  }
  // A schema llama.cpp cannot convert is the caller's error, told apart from a template's.
  if (!inputs.json_schema.empty()) SchemaToGrammar(inputs.json_schema);
  return common_chat_templates_apply(templates, inputs);
}

// Everything common_chat_templates_apply returned, for the generation that follows (lib/model.ts).
std::string ParamsJson(const common_chat_params& p) {
  common_json out = common_json::object();
  out["prompt"] = p.prompt;
  out["format"] = static_cast<int>(p.format);
  out["formatName"] = common_chat_format_name(p.format);
  out["grammar"] = p.grammar;
  out["grammarLazy"] = p.grammar_lazy;
  common_json triggers = common_json::array();
  for (const common_grammar_trigger& t : p.grammar_triggers) {
    common_json trigger = common_json::object();
    trigger["type"] = static_cast<int>(t.type);
    trigger["value"] = t.value;
    triggers.push_back(trigger);
  }
  out["grammarTriggers"] = triggers;
  out["preservedTokens"] = p.preserved_tokens;
  out["additionalStops"] = p.additional_stops;
  out["generationPrompt"] = p.generation_prompt;
  out["supportsThinking"] = p.supports_thinking;
  out["thinkingStartTag"] = p.thinking_start_tag;
  out["thinkingEndTags"] = p.thinking_end_tags;
  out["parser"] = p.parser;
  return out.dump();
}

}  // namespace

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

void ChatRenderJob::Classify() {
  builtin = false;
  if (source.empty()) return;
  if (IsBuiltinTemplate(source)) {
    builtin = true;
    return;
  }
  // Every chat template reads the messages through a Jinja tag; a string without one is a misspelt name.
  if (source.find("{{") == std::string::npos && source.find("{%") == std::string::npos) {
    const std::string shown = source.size() > 64 ? source.substr(0, 64) + "..." : source;
    throw TeaError("ERR_TEMPLATE_NOT_FOUND", "'" + shown + "' is neither a built-in chat template nor a Jinja template; built-in templates: " +
                                                 JoinNames(BuiltinTemplateNames()));
  }
}

std::string ChatRenderJob::Render() {
  std::string prompt;
  common_chat_params result;  // a built-in template has only the prompt
  std::function<void()> body = [&]() {
    if (builtin) {
      prompt = RenderBuiltin(source, messages, addAssistant);
      return;
    }
    // One budget for the parse (llama.cpp renders the template a few times then, probing its capabilities) and
    // a fresh one for the render, so that maxSteps means the same for a cached template and a new one. The
    // deadline covers both.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(limits.timeoutMs);
    char top = 0;
    const uintptr_t floor = reinterpret_cast<uintptr_t>(&top) - (StackBytes(limits) - kStackReserve);
    auto budgeted = [&](const std::function<void()>& step) {
      jinja::render_budget budget;
      budget.max_depth = limits.maxDepth;
      budget.max_steps = limits.maxSteps;
      budget.max_bytes = static_cast<size_t>(limits.maxOutputBytes);
      budget.deadline = deadline;
      budget.abort = abort.get();
      budget.stack_floor = floor;
      BudgetScope scope(&budget);
      try {
        step();
      } catch (const TeaError&) {
        ThrowIfTripped(budget);
        throw;
      } catch (const std::bad_alloc&) {
        ThrowIfTripped(budget);
        throw TeaError("ERR_OUT_OF_MEMORY", "out of memory while rendering the chat template");
      } catch (const std::exception& e) {
        ThrowIfTripped(budget);
        throw TeaError("ERR_TEMPLATE_UNSUPPORTED", std::string("chat template failed: ") + e.what());
      }
      ThrowIfTripped(budget);
    };
    if (!parsed) budgeted([&] { parsed = ParseJinja(model, source); });
    budgeted([&] { result = RenderJinja(parsed.get(), *this); });
    prompt = std::move(result.prompt);
    if (prompt.size() > limits.maxOutputBytes) {
      throw TeaError("ERR_TEMPLATE", "chat template stopped at the maxOutputBytes limit: the prompt of " + std::to_string(prompt.size()) +
                                         " bytes is larger than " + std::to_string(limits.maxOutputBytes));
    }
  };
  RunWithStack(StackBytes(limits), body);
  if (!full) return prompt;
  result.prompt = std::move(prompt);
  return ParamsJson(result);
}

}  // namespace tea
