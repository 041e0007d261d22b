// ctest for binding/core: `tea_core_tests CASE MODEL.gguf` runs one case on a real model (stories260K).
// Exit 0: passed, 1: failed (the reason on stderr), 77: skipped (the model is missing and TEA_REQUIRE_MODELS unset).
#include <sys/stat.h>

#include <condition_variable>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "error.h"
#include "llama.h"
#include "prompt_format.h"
#include "scheduler.h"
#include "speculation.h"
#include "text_stream.h"
#include "text_utils.h"

namespace {

using namespace tea;

int failures = 0;
#define CHECK(cond, ...)                                              \
  do {                                                                \
    if (!(cond)) {                                                    \
      std::fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond); \
      std::fprintf(stderr, __VA_ARGS__);                              \
      std::fprintf(stderr, "\n");                                     \
      ++failures;                                                     \
    }                                                                 \
  } while (0)

// Collects events; Wait blocks until every id given has a terminal event.
class Collector : public EventSink {
 public:
  void Publish(std::vector<Event>&& events) override {
    std::lock_guard<std::mutex> lock(mutex_);
    for (Event& e : events) {
      if (e.kind == Event::Kind::Text) {
        text_[e.id] += e.text;
        if (onText) onText(e.id);
      } else {
        terminal_[e.id] = std::move(e);
      }
    }
    changed_.notify_all();
  }
  Event Wait(uint64_t id) {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [&] { return terminal_.count(id) > 0; });
    return terminal_[id];
  }
  std::string Streamed(uint64_t id) {
    std::lock_guard<std::mutex> lock(mutex_);
    return text_[id];
  }
  std::function<void(uint64_t)> onText;  // called under the collector's lock, on the scheduler thread

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::map<uint64_t, std::string> text_;
  std::map<uint64_t, Event> terminal_;
};

struct ModelDeleter {
  void operator()(llama_model* m) const { llama_model_free(m); }
};

std::shared_ptr<llama_model> LoadModel(const char* path) {
  llama_model_params params = llama_model_default_params();
  return std::shared_ptr<llama_model>(llama_model_load_from_file(path, params), ModelDeleter());
}

std::unique_ptr<Scheduler> MakeScheduler(const std::shared_ptr<llama_model>& model, Collector& sink, SchedulerOptions options,
                                         uint32_t nCtx, uint32_t nBatch) {
  llama_context_params params = llama_context_default_params();
  params.n_ctx = nCtx;
  params.n_batch = nBatch;
  params.n_ubatch = nBatch;
  params.n_seq_max = static_cast<uint32_t>(options.sequences);
  params.kv_unified = true;
  params.n_threads = 1;
  params.n_threads_batch = 1;
  params.embeddings = options.embeddings;
  if (options.embeddings) params.pooling_type = LLAMA_POOLING_TYPE_MEAN;
  params.no_perf = true;
  llama_context* ctx = llama_init_from_model(model.get(), params);
  if (!ctx) {
    std::fprintf(stderr, "could not create a context\n");
    std::exit(1);
  }
  if (options.sequenceLimit == 0) options.sequenceLimit = static_cast<int32_t>(nCtx);
  return std::make_unique<Scheduler>(ctx, model, options, &sink);
}

GenerationTask Greedy(uint64_t id, const std::string& prompt, int32_t maxTokens) {
  GenerationTask t;
  t.id = id;
  t.prompt = prompt;
  t.maxTokens = maxTokens;
  t.sampling.temperature = 0;
  t.stream = true;
  return t;
}

const std::vector<std::string> kPrompts = {"Once upon a time", "The little dog", "Lily wanted to", "One day, a big",
                                           "Tom and Sue went", "The sun was"};

// The text each prompt gives alone, on a fresh one-sequence scheduler.
std::vector<std::string> Alone(const std::shared_ptr<llama_model>& model, int32_t maxTokens) {
  std::vector<std::string> out;
  for (size_t i = 0; i < kPrompts.size(); ++i) {
    Collector sink;
    SchedulerOptions o;
    o.sequences = 1;
    auto s = MakeScheduler(model, sink, o, 512, 64);
    s->Submit(Greedy(1, kPrompts[i], maxTokens));
    out.push_back(sink.Wait(1).stats.text);
  }
  return out;
}

