// ChatParser: llama.cpp's common_chat_parse over a generation's output, as llama-server's task_result_state
// runs it: the text so far parsed (partially while it streams, fully at the end) into content, reasoning and
// tool calls, with common_chat_msg_diff's deltas between two parses.
//
// Threads: every method runs on the JS thread that created it (one parse is linear in the output so far; a
// stream parses once per chunk it receives).
#pragma once

#include <napi.h>

#include <random>
#include <string>
#include <vector>

#include "chat.h"

namespace tea {

class ChatParser : public Napi::ObjectWrap<ChatParser> {
 public:
  static Napi::Function Define(Napi::Env env);
  // new ChatParser(paramsJson): { format, reasoningFormat, generationPrompt, parser, parseToolCalls }.
  explicit ChatParser(const Napi::CallbackInfo& info);

 private:
  // update(textAdded, partial) -> JSON { message: { content, reasoningContent, toolCalls }, deltas: [...] }.
  // A final (not partial) parse that fails keeps the output as content, as plain text.
  Napi::Value Update(const Napi::CallbackInfo& info);
  std::string NewId();

  common_chat_parser_params params_;
  std::string text_;
  common_chat_msg message_;
  std::vector<std::string> ids_;
  std::mt19937_64 random_;
};

}  // namespace tea
