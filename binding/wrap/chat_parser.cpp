#include "chat_parser.h"

#include "errors.h"

namespace tea {

Napi::Function ChatParser::Define(Napi::Env env) {
  return DefineClass(env, "ChatParser", {InstanceMethod<&ChatParser::Update>("update")});
}

ChatParser::ChatParser(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ChatParser>(info), random_(std::random_device{}()) {
  try {
    if (!info[0].IsString()) throw TeaError("ERR_INVALID_ARGUMENT", "ChatParser takes a JSON string");
    const common_json p = common_json::parse(info[0].As<Napi::String>().Utf8Value());
    params_.format = static_cast<common_chat_format>(p.value("format", 0));
    if (params_.format < 0 || params_.format >= COMMON_CHAT_FORMAT_COUNT) throw TeaError("ERR_INVALID_ARGUMENT", "unknown chat format");
    params_.reasoning_format = common_reasoning_format_from_name(p.value("reasoningFormat", std::string("none")));
    params_.generation_prompt = p.value("generationPrompt", std::string());
    params_.parse_tool_calls = p.value("parseToolCalls", true);
    const std::string parser = p.value("parser", std::string());
    if (!parser.empty()) params_.parser.load(parser);
  } catch (const TeaError& e) {
    throw MakeError(info.Env(), e.code(), e.what());
  } catch (const std::exception& e) {
    throw MakeError(info.Env(), "ERR_INVALID_ARGUMENT", std::string("chat parser: ") + e.what());
  }
}

std::string ChatParser::NewId() {
  static const char kAlphabet[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  std::string id = "call_";
  for (int i = 0; i < 24; ++i) id += kAlphabet[random_() % (sizeof(kAlphabet) - 1)];
  return id;
}

namespace {

common_json ToolCallJson(const common_chat_tool_call& call) {
  common_json fn = common_json::object();
  fn["name"] = call.name;
  fn["arguments"] = call.arguments;
  common_json out = common_json::object();
  out["id"] = call.id;
  out["type"] = "function";
  out["function"] = fn;
  return out;
}

// One diff in OpenAI's chunk-delta shape (camelCase, as every option of this library).
common_json DeltaJson(const common_chat_msg_diff& d) {
  common_json out = common_json::object();
  if (!d.reasoning_content_delta.empty()) out["reasoningContent"] = d.reasoning_content_delta;
  if (!d.content_delta.empty()) out["content"] = d.content_delta;
  if (d.tool_call_index != std::string::npos) {
    common_json fn = common_json::object();
    if (!d.tool_call_delta.name.empty()) fn["name"] = d.tool_call_delta.name;
    if (!d.tool_call_delta.arguments.empty()) fn["arguments"] = d.tool_call_delta.arguments;
    common_json call = common_json::object();
    call["index"] = d.tool_call_index;
    if (!d.tool_call_delta.id.empty()) {
      call["id"] = d.tool_call_delta.id;
      call["type"] = "function";
    }
    call["function"] = fn;
    common_json calls = common_json::array();
    calls.push_back(call);
    out["toolCalls"] = calls;
  }
  return out;
}

}  // namespace

Napi::Value ChatParser::Update(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    if (!info[0].IsString()) throw TeaError("ERR_INVALID_ARGUMENT", "textAdded must be a string");
    const bool partial = info[1].ToBoolean();
    text_ += info[0].As<Napi::String>().Utf8Value();
    common_chat_msg parsed;
    try {
      parsed = common_chat_parse(text_, partial, params_);
    } catch (const std::exception&) {
      if (partial) parsed = message_;  // not parseable yet: wait for more text
      else {
        // What the model wrote does not match its format (a small model ignoring it): all of it is content.
        parsed = common_chat_msg();
        parsed.role = "assistant";
        parsed.content = text_;
      }
    }
    std::vector<common_chat_msg_diff> diffs;
    if (!parsed.empty() || !partial) {
      parsed.set_tool_call_ids(ids_, [this] { return NewId(); });
      try {
        diffs = common_chat_msg_diff::compute_diffs(message_, parsed);
        message_ = std::move(parsed);
      } catch (const std::exception&) {
        // A partial parse that went back on itself (fewer tool calls than before): keep the last one.
        if (!partial) message_ = std::move(parsed);
      }
    }
    common_json deltas = common_json::array();
    for (const common_chat_msg_diff& d : diffs) deltas.push_back(DeltaJson(d));
    common_json calls = common_json::array();
    for (const common_chat_tool_call& c : message_.tool_calls) calls.push_back(ToolCallJson(c));
    common_json message = common_json::object();
    message["content"] = message_.content;
    message["reasoningContent"] = message_.reasoning_content;
    message["toolCalls"] = calls;
    common_json out = common_json::object();
    out["message"] = message;
    out["deltas"] = deltas;
    return Napi::String::New(info.Env(), out.dump());
  });
}

}  // namespace tea