void TestTextStream() {
  TextStream s({"STOP"});
  std::string out = s.Push("hello ");
  out += s.Push("ST");
  out += s.Push("O");
  CHECK(out == "hello ", "held back a possible stop prefix, got '%s'", out.c_str());
  out += s.Push("ry");  // "STOry" is no stop: the held text is released
  CHECK(out == "hello STOry", "got '%s'", out.c_str());
  out += s.Push(" and STOP here");
  CHECK(s.stopped() && out == "hello STOry and ", "stop string cut, got '%s'", out.c_str());
  TextStream u;
  std::string euro = "\xE2\x82\xAC";
  std::string part = u.Push(euro.substr(0, 1));
  part += u.Push(euro.substr(1, 1));
  CHECK(part.empty(), "a partial UTF-8 character is held");
  part += u.Push(euro.substr(2));
  CHECK(part == euro, "the whole character comes out");
  TextStream t({"END"});
  std::string tail = t.Push("the EN");
  tail += t.Finish();
  CHECK(tail == "the EN" && t.text() == "the EN", "Finish releases a stop prefix that never completed");
}

// Six concurrent greedy requests on three sequences: every batch fits n_batch, generating slots get one token each,
// prompts share the rest fairly, and every text equals the same request alone.
void TestBatch(const std::shared_ptr<llama_model>& model) {
  const std::vector<std::string> alone = Alone(model, 24);
  Collector sink;
  SchedulerOptions o;
  o.sequences = 3;
  std::mutex m;
  std::vector<std::map<int, int>> batches;  // per decode: tokens per sequence
  int oversize = 0;
  o.onBatch = [&](const llama_batch& b) {
    std::lock_guard<std::mutex> lock(m);
    std::map<int, int> perSeq;
    for (int i = 0; i < b.n_tokens; ++i) perSeq[b.seq_id[i][0]]++;
    if (b.n_tokens > 8) ++oversize;
    batches.push_back(perSeq);
  };
  auto s = MakeScheduler(model, sink, o, 512, 8);
  for (size_t i = 0; i < kPrompts.size(); ++i) s->Submit(Greedy(i + 1, kPrompts[i], 24));
  for (size_t i = 0; i < kPrompts.size(); ++i) {
    Event e = sink.Wait(i + 1);
    CHECK(e.kind == Event::Kind::Done, "request %zu done", i);
    CHECK(e.stats.text == alone[i], "request %zu: '%s' != alone '%s'", i, e.stats.text.c_str(), alone[i].c_str());
    CHECK(sink.Streamed(i + 1) == e.stats.text, "streamed text equals the result");
  }
  CHECK(oversize == 0, "%d batches larger than n_batch", oversize);
  // The first batch: three prompts of 4-5 tokens each cannot all fit 8 tokens: each got a share.
  CHECK(!batches.empty() && batches[0].size() == 3, "first batch holds all three admitted prompts (%zu)", batches.empty() ? 0 : batches[0].size());
  size_t maxSeqs = 0;
  for (auto& b : batches) maxSeqs = std::max(maxSeqs, b.size());
  CHECK(maxSeqs == 3, "up to three sequences decode together");
}

