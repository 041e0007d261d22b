#include "event_channel.h"

#include <algorithm>
#include <unordered_map>

#include "logprobs_object.h"

namespace tea {

namespace {

Napi::Object StatsObject(Napi::Env env, const GenerationStats& s) {
  Napi::Object out = Napi::Object::New(env);
  out.Set("text", Napi::String::New(env, s.text));
  out.Set("promptTokens", s.promptTokens);
  out.Set("reusedPromptTokens", s.reusedPromptTokens);
  out.Set("completionTokens", s.completionTokens);
  out.Set("finishReason", s.finishReason);
  out.Set("contextFull", s.contextFull);
  out.Set("draftTokens", s.draftTokens);
  out.Set("acceptedDraftTokens", s.acceptedDraftTokens);
  out.Set("sequence", s.slot);
  out.Set("contextShifts", s.contextShifts);
  Napi::Object timings = Napi::Object::New(env);
  timings.Set("queuedMs", s.queuedMs);
  timings.Set("promptMs", s.promptMs);
  timings.Set("generationMs", s.generationMs);
  timings.Set("firstTokenMs", s.firstTokenMs);
  out.Set("timings", timings);
  if (!s.logprobs.empty()) out.Set("logprobs", LogprobsArray(env, s.logprobs));
  return out;
}

Napi::Value EventObject(Napi::Env env, Event& e) {
  Napi::Object out = Napi::Object::New(env);
  out.Set("id", static_cast<double>(e.id));
  switch (e.kind) {
    case Event::Kind::Text:
      out.Set("type", "text");
      out.Set("text", Napi::String::New(env, e.text));
      break;
    case Event::Kind::Done:
      out.Set("type", "done");
      out.Set("result", StatsObject(env, e.stats));
      break;
    case Event::Kind::Error:
      out.Set("type", "error");
      out.Set("code", e.code);
      out.Set("message", e.message);
      break;
    case Event::Kind::State: {
      out.Set("type", "state");
      out.Set("sequence", e.state.sequence);
      out.Set("tokens", e.state.tokens);
      out.Set("meta", Napi::String::New(env, e.state.meta));
      if (!e.state.data.empty()) out.Set("data", Napi::Buffer<uint8_t>::Copy(env, e.state.data.data(), e.state.data.size()));
      break;
    }
    case Event::Kind::Embeddings: {
      out.Set("type", "embeddings");
      Napi::Array vectors = Napi::Array::New(env, e.vectors.size());
      for (size_t i = 0; i < e.vectors.size(); ++i) {
        Napi::Float32Array array = Napi::Float32Array::New(env, e.vectors[i].size());
        std::copy(e.vectors[i].begin(), e.vectors[i].end(), array.Data());
        vectors.Set(static_cast<uint32_t>(i), array);
      }
      out.Set("vectors", vectors);
      break;
    }
  }
  return out;
}

}  // namespace

EventChannel::EventChannel(Napi::Env env, Napi::Function onEvents) : env_(env) {
  tsfn_ = Napi::ThreadSafeFunction::New(env, onEvents, "tea-llama:events", 0, 1);
  tsfn_.Unref(env);  // idle: never what keeps the event loop alive
}

EventChannel::~EventChannel() { Close(); }

void EventChannel::Started() {
  if (state_->inFlight++ == 0 && !closed_) tsfn_.Ref(env_);
}

void EventChannel::Close() {
  if (closed_) return;
  closed_ = true;
  tsfn_.Release();
}

void EventChannel::Publish(std::vector<Event>&& events) {
  if (events.empty()) return;
  bool schedule = false;
  {
    std::lock_guard<std::mutex> lock(state_->mutex);
    std::move(events.begin(), events.end(), std::back_inserter(state_->pending));
    schedule = !state_->scheduled;
    state_->scheduled = true;
  }
  if (!schedule) return;
  std::shared_ptr<State> state = state_;
  Napi::ThreadSafeFunction tsfn = tsfn_;
  const napi_status status = tsfn_.NonBlockingCall([state, tsfn](Napi::Env env, Napi::Function onEvents) {
    Deliver(env, onEvents, state, tsfn);
  });
  if (status != napi_ok) {
    // Closing (the environment is being torn down): nobody is left to receive these.
    std::lock_guard<std::mutex> lock(state_->mutex);
    state_->pending.clear();
    state_->scheduled = false;
  }
}

void EventChannel::Deliver(Napi::Env env, Napi::Function onEvents, const std::shared_ptr<State>& state, Napi::ThreadSafeFunction tsfn) {
  std::vector<Event> events;
  {
    std::lock_guard<std::mutex> lock(state->mutex);
    events.swap(state->pending);
    state->scheduled = false;
  }
  if (env == nullptr) return;
  // Text of one request that arrived in several steps since the last delivery becomes one event.
  std::vector<Event> merged;
  std::unordered_map<uint64_t, size_t> lastText;
  int64_t finished = 0;
  for (Event& e : events) {
    if (e.kind == Event::Kind::Text) {
      auto it = lastText.find(e.id);
      if (it != lastText.end()) {
        merged[it->second].text += e.text;
        continue;
      }
      lastText[e.id] = merged.size();
    } else {
      lastText.erase(e.id);
      ++finished;
    }
    merged.push_back(std::move(e));
  }
  try {
    Napi::HandleScope scope(env);
    Napi::Array array = Napi::Array::New(env, merged.size());
    for (size_t i = 0; i < merged.size(); ++i) array.Set(static_cast<uint32_t>(i), EventObject(env, merged[i]));
    state->inFlight -= finished;
    if (finished > 0 && state->inFlight <= 0) {
      state->inFlight = 0;
      tsfn.Unref(env);
    }
    onEvents.Call({array});
  } catch (const Napi::Error&) {
    // The environment is going away (worker.terminate()), or the JS dispatcher broke its promise not to throw.
  }
}

}  // namespace tea