// A request that extends an earlier prompt reuses its cached prefix and decodes only the suffix.
void TestPrefix(const std::shared_ptr<llama_model>& model) {
  Collector sink;
  SchedulerOptions o;
  o.sequences = 2;
  auto s = MakeScheduler(model, sink, o, 512, 64);
  s->Submit(Greedy(1, "Once upon a time there was a little girl", 8));
  Event first = sink.Wait(1);
  s->Submit(Greedy(2, "The dog ran", 4));  // takes the other (least recently used) slot
  Event other = sink.Wait(2);
  s->Submit(Greedy(3, "Once upon a time there was a little girl named Lily", 8));
  Event third = sink.Wait(3);
  CHECK(third.stats.reusedPromptTokens >= 10, "reused %d prompt tokens", third.stats.reusedPromptTokens);
  CHECK(third.stats.slot == first.stats.slot, "took the slot with the shared prefix (%d, %d)", third.stats.slot, first.stats.slot);
  CHECK(other.stats.slot != first.stats.slot, "an unrelated prompt took the idle slot");
  // The same request on a fresh scheduler gives the same text.
  Collector fresh;
  auto f = MakeScheduler(model, fresh, o, 512, 64);
  f->Submit(Greedy(1, "Once upon a time there was a little girl named Lily", 8));
  CHECK(fresh.Wait(1).stats.text == third.stats.text, "reuse changes nothing");
}

// Cancelling a running request ends it with what it produced and gives its slot to the next queued one.
void TestAbort(const std::shared_ptr<llama_model>& model) {
  const std::vector<std::string> alone = Alone(model, 24);
  Collector sink;
  SchedulerOptions o;
  o.sequences = 1;
  auto s = MakeScheduler(model, sink, o, 512, 64);
  Scheduler* raw = s.get();
  bool cancelled = false;
  sink.onText = [&](uint64_t id) {
    if (id == 1 && !cancelled) {
      cancelled = true;
      raw->Cancel(1);
    }
  };
  GenerationTask longTask = Greedy(1, kPrompts[0], -1);
  s->Submit(longTask);
  s->Submit(Greedy(2, kPrompts[1], 24));
  s->Submit(Greedy(3, kPrompts[2], 24));
  s->Cancel(3);  // still queued: an error event at once
  Event e1 = sink.Wait(1);
  Event e2 = sink.Wait(2);
  Event e3 = sink.Wait(3);
  CHECK(e1.kind == Event::Kind::Done && e1.stats.finishReason == "abort", "running request aborted (%s)", e1.stats.finishReason.c_str());
  CHECK(e1.stats.completionTokens < 100, "it stopped early (%d tokens)", e1.stats.completionTokens);
  CHECK(e2.kind == Event::Kind::Done && e2.stats.text == alone[1], "the queued request ran unchanged");
  CHECK(e3.kind == Event::Kind::Error && e3.code == "ERR_ABORTED", "a cancelled queued request fails with ERR_ABORTED");
}

// A unified cache too small for everyone: requests end with contextFull, and each text is a prefix of the text
// it gives alone (no sequence corrupts another).
void TestCacheFull(const std::shared_ptr<llama_model>& model) {
  const std::vector<std::string> alone = Alone(model, 200);
  Collector sink;
  SchedulerOptions o;
  o.sequences = 4;
  auto s = MakeScheduler(model, sink, o, 256, 64);
  for (size_t i = 0; i < 4; ++i) s->Submit(Greedy(i + 1, kPrompts[i], 200));
  int full = 0;
  for (size_t i = 0; i < 4; ++i) {
    Event e = sink.Wait(i + 1);
    CHECK(e.kind == Event::Kind::Done, "request %zu done (%s)", i, e.message.c_str());
    if (e.stats.contextFull) {
      ++full;
      CHECK(e.stats.finishReason == "length", "a full cache ends with length");
    }
    CHECK(alone[i].compare(0, e.stats.text.size(), e.stats.text) == 0, "request %zu: '%s' is a prefix of '%s'", i,
          e.stats.text.c_str(), alone[i].c_str());
  }
  CHECK(full >= 1, "some request hit the full cache (%d)", full);
  // The scheduler is still usable and exact afterwards.
  s->Submit(Greedy(9, kPrompts[4], 24));
  const std::vector<std::string> again = Alone(model, 24);
  CHECK(sink.Wait(9).stats.text == again[4], "a later request is unaffected");
}

// Many texts of two requests in few decodes, each vector equal to the one computed alone.
void TestEmbeddings(const std::shared_ptr<llama_model>& model) {
  auto embed = [&](const std::vector<std::string>& texts, int sequences, int* decodes) {
    Collector sink;
    SchedulerOptions o;
    o.sequences = sequences;
    o.embeddings = true;
    o.onBatch = [&](const llama_batch&) { ++*decodes; };
    auto s = MakeScheduler(model, sink, o, 512, 512);
    EmbeddingTask t;
    t.id = 1;
    t.texts = texts;
    s->Submit(t);
    return sink.Wait(1);
  };
  std::vector<std::string> texts(kPrompts.begin(), kPrompts.end());
  int batchedDecodes = 0;
  Event batched = embed(texts, 8, &batchedDecodes);
  CHECK(batched.kind == Event::Kind::Embeddings && batched.vectors.size() == texts.size(), "one vector per text");
  CHECK(batchedDecodes == 1, "six short texts in one decode (%d)", batchedDecodes);
  for (size_t i = 0; i < texts.size(); ++i) {
    int single = 0;
    Event one = embed({texts[i]}, 1, &single);
    double maxDiff = 0;
    for (size_t k = 0; k < one.vectors[0].size(); ++k) maxDiff = std::max(maxDiff, std::fabs(double(one.vectors[0][k]) - batched.vectors[i][k]));
    CHECK(maxDiff < 1e-4, "text %zu differs by %g", i, maxDiff);
  }
}

// Past maxQueued waiting requests, Submit throws ERR_QUEUE_FULL; after Stop, ERR_DISPOSED; queued work is told.
void TestQueue(const std::shared_ptr<llama_model>& model) {
  Collector sink;
  SchedulerOptions o;
  o.sequences = 1;
  o.maxQueued = 1;
  auto s = MakeScheduler(model, sink, o, 512, 64);
  s->Submit(Greedy(1, kPrompts[0], -1));
  s->Submit(Greedy(2, kPrompts[1], 8));
  std::string code;
  try {
    s->Submit(Greedy(3, kPrompts[2], 8));
  } catch (const TeaError& e) {
    code = e.code();
  }
  CHECK(code == "ERR_QUEUE_FULL", "third submit: '%s'", code.c_str());
  while (sink.Streamed(1).empty()) std::this_thread::yield();  // the first request is generating
  s->Stop();
  Event e1 = sink.Wait(1);
  Event e2 = sink.Wait(2);
  CHECK(e1.kind == Event::Kind::Done && e1.stats.finishReason == "abort", "running request ends with abort on Stop");
  CHECK((e2.kind == Event::Kind::Error && e2.code == "ERR_DISPOSED") || e2.kind == Event::Kind::Done, "queued request is told");
  code.clear();
  try {
    s->Submit(Greedy(4, kPrompts[3], 8));
  } catch (const TeaError& e) {
    code = e.code();
  }
  CHECK(code == "ERR_DISPOSED", "submit after Stop: '%s'", code.c_str());
}

}  // namespace

// Long texts are tokenized in pieces (special_split.h): the tokens are those of one llama_tokenize call over the
// whole text, with and without BOS and special-token parsing; the stop callback ends it between pieces.
void TestTokenizePieces(const std::shared_ptr<llama_model>& model) {
  const llama_vocab* vocab = llama_model_get_vocab(model.get());
  auto whole = [&](const std::string& text, bool addSpecial, bool parseSpecial) {
    std::vector<llama_token> out(text.size() + 2);
    const int32_t n = llama_tokenize(vocab, text.data(), static_cast<int32_t>(text.size()), out.data(), static_cast<int32_t>(out.size()),
                                     addSpecial, parseSpecial);
    out.resize(n < 0 ? 0 : static_cast<size_t>(n));
    return out;
  };
  const std::vector<std::string> parts = {"<s>", "</s>", " <s> ", "Once upon a time", " there was", "\n\n", "  ", "<unk>", "Lily</s>", "ü 🐕"};
  uint32_t seed = 7;
  std::string text;
  while (text.size() < 20000) {
    seed = seed * 1103515245u + 12345u;
    text += parts[(seed >> 16) % parts.size()];
  }
  for (bool addSpecial : {true, false}) {
    for (bool parseSpecial : {true, false}) {
      const std::vector<llama_token> expected = whole(text, addSpecial, parseSpecial);
      CHECK(!expected.empty(), "llama_tokenize gave no tokens");
      CHECK(Tokenize(vocab, text, addSpecial, parseSpecial) == expected, "pieces differ (addSpecial %d, parseSpecial %d)", addSpecial, parseSpecial);
    }
  }
  int polls = 0;
  bool aborted = false;
  try {
    Tokenize(vocab, text, true, true, [&] { return ++polls > 3; });
  } catch (const TeaError& e) {
    aborted = e.code() == "ERR_ABORTED";
  }
  CHECK(aborted && polls == 4, "stop ends it between pieces (polls %d)", polls);
}

// A grammar constrains the slot's sampler; a grammar or schema llama.cpp rejects fails the request with a typed
// error before any token, and the scheduler goes on serving the next request.
void TestGrammar(const std::shared_ptr<llama_model>& model) {
  Collector sink;
  SchedulerOptions o;
  o.sequences = 2;
  auto s = MakeScheduler(model, sink, o, 512, 64);
  GenerationTask yes = Greedy(1, kPrompts[0], 16);
  yes.grammar.grammar = "root ::= (\"yes\" | \"no\") \".\"";
  GenerationTask bad = Greedy(2, kPrompts[0], 16);
  bad.grammar.grammar = "root ::= undefined-rule";
  GenerationTask schema = Greedy(3, kPrompts[1], 64);
  schema.grammar.jsonSchema = R"({"type":"object","properties":{"n":{"type":"integer"}},"required":["n"]})";
  GenerationTask unsupported = Greedy(4, kPrompts[1], 16);
  unsupported.grammar.jsonSchema = R"({"type":"frob"})";
  for (GenerationTask* t : {&yes, &bad, &schema, &unsupported}) s->Submit(*t);
  Event e1 = sink.Wait(1), e2 = sink.Wait(2), e3 = sink.Wait(3), e4 = sink.Wait(4);
  CHECK(e1.kind == Event::Kind::Done && (e1.stats.text == "yes." || e1.stats.text == "no."), "grammar text '%s'", e1.stats.text.c_str());
  CHECK(e2.kind == Event::Kind::Error && e2.code == "ERR_INVALID_GRAMMAR", "bad grammar: %s %s", e2.code.c_str(), e2.message.c_str());
  CHECK(sink.Streamed(2).empty(), "no token before the grammar error");
  CHECK(e3.kind == Event::Kind::Done && e3.stats.text.find("\"n\"") != std::string::npos, "schema text '%s'", e3.stats.text.c_str());
  CHECK(e4.kind == Event::Kind::Error && e4.code == "ERR_INVALID_SCHEMA", "unsupported schema: %s %s", e4.code.c_str(), e4.message.c_str());
}

// The rerank and infill layouts on a vocabulary without FIM tokens (stories260K: SentencePiece, adds BOS only):
// the pair is [BOS] query document, and infill is a typed error, never a prompt without its FIM tokens.
void TestPromptFormat(const std::shared_ptr<llama_model>& model) {
  const llama_vocab* vocab = llama_model_get_vocab(model.get());
  const std::vector<llama_token> q = Tokenize(vocab, "Once upon a time", false, false);
  const std::vector<llama_token> d = Tokenize(vocab, "there was a cat", false, false);
  std::vector<llama_token> expected;
  if (llama_vocab_get_add_bos(vocab)) expected.push_back(llama_vocab_bos(vocab));
  expected.insert(expected.end(), q.begin(), q.end());
  if (llama_vocab_get_add_eos(vocab)) expected.push_back(llama_vocab_eos(vocab));
  if (llama_vocab_get_add_sep(vocab)) expected.push_back(llama_vocab_sep(vocab));
  expected.insert(expected.end(), d.begin(), d.end());
  if (llama_vocab_get_add_eos(vocab)) expected.push_back(llama_vocab_eos(vocab));
  CHECK(llama_vocab_get_add_bos(vocab) && expected.size() == q.size() + d.size() + 1, "stories260K adds BOS only");
  CHECK(RerankTokens(model.get(), "Once upon a time", "there was a cat") == expected, "rerank pair layout");
  CHECK(!HasFimTokens(vocab) && MissingFimTokens(vocab).find("prefix token is missing") == 0, "no FIM tokens: '%s'", MissingFimTokens(vocab).c_str());
  std::string code;
  try {
    InfillTokens(vocab, InfillInput{"a", "b", "", {}}, 512, 16, 512);
  } catch (const TeaError& e) {
    code = e.code();
  }
  CHECK(code == "ERR_MODEL_UNSUPPORTED", "infill without FIM tokens: '%s'", code.c_str());
}

// Speculative decoding (the model as its own draft, and n-gram drafting): greedy text equal to the plain
// scheduler's, several sequences at once, drafts within n_batch, and maxTokens and stop strings exact although
// several tokens are accepted per step.
std::unique_ptr<Scheduler> MakeSpeculative(const std::shared_ptr<llama_model>& model, Collector& sink, SchedulerOptions options,
                                           uint32_t nBatch, bool draftModel, bool ngram) {
  SpeculativeOptions so;
  so.draftMax = 4;
  so.ngram = ngram;
  so.ngramSize = 3;
  so.ngramMax = 6;
  const uint32_t perSeq = static_cast<uint32_t>(Speculation::OutputsPerSequence(so, draftModel));
  llama_context_params params = llama_context_default_params();
  params.n_ctx = 512;
  params.n_batch = nBatch;
  params.n_ubatch = nBatch;
  params.n_seq_max = static_cast<uint32_t>(options.sequences);
  params.n_outputs_max = std::min(nBatch, perSeq * params.n_seq_max);
  params.n_outputs_max_per_seq = std::min(nBatch, perSeq);
  params.kv_unified = true;
  params.n_threads = 1;
  params.n_threads_batch = 1;
  params.no_perf = true;
  llama_context* ctx = llama_init_from_model(model.get(), params);
  llama_context* draft = nullptr;
  if (draftModel) {
    params.n_outputs_max = params.n_seq_max;
    params.n_outputs_max_per_seq = 1;
    draft = llama_init_from_model(model.get(), params);
  }
  if (!ctx || (draftModel && !draft)) {
    std::fprintf(stderr, "could not create a context\n");
    std::exit(1);
  }
  auto spec = std::make_unique<Speculation>(ctx, draft, model, so, options.sequences);
  options.sequenceLimit = 512;
  return std::make_unique<Scheduler>(ctx, model, options, &sink, std::move(spec));
}

void TestSpeculative(const std::shared_ptr<llama_model>& model) {
  const std::vector<std::string> alone = Alone(model, 40);
  for (int mode = 0; mode < 2; ++mode) {
    const bool draftModel = mode == 0;
    Collector sink;
    SchedulerOptions o;
    o.sequences = 3;
    int oversize = 0, multi = 0;
    o.onBatch = [&](const llama_batch& b) {
      if (b.n_tokens > 16) ++oversize;
      std::map<int, int> perSeq;
      for (int i = 0; i < b.n_tokens; ++i) perSeq[b.seq_id[i][0]]++;
      for (auto& [seq, n] : perSeq) multi += n > 1 ? 1 : 0;
    };
    auto s = MakeSpeculative(model, sink, o, 16, draftModel, !draftModel);
    for (size_t i = 0; i < kPrompts.size(); ++i) s->Submit(Greedy(i + 1, kPrompts[i], 40));
    int32_t drafted = 0, accepted = 0;
    for (size_t i = 0; i < kPrompts.size(); ++i) {
      Event e = sink.Wait(i + 1);
      CHECK(e.kind == Event::Kind::Done, "%d: request %zu done (%s)", mode, i, e.message.c_str());
      CHECK(e.stats.text == alone[i], "%d: request %zu: '%s' != alone '%s'", mode, i, e.stats.text.c_str(), alone[i].c_str());
      CHECK(sink.Streamed(i + 1) == e.stats.text, "streamed text equals the result");
      CHECK(e.stats.acceptedDraftTokens <= e.stats.draftTokens, "accepted no more than drafted");
      drafted += e.stats.draftTokens;
      accepted += e.stats.acceptedDraftTokens;
    }
    CHECK(oversize == 0, "%d: %d batches larger than n_batch", mode, oversize);
    CHECK(drafted > 0 && multi > 0, "%d: drafts reached the batch (%d drafted)", mode, drafted);
    // Its own draft agrees with the model on (nearly) every token.
    if (draftModel) CHECK(accepted * 10 >= drafted * 9, "self-draft accepted %d of %d", accepted, drafted);

    // maxTokens and a stop string cut inside an accepted draft, exactly where the plain scheduler stops.
    for (int32_t n : {1, 2, 5, 7}) {
      s->Submit(Greedy(100 + n, kPrompts[0], n));
      Event e = sink.Wait(100 + n);
      CHECK(e.stats.completionTokens == n && e.stats.finishReason == "length", "%d: maxTokens %d gave %d", mode, n, e.stats.completionTokens);
      Collector plain;
      SchedulerOptions one;
      one.sequences = 1;
      auto p = MakeScheduler(model, plain, one, 512, 64);
      p->Submit(Greedy(1, kPrompts[0], n));
      CHECK(plain.Wait(1).stats.text == e.stats.text, "%d: maxTokens %d text", mode, n);
    }
    const std::string word = alone[0].substr(alone[0].size() / 2, 4);
    GenerationTask stop = Greedy(200, kPrompts[0], 40);
    stop.stop = {word};
    s->Submit(stop);
    Event e = sink.Wait(200);
    Collector plain;
    SchedulerOptions one;
    one.sequences = 1;
    auto p = MakeScheduler(model, plain, one, 512, 64);
    p->Submit(stop);
    const Event expected = plain.Wait(200);
    CHECK(e.stats.text == expected.stats.text && e.stats.completionTokens == expected.stats.completionTokens && e.stats.text.size() < alone[0].size(),
          "%d: stop '%s' gave '%s' (%d tokens), plain '%s' (%d)", mode, word.c_str(), e.stats.text.c_str(), e.stats.completionTokens,
          expected.stats.text.c_str(), expected.stats.completionTokens);
  }
}

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: tea_core_tests CASE [MODEL.gguf]\n");
    return 2;
  }
  const std::string name = argv[1];
  llama_log_set([](ggml_log_level, const char*, void*) {}, nullptr);
  if (name == "text_stream") {
    TestTextStream();
  } else {
    struct stat st;
    if (argc < 3 || stat(argv[2], &st) != 0) {
      const char* strict = std::getenv("TEA_REQUIRE_MODELS");
      std::fprintf(stderr, "model %s is missing\n", argc < 3 ? "(none)" : argv[2]);
      return strict && std::string(strict) == "1" ? 1 : 77;
    }
    llama_backend_init();
    std::shared_ptr<llama_model> model = LoadModel(argv[2]);
    if (!model) {
      std::fprintf(stderr, "could not load %s\n", argv[2]);
      return 1;
    }
    const std::map<std::string, void (*)(const std::shared_ptr<llama_model>&)> cases = {
        {"batch", TestBatch}, {"prefix", TestPrefix}, {"abort", TestAbort},
        {"cache_full", TestCacheFull}, {"embeddings", TestEmbeddings}, {"queue", TestQueue},
        {"tokenize_pieces", TestTokenizePieces}, {"grammar", TestGrammar}, {"prompt_format", TestPromptFormat},
        {"speculative", TestSpeculative}};
    auto it = cases.find(name);
    if (it == cases.end()) {
      std::fprintf(stderr, "unknown case %s\n", name.c_str());
      return 2;
    }
    it->second(model);
  }
  if (failures > 0) std::fprintf(stderr, "%s: %d check(s) failed\n", name.c_str(), failures);
  return failures > 0 ? 1 : 0;
}
