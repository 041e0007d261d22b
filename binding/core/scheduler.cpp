#include "scheduler.h"

#include <algorithm>
#include <cmath>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "error.h"
#include "logprobs.h"
#include "numeric.h"
#include "prompt_format.h"
#include "sampler.h"
#include "state_file.h"
#include "text_utils.h"

namespace tea {

namespace {

double MsBetween(Scheduler::Clock::time_point from, Scheduler::Clock::time_point to) {
  return std::chrono::duration<double, std::milli>(to - from).count();
}

// The index of the first largest logit: exactly what llama.cpp's greedy sampler picks, without copying the
// vocabulary into a candidate array for every token.
llama_token ArgMax(const float* logits, int32_t vocabSize) {
  int32_t best = 0;
  for (int32_t i = 1; i < vocabSize; ++i) {
    if (logits[i] > logits[best]) best = i;
  }
  return best;
}

void AddToken(llama_batch& batch, llama_token token, llama_pos pos, llama_seq_id seq, bool logits) {
  const int32_t i = batch.n_tokens++;
  batch.token[i] = token;
  batch.pos[i] = pos;
  batch.n_seq_id[i] = 1;
  batch.seq_id[i][0] = seq;
  batch.logits[i] = logits;
}

Event ErrorEvent(uint64_t id, const std::string& code, const std::string& message) {
  Event e;
  e.id = id;
  e.kind = Event::Kind::Error;
  e.code = code;
  e.message = message;
  return e;
}

uint64_t TaskId(const std::variant<GenerationTask, EmbeddingTask>& task) {
  return std::visit([](const auto& t) { return t.id; }, task);
}

}  // namespace

// One embedding task being worked through, a batch of texts per step (scheduler thread only).
struct Scheduler::EmbeddingJob {
  EmbeddingTask task;
  std::shared_ptr<std::atomic<bool>> cancelled;
  std::vector<std::vector<float>> vectors;
  size_t next = 0;                    // the first text not yet in a batch
  std::vector<llama_token> nextTokens;  // its tokens, once tokenized
  size_t done = 0;
  bool failed = false;
};

Scheduler::Scheduler(llama_context* ctx, std::shared_ptr<const void> keepAlive, SchedulerOptions options, EventSink* sink,
                     std::unique_ptr<Speculation> speculation)
    : ctx_(ctx),
      keepAlive_(std::move(keepAlive)),
      model_(llama_get_model(ctx)),
      vocab_(llama_model_get_vocab(model_)),
      options_(options),
      sink_(sink),
      nCtx_(llama_n_ctx(ctx)),
      nBatch_(llama_n_batch(ctx)),
      nUbatch_(llama_n_ubatch(ctx)),
      pooling_(static_cast<int32_t>(llama_pooling_type(ctx))),
      vocabSize_(llama_vocab_n_tokens(vocab_)),
      spec_(std::move(speculation)),
      fingerprint_(ModelFingerprint(model_)),
      stateUnsupported_(StateUnsupported(model_)) {
  options_.sequences = std::max<int32_t>(1, std::min<int32_t>(options_.sequences, static_cast<int32_t>(llama_n_seq_max(ctx))));
  if (options_.sequenceLimit <= 0 || options_.sequenceLimit > static_cast<int32_t>(nCtx_)) options_.sequenceLimit = static_cast<int32_t>(nCtx_);
  slots_.resize(static_cast<size_t>(options_.sequences));
  for (int32_t i = 0; i < options_.sequences; ++i) slots_[static_cast<size_t>(i)].id = i;
  reserved_.assign(static_cast<size_t>(options_.sequences), false);
  reservedNow_ = reserved_;
  batch_ = llama_batch_init(static_cast<int32_t>(std::max<uint32_t>(nBatch_, static_cast<uint32_t>(options_.sequences))), 0, 1);
  llama_set_abort_callback(ctx_, &Scheduler::ShouldAbort, this);
  thread_ = std::thread([this] { Loop(); });
}

Scheduler::~Scheduler() {
  Stop();
  llama_batch_free(batch_);
}

void Scheduler::Submit(GenerationTask task) {
  if (options_.embeddings) throw TeaError("ERR_INVALID_ARGUMENT", "this context computes embeddings, not completions");
  if (task.sequence < -1 || task.sequence >= options_.sequences) {
    throw TeaError("ERR_INVALID_ARGUMENT", "sequence " + std::to_string(task.sequence) + " is out of range: the model runs " +
                                               std::to_string(options_.sequences) + " sequences (0.." + std::to_string(options_.sequences - 1) + ")");
  }
  if (task.contextShift && !llama_memory_can_shift(llama_get_memory(ctx_))) {
    throw TeaError("ERR_INVALID_ARGUMENT", "contextShift: this model's memory cannot be shifted (llama_memory_can_shift)");
  }
  // The draft context mirrors the target's cells by removal only: a shift there is not mirrored (yet).
  if (task.contextShift && spec_) throw TeaError("ERR_INVALID_ARGUMENT", "contextShift is not available with speculative decoding");
  std::lock_guard<std::mutex> lock(mutex_);
  if (stopping_) throw TeaError("ERR_DISPOSED", "the model has been disposed");
  if (!lost_.empty()) throw TeaError("ERR_RPC_CONNECTION", lost_);
  const size_t free = static_cast<size_t>(std::max(0, options_.sequences - active_));
  if (queue_.size() >= free + static_cast<size_t>(options_.maxQueued)) {
    throw TeaError("ERR_QUEUE_FULL", "all " + std::to_string(options_.sequences) + " sequences are busy and " +
                                         std::to_string(options_.maxQueued) + " requests are already waiting (maxQueued)");
  }
  queue_.push_back({std::move(task), Clock::now(), std::make_shared<std::atomic<bool>>(false)});
  wake_.notify_one();
}

void Scheduler::Submit(EmbeddingTask task) {
  if (!options_.embeddings) throw TeaError("ERR_INVALID_ARGUMENT", "this context was not created for embeddings");
  if (task.rerankQuery && pooling_ != LLAMA_POOLING_TYPE_RANK) throw TeaError("ERR_INVALID_ARGUMENT", "reranking needs a context with rank pooling");
  std::lock_guard<std::mutex> lock(mutex_);
  if (stopping_) throw TeaError("ERR_DISPOSED", "the model has been disposed");
  if (!lost_.empty()) throw TeaError("ERR_RPC_CONNECTION", lost_);
  if (queue_.size() >= static_cast<size_t>(options_.maxQueued)) {
    throw TeaError("ERR_QUEUE_FULL", std::to_string(options_.maxQueued) + " embedding requests are already waiting (maxQueued)");
  }
  queue_.push_back({std::move(task), Clock::now(), std::make_shared<std::atomic<bool>>(false)});
  wake_.notify_one();
}

void Scheduler::Submit(StateTask task) {
  if (options_.embeddings) throw TeaError("ERR_INVALID_ARGUMENT", "an embedding context holds no sequence state");
  if (!stateUnsupported_.empty()) throw TeaError("ERR_INVALID_ARGUMENT", "saved state is not supported for " + stateUnsupported_);
  // A restored sequence would have no cells in the draft context that mirrors the target's.
  if (spec_) throw TeaError("ERR_INVALID_ARGUMENT", "saved state is not available with speculative decoding");
  if (task.sequence < -1 || task.sequence >= options_.sequences || (task.op == StateTask::Op::Save && task.sequence < 0)) {
    throw TeaError("ERR_INVALID_ARGUMENT", "sequence " + std::to_string(task.sequence) + " is out of range: the model runs " +
                                               std::to_string(options_.sequences) + " sequences (0.." + std::to_string(options_.sequences - 1) + ")");
  }
  std::lock_guard<std::mutex> lock(mutex_);
  if (stopping_) throw TeaError("ERR_DISPOSED", "the model has been disposed");
  if (!lost_.empty()) throw TeaError("ERR_RPC_CONNECTION", lost_);
  stateQueue_.push_back({std::move(task), Clock::now()});
  wake_.notify_one();
}

int32_t Scheduler::Reserve() {
  std::lock_guard<std::mutex> lock(mutex_);
  const auto unreserved = std::count(reserved_.begin(), reserved_.end(), false);
  if (unreserved <= 1) {
    throw TeaError("ERR_QUEUE_FULL", "no sequence left to reserve: " + std::to_string(options_.sequences - 1) + " of " + std::to_string(options_.sequences) +
                                         " are reserved (one always stays for other requests); raise `sequences` or dispose a session");
  }
  // The highest unreserved id: the scheduler's least-recently-used choice starts from the low ones.
  for (int32_t i = options_.sequences - 1; i >= 0; --i) {
    if (!reserved_[static_cast<size_t>(i)]) {
      reserved_[static_cast<size_t>(i)] = true;
      return i;
    }
  }
  throw TeaError("ERR_INTERNAL", "no sequence to reserve");
}

void Scheduler::Release(int32_t sequence) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (sequence >= 0 && sequence < options_.sequences) reserved_[static_cast<size_t>(sequence)] = false;
}

void Scheduler::Cancel(uint64_t id) {
  bool removed = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto it = queue_.begin(); it != queue_.end(); ++it) {
      if (TaskId(it->task) == id) {
        queue_.erase(it);
        removed = true;
        break;
      }
    }
    if (!removed) {
      for (auto& [runningId, flag] : running_) {
        if (runningId == id) flag->store(true);
      }
    }
    wake_.notify_one();
  }
  if (removed) {
    std::vector<Event> events{ErrorEvent(id, "ERR_ABORTED", "aborted while waiting for a free sequence")};
    sink_->Publish(std::move(events));
  }
}

void Scheduler::Stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
    abortAll_.store(true);
    wake_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
}

Scheduler::Counts Scheduler::counts() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return {active_, static_cast<int32_t>(queue_.size())};
}

// Called by ggml's first compute thread (the scheduler thread) between graph nodes: interrupts a decode when the
// scheduler stops or when every request in the batch has been cancelled.
bool Scheduler::ShouldAbort(void* self) {
  auto* s = static_cast<Scheduler*>(self);
  if (s->abortAll_.load()) return true;
  if ((++s->abortChecks_ & 63) != 0 || s->inBatch_.empty()) return false;
  for (const Slot* slot : s->inBatch_) {
    if (!slot->cancelled || !slot->cancelled->load()) return false;
  }
  return true;
}

void Scheduler::Loop() {
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      if (!applied_.empty() && queue_.empty() && stateQueue_.empty() && active_ == 0 && !stopping_) {
        // Idle: the context lets its adapters go, so a disposed adapter's memory is freed now, not at the next request.
        lock.unlock();
        llama_set_adapters_lora(ctx_, nullptr, 0, nullptr);
        applied_.clear();
        lock.lock();
      }
      wake_.wait(lock, [this] { return stopping_ || !queue_.empty() || !stateQueue_.empty() || active_ > 0; });
      if (stopping_) break;
    }
    std::vector<Event> events;
    try {
      if (options_.embeddings) {
        StepEmbeddings(events);
      } else {
        Step(events);
      }
    } catch (const std::exception& e) {
      // A bug, an allocation failure or a lost RPC server: every running request learns of it, the scheduler goes on.
      const std::string code = CodeOf(e);
      for (Slot& slot : slots_) {
        if (slot.state != SlotState::Free) Fail(slot, code, e.what(), events);
      }
      std::lock_guard<std::mutex> lock(mutex_);
      for (EmbeddingJob& job : embeddingJobs_) {
        events.push_back(ErrorEvent(job.task.id, code, e.what()));
        Untrack(job.task.id);
      }
      embeddingJobs_.clear();
      if (code == "ERR_RPC_CONNECTION") {
        // A lost RPC server: the model's layers there are gone, so the context is unusable for good. What waits
        // and whatever comes later fails at once with the same error; Stop and the destructor still work.
        lost_ = e.what();
        for (Queued& q : queue_) events.push_back(ErrorEvent(TaskId(q.task), code, lost_));
        queue_.clear();
        for (QueuedState& q : stateQueue_) events.push_back(ErrorEvent(q.task.id, code, lost_));
        stateQueue_.clear();
      }
    }
    Publish(events);
  }

  // Stopping: what runs ends with what it has, what waits is told.
  std::vector<Event> events;
  inBatch_.clear();
  for (Slot& slot : slots_) {
    if (slot.state != SlotState::Free) Finish(slot, "abort", events);
  }
  for (EmbeddingJob& job : embeddingJobs_) events.push_back(ErrorEvent(job.task.id, "ERR_DISPOSED", "the model was disposed"));
  embeddingJobs_.clear();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (Queued& q : queue_) events.push_back(ErrorEvent(TaskId(q.task), "ERR_DISPOSED", "the model was disposed"));
    queue_.clear();
    for (QueuedState& q : stateQueue_) events.push_back(ErrorEvent(q.task.id, "ERR_DISPOSED", "the model was disposed"));
    stateQueue_.clear();
  }
  Publish(events);
  for (Slot& slot : slots_) slot.sampler.reset();
  spec_.reset();  // its draft context, on the thread that ran its decodes
  // A lost RPC server that only async commands met is reported by the next synchronize, which must not be the one
  // in llama_context's destructor (an exception there ends the process): take it here.
  try {
    llama_synchronize(ctx_);
  } catch (const std::exception&) {
  }
  llama_free(ctx_);  // on the thread that ran its decodes: the OpenMP team it created goes with it
  ctx_ = nullptr;
  applied_.clear();  // after the context that pointed to them
  for (Slot& slot : slots_) slot.task.lora.clear();
#if defined(__GLIBC__)
  // A context freed by the garbage collector goes long after newer allocations: glibc keeps the freed KV and
  // compute buffers in its arenas (measured: 2.8 MB of RSS per collected stories260K context, for ever).
  malloc_trim(0);
#endif
}

void Scheduler::Publish(std::vector<Event>& events) {
  if (events.empty()) return;
  sink_->Publish(std::move(events));
  events.clear();
}

// ---- generation ------------------------------------------------------------------------------------------------

void Scheduler::Step(std::vector<Event>& events) {
  ++steps_;
  for (Slot& slot : slots_) {
    if (slot.state != SlotState::Free && slot.cancelled->load()) Finish(slot, "abort", events);
  }
  RunStateTasks(events);
  Admit(events);
  // llama-server's pre_decode: a generating sequence whose next token would reach the limit shifts first.
  for (Slot& slot : slots_) {
    if (slot.state == SlotState::Generating && slot.task.contextShift &&
        static_cast<int32_t>(slot.cached.size()) + 1 >= options_.sequenceLimit && !ShiftContext(slot)) {
      slot.stats.contextFull = true;
      Finish(slot, "length", events);
    }
  }
  if (spec_) DraftSlots();
  BuildBatch();
  if (batch_.n_tokens == 0) return;
  if (Decode(events)) SampleSlots(events);
}

void Scheduler::Admit(std::vector<Event>& events) {
  for (;;) {
    Queued queued;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      reservedNow_ = reserved_;
      // The first task that can run now: one pinned to a busy sequence lets the others pass.
      auto it = std::find_if(queue_.begin(), queue_.end(), [this](const Queued& q) { return Admissible(q.task); });
      if (it == queue_.end()) return;
      queued = std::move(*it);
      queue_.erase(it);
      // Tracked from here on, so a Cancel that comes while it is being admitted is not lost.
      running_.emplace_back(TaskId(queued.task), queued.cancelled);
      ++active_;
    }
    AdmitGeneration(queued, events);
  }
}

void Scheduler::AdmitGeneration(Queued& queued, std::vector<Event>& events) {
  GenerationTask& task = std::get<GenerationTask>(queued.task);
  const auto reject = [&](const std::string& code, const std::string& message) {
    events.push_back(ErrorEvent(task.id, code, message));
    std::lock_guard<std::mutex> lock(mutex_);
    Untrack(task.id);
  };
  if (queued.cancelled->load()) return reject("ERR_ABORTED", "aborted while waiting for a free sequence");
  std::vector<llama_token> prompt;
  try {
    prompt = task.infill ? InfillTokens(vocab_, *task.infill, static_cast<int32_t>(nBatch_), task.maxTokens, options_.sequenceLimit)
                         : Tokenize(vocab_, task.prompt, /*addSpecial=*/true, /*parseSpecial=*/true);
  } catch (const TeaError& e) {
    return reject(e.code(), e.what());
  }
  if (prompt.empty()) return reject("ERR_INVALID_ARGUMENT", "the prompt is empty and the model adds no BOS token");
  const int32_t limit = options_.sequenceLimit;
  if (static_cast<int32_t>(prompt.size()) >= limit) {
    return reject("ERR_CONTEXT_OVERFLOW", "the prompt has " + std::to_string(prompt.size()) + " tokens but the context holds " +
                                              std::to_string(limit) + ": shorten it or raise contextSize");
  }

  // Before the slot is chosen: a grammar or schema llama.cpp rejects fails the request before any token.
  SamplerPtr sampler;
  std::set<llama_token> preserved;
  // A speculative context verifies drafts with llama.cpp's sample-and-accept, which takes a sampler (greedy too).
  if (spec_ || !task.sampling.plainGreedy() || !task.grammar.empty()) {
    try {
      sampler = MakeSampler(model_, task.sampling, task.grammar, static_cast<int32_t>(nCtx_), &preserved);
    } catch (const TeaError& e) {
      return reject(e.code(), e.what());
    }
  }

  if (sampler && task.sampling.usesHistory()) {
    for (llama_token t : prompt) AcceptPromptToken(sampler.get(), t);
  }

  Slot& slot = *ChooseSlot(prompt, task.sequence, task.lora);
  // Reuse the KV cells of the longest common prefix; at least the last prompt token is decoded again so its
  // logits exist. A one-token match is only the BOS: recomputing it from position 0 is faster than starting the
  // new tokens at position 1, where flash-attention tiles straddle the causal diagonal (llama-bench: pp127 at depth
  // 1 is 6-8% slower than at depth 0 on stories260K).
  // Cells computed under another LoRA configuration are not reused.
  size_t keep = 0;
  const size_t common = slot.cachedLora.Matches(task.lora) ? std::min(slot.cached.size(), prompt.size() - 1) : 0;
  while (keep < common && slot.cached[keep] == prompt[keep]) ++keep;
  if (keep == 1) keep = 0;
  llama_memory_t memory = llama_get_memory(ctx_);
  if (!llama_memory_seq_rm(memory, slot.id, static_cast<llama_pos>(keep), -1)) {
    llama_memory_seq_rm(memory, slot.id, -1, -1);
    keep = 0;
  }
  if (spec_) spec_->Remove(slot.id, static_cast<llama_pos>(keep), -1);
  slot.cached.resize(keep);
  slot.cachedLora = LoraKey::Of(task.lora);

  slot.state = SlotState::Prompt;
  slot.task = std::move(task);
  slot.cancelled = queued.cancelled;
  slot.prompt = std::move(prompt);
  slot.promptDone = keep;
  slot.next = -1;
  slot.draft.clear();
  slot.sampler = std::move(sampler);
  slot.preserved = std::move(preserved);
  slot.stream = TextStream(slot.task.stop);
  slot.utf8Tail.clear();
  slot.stats = GenerationStats{};
  slot.stats.promptTokens = static_cast<int32_t>(slot.prompt.size());
  slot.stats.reusedPromptTokens = static_cast<int32_t>(keep);
  slot.stats.slot = slot.id;
  slot.submitted = queued.submitted;
  slot.admitted = Clock::now();
  slot.stats.queuedMs = MsBetween(slot.submitted, slot.admitted);
}

bool Scheduler::Admissible(const Task& task) const {
  const int32_t pinned = std::holds_alternative<GenerationTask>(task) ? std::get<GenerationTask>(task).sequence : -1;
  if (pinned >= 0) return slots_[static_cast<size_t>(pinned)].state == SlotState::Free;
  for (const Slot& slot : slots_) {
    if (slot.state == SlotState::Free && !reservedNow_[static_cast<size_t>(slot.id)]) return true;
  }
  return false;
}

Scheduler::Slot* Scheduler::ChooseSlot(const std::vector<llama_token>& prompt, int32_t pinned, const LoraConfig& lora) {
  if (pinned >= 0) return &slots_[static_cast<size_t>(pinned)];
  Slot* best = nullptr;
  size_t bestPrefix = 0;
  Slot* oldest = nullptr;
  for (Slot& slot : slots_) {
    if (slot.state != SlotState::Free || reservedNow_[static_cast<size_t>(slot.id)]) continue;
    size_t prefix = 0;
    const size_t n = slot.cachedLora.Matches(lora) ? std::min(slot.cached.size(), prompt.size()) : 0;
    while (prefix < n && slot.cached[prefix] == prompt[prefix]) ++prefix;
    if (prefix > bestPrefix) {
      best = &slot;
      bestPrefix = prefix;
    }
    if (!oldest || slot.lastUsed < oldest->lastUsed) oldest = &slot;
  }
  // A BOS-only match is no reuse: take the least recently used slot and keep the others' caches for their owners.
  return best && bestPrefix > 1 ? best : oldest;
}

void Scheduler::BuildBatch() {
  batch_.n_tokens = 0;
  inBatch_.clear();
  // One LoRA configuration per batch: that of the first slot with work from loraTurn_ on. When others wait, the
  // next batch's turn starts after that slot.
  const LoraConfig* group = nullptr;
  bool mixed = false;
  const size_t n = slots_.size();
  for (size_t k = 0; k < n; ++k) {
    const Slot& slot = slots_[(loraTurn_ + k) % n];
    if (slot.state == SlotState::Free) continue;
    if (group == nullptr) {
      group = &slot.task.lora;
      loraTurn_ = (loraTurn_ + k) % n;
    } else if (!SameLora(*group, slot.task.lora)) {
      mixed = true;
    }
  }
  if (mixed) loraTurn_ = (loraTurn_ + 1) % n;
  const auto outOfGroup = [&](const Slot& slot) { return group != nullptr && !SameLora(*group, slot.task.lora); };
  for (Slot& slot : slots_) {
    slot.batchIndex = -1;
    slot.batchTokens = 0;
    if (slot.state != SlotState::Generating || outOfGroup(slot)) continue;
    slot.batchIndex = batch_.n_tokens;
    slot.batchTokens = 1 + static_cast<int32_t>(slot.draft.size());
    const auto pos = static_cast<llama_pos>(slot.cached.size());
    AddToken(batch_, slot.next, pos, slot.id, true);
    for (size_t i = 0; i < slot.draft.size(); ++i) AddToken(batch_, slot.draft[i], pos + 1 + static_cast<llama_pos>(i), slot.id, true);
    inBatch_.push_back(&slot);
  }
  // Prompt chunks share what is left of n_batch evenly; a share one slot cannot use goes to the others.
  int32_t budget = static_cast<int32_t>(nBatch_) - batch_.n_tokens;
  std::vector<Slot*> prompts;
  for (Slot& slot : slots_) {
    if (slot.state == SlotState::Prompt && !outOfGroup(slot)) prompts.push_back(&slot);
  }
  std::vector<int32_t> take(prompts.size(), 0);
  for (bool progress = true; budget > 0 && progress;) {
    progress = false;
    int32_t wanting = 0;
    for (size_t i = 0; i < prompts.size(); ++i) {
      if (prompts[i]->promptDone + static_cast<size_t>(take[i]) < prompts[i]->prompt.size()) ++wanting;
    }
    if (wanting == 0) break;
    const int32_t share = std::max(1, budget / wanting);
    for (size_t i = 0; i < prompts.size() && budget > 0; ++i) {
      const int32_t left = static_cast<int32_t>(prompts[i]->prompt.size() - prompts[i]->promptDone) - take[i];
      const int32_t n = std::min({share, left, budget});
      if (n <= 0) continue;
      take[i] += n;
      budget -= n;
      progress = true;
    }
  }
  for (size_t i = 0; i < prompts.size(); ++i) {
    if (take[i] == 0) continue;
    Slot& slot = *prompts[i];
    const size_t end = slot.promptDone + static_cast<size_t>(take[i]);
    for (size_t t = slot.promptDone; t < end; ++t) {
      const bool last = t + 1 == slot.prompt.size();
      if (last) slot.batchIndex = batch_.n_tokens;
      AddToken(batch_, slot.prompt[t], static_cast<llama_pos>(t), slot.id, last);
    }
    slot.batchTokens = take[i];
    inBatch_.push_back(&slot);
  }
}

bool Scheduler::Decode(std::vector<Event>& events) {
  for (;;) {
    if (batch_.n_tokens == 0) return false;
    if (options_.onBatch) options_.onBatch(batch_);
    // Every slot of the batch has the same LoRA configuration (BuildBatch).
    if (!SameLora(applied_, inBatch_.front()->task.lora)) {
      ApplyLora(ctx_, inBatch_.front()->task.lora);
      applied_ = inBatch_.front()->task.lora;
    }
    const int32_t status = llama_decode(ctx_, batch_);
    if (status == 0 && spec_ && !spec_->Process(batch_)) {
      for (Slot* slot : inBatch_) Fail(*slot, "ERR_DECODE", "the draft model failed to decode the batch", events);
      inBatch_.clear();
      return false;
    }
    if (status == 0) return true;
    if (status == 2 || abortAll_.load()) {
      // Every request in the batch was cancelled (or the scheduler stops): forget what the interrupted decode
      // may have written; the next step finishes them.
      for (Slot* slot : inBatch_) DropSequence(*slot);
      inBatch_.clear();
      return false;
    }
    if (status == 1) {
      // No room in the KV cache. Idle slots give their cached prefixes up first, reserved ones (a chat
      // session's conversation) only when the others were not enough.
      bool freed = false;
      for (const bool reserved : {false, true}) {
        if (freed) break;
        for (Slot& slot : slots_) {
          if (slot.state == SlotState::Free && !slot.cached.empty() && reservedNow_[static_cast<size_t>(slot.id)] == reserved) {
            llama_memory_seq_rm(llama_get_memory(ctx_), slot.id, -1, -1);
            if (spec_) spec_->Remove(slot.id, -1, -1);
            slot.cached.clear();
            freed = true;
          }
        }
      }
      if (!freed) {
        // Then the request that holds the most cells ends, as if its context were full.
        Slot* victim = nullptr;
        for (Slot* slot : inBatch_) {
          if (!victim || slot->cached.size() > victim->cached.size()) victim = slot;
        }
        victim->stats.contextFull = true;
        Finish(*victim, "length", events);
        llama_memory_seq_rm(llama_get_memory(ctx_), victim->id, -1, -1);
        if (spec_) spec_->Remove(victim->id, -1, -1);
        victim->cached.clear();
      }
      BuildBatch();
      continue;
    }
    for (Slot* slot : inBatch_) {
      Fail(*slot, "ERR_DECODE", "llama_decode failed (status " + std::to_string(status) + ")", events);
    }
    inBatch_.clear();
    return false;
  }
}

void Scheduler::SampleSlots(std::vector<Event>& events) {
  const auto now = Clock::now();
  for (Slot* slotPtr : inBatch_) {
    Slot& slot = *slotPtr;
    if (slot.state == SlotState::Generating) {
      slot.cached.push_back(slot.next);
    } else {
      slot.cached.insert(slot.cached.end(), slot.prompt.begin() + static_cast<std::ptrdiff_t>(slot.promptDone),
                         slot.prompt.begin() + static_cast<std::ptrdiff_t>(slot.promptDone) + slot.batchTokens);
      slot.promptDone += static_cast<size_t>(slot.batchTokens);
    }
    if (slot.batchIndex < 0) continue;  // more of its prompt to come
    if (slot.state == SlotState::Prompt) {
      slot.state = SlotState::Generating;
      slot.firstToken = now;
      slot.stats.promptMs = MsBetween(slot.admitted, now);
      slot.stats.firstTokenMs = MsBetween(slot.submitted, now);
    }
    const int32_t maxTokens = slot.task.maxTokens;
    if (maxTokens >= 0 && slot.stats.completionTokens >= maxTokens) {
      Finish(slot, "length", events);
      continue;
    }
    if (static_cast<int32_t>(slot.cached.size()) >= options_.sequenceLimit && !slot.task.contextShift) {
      slot.stats.contextFull = true;
      Finish(slot, "length", events);
      continue;
    }
    if (!slot.draft.empty()) {
      SampleDraft(slot, events);
      continue;
    }
    const float* logits = llama_get_logits_ith(ctx_, slot.batchIndex);
    if (logits == nullptr) throw TeaError("ERR_DECODE", "llama.cpp returned no logits");
    const llama_token token = slot.sampler ? Sample(slot.sampler.get(), ctx_, slot.batchIndex) : ArgMax(logits, vocabSize_);
    if (EmitToken(slot, token, slot.batchIndex, events) && spec_ && slot.stats.completionTokens == 1) spec_->Begin(slot.id, slot.cached);
  }
}

bool Scheduler::EmitToken(Slot& slot, llama_token token, int32_t index, std::vector<Event>& events) {
  // A model whose metadata makes it compute NaN (rope.freq_base = 0, ...) would sample garbage: one float per
  // step tells (a NaN row yields a NaN for whatever token comes out of it).
  const float* logits = llama_get_logits_ith(ctx_, index);
  if (logits == nullptr) throw TeaError("ERR_DECODE", "llama.cpp returned no logits");
  if (!std::isfinite(logits[token])) {
    Fail(slot, "ERR_NUMERIC", NonFiniteMessage(model_, "the logits"), events);
    return false;
  }
  const bool special = slot.preserved.count(token) != 0;
  if (llama_vocab_is_eog(vocab_, token)) {
    if (slot.task.sampling.logprobs) AddLogprobs(slot, logits, token, special);  // llama-server lists the end token too
    Finish(slot, "stop", events);
    return false;
  }
  ++slot.stats.completionTokens;
  const std::string piece = TokenToPiece(vocab_, token, special);
  if (slot.task.sampling.logprobs) {
    // As llama-server: a token that leaves a UTF-8 character incomplete gets no entry.
    slot.utf8Tail += piece;
    slot.utf8Tail.erase(0, slot.utf8Tail.size() - IncompleteUtf8Tail(slot.utf8Tail));
    if (slot.utf8Tail.empty()) AddLogprobs(slot, logits, token, special);
  }
  const std::string text = slot.stream.Push(piece);
  if (slot.task.stream && !text.empty()) {
    Event e;
    e.id = slot.task.id;
    e.text = text;
    events.push_back(std::move(e));
  }
  if (slot.stream.stopped()) {
    if (slot.task.sampling.logprobs) TrimStopLogprobs(vocab_, slot.stream.stopWord(), slot.stats.logprobs);
    Finish(slot, "stop", events);
    return false;
  }
  const int32_t maxTokens = slot.task.maxTokens;
  if (maxTokens >= 0 && slot.stats.completionTokens >= maxTokens) {
    Finish(slot, "length", events);  // no need to decode a token nothing will follow
    return false;
  }
  slot.next = token;
  return true;
}

// As llama-server: each generating slot drafts up to what its context, its maxTokens and the batch leave room for.
void Scheduler::DraftSlots() {
  int32_t generating = 0;
  for (const Slot& slot : slots_) generating += slot.state == SlotState::Generating ? 1 : 0;
  if (generating == 0) return;
  const int32_t share = (static_cast<int32_t>(nBatch_) - generating) / generating;
  std::vector<Slot*> drafting;
  for (Slot& slot : slots_) {
    slot.draft.clear();
    if (slot.state != SlotState::Generating) continue;
    // One cell stays free past the draft: the token sampled after it.
    int32_t nMax = std::min(share, options_.sequenceLimit - static_cast<int32_t>(slot.cached.size()) - 2);
    if (slot.task.maxTokens >= 0) nMax = std::min(nMax, slot.task.maxTokens - slot.stats.completionTokens - 1);
    if (nMax <= 0) continue;
    spec_->Request(slot.id, static_cast<llama_pos>(slot.cached.size()), slot.next, &slot.cached, &slot.draft, nMax);
    drafting.push_back(&slot);
  }
  spec_->Draft();
  for (Slot* slot : drafting) slot->stats.draftTokens += static_cast<int32_t>(slot->draft.size());
}

void Scheduler::SampleDraft(Slot& slot, std::vector<Event>& events) {
  const size_t start = slot.cached.size();  // `next` is already in it
  const std::vector<llama_token> ids = VerifyDraft(slot.sampler.get(), ctx_, slot.batchIndex, slot.draft);
  const int32_t accepted = static_cast<int32_t>(ids.size()) - 1;
  spec_->Accept(slot.id, accepted);
  slot.stats.acceptedDraftTokens += accepted;
  // The accepted drafts stay in the KV cache (the last sampled token is the next `next`); the rest go.
  slot.cached.insert(slot.cached.end(), ids.begin(), ids.begin() + accepted);
  slot.draft.clear();
  llama_memory_seq_rm(llama_get_memory(ctx_), slot.id, static_cast<llama_pos>(slot.cached.size()), -1);
  spec_->Remove(slot.id, static_cast<llama_pos>(slot.cached.size()), -1);
  // Token by token, as if each had come from its own step: stop strings, EOG and maxTokens end it exactly there.
  for (size_t j = 0; j < ids.size(); ++j) {
    if (j > 0 && static_cast<int32_t>(start + j) >= options_.sequenceLimit) {
      slot.stats.contextFull = true;
      Finish(slot, "length", events);
      return;
    }
    if (!EmitToken(slot, ids[j], slot.batchIndex + static_cast<int32_t>(j), events)) return;
  }
}

void Scheduler::AddLogprobs(Slot& slot, const float* logits, llama_token token, bool special) {
  slot.stats.logprobs.push_back(TokenLogprobsAt(vocab_, logits, vocabSize_, token, slot.task.sampling.topLogprobs, special));
}

void Scheduler::Finish(Slot& slot, const std::string& reason, std::vector<Event>& events) {
  const std::string rest = slot.stream.Finish();
  if (slot.task.stream && !rest.empty()) {
    Event e;
    e.id = slot.task.id;
    e.text = rest;
    events.push_back(std::move(e));
  }
  const auto now = Clock::now();
  Event done;
  done.id = slot.task.id;
  done.kind = Event::Kind::Done;
  done.stats = slot.stats;
  done.stats.text = slot.stream.text();
  done.stats.finishReason = reason;
  if (slot.state == SlotState::Generating) {
    done.stats.generationMs = MsBetween(slot.firstToken, now);
  } else {
    done.stats.promptMs = MsBetween(slot.admitted, now);
  }
  events.push_back(std::move(done));
  // A prompt cut off part-way keeps the part it decoded: `cached` says exactly what the sequence holds.
  slot.state = SlotState::Free;
  slot.lastUsed = steps_;
  slot.sampler.reset();
  slot.draft.clear();
  slot.task.lora.clear();  // its adapters may go; cachedLora still tells what the cells were made with
  slot.batchIndex = -1;
  std::lock_guard<std::mutex> lock(mutex_);
  Untrack(slot.task.id);
}

void Scheduler::Fail(Slot& slot, const std::string& code, const std::string& message, std::vector<Event>& events) {
  events.push_back(ErrorEvent(slot.task.id, code, message));
  llama_memory_seq_rm(llama_get_memory(ctx_), slot.id, -1, -1);
  if (spec_) spec_->Remove(slot.id, -1, -1);
  slot.draft.clear();
  slot.cached.clear();
  slot.state = SlotState::Free;
  slot.lastUsed = steps_;
  slot.sampler.reset();
  slot.task.lora.clear();
  std::lock_guard<std::mutex> lock(mutex_);
  Untrack(slot.task.id);
}

void Scheduler::Untrack(uint64_t id) {
  const auto it = std::find_if(running_.begin(), running_.end(), [&](const auto& r) { return r.first == id; });
  if (it == running_.end()) return;
  running_.erase(it);
  --active_;
}

void Scheduler::DropSequence(Slot& slot) {
  // Cells past what `cached` records may hold half-written state.
  llama_memory_seq_rm(llama_get_memory(ctx_), slot.id, static_cast<llama_pos>(slot.cached.size()), -1);
  if (spec_) spec_->Remove(slot.id, static_cast<llama_pos>(slot.cached.size()), -1);
}

bool Scheduler::ShiftContext(Slot& slot) {
  // As server-context.cpp: n_keep counts the prompt without its BOS (-1: all of it), n_discard defaults to half of
  // what follows, and at least one token after n_keep stays.
  const int32_t limit = options_.sequenceLimit;
  int32_t nKeep = slot.task.nKeep < 0 ? static_cast<int32_t>(slot.prompt.size()) : slot.task.nKeep;
  if (llama_vocab_get_add_bos(vocab_)) nKeep += 1;
  nKeep = std::max(0, std::min(limit - 4, nKeep));
  const int32_t n = static_cast<int32_t>(slot.cached.size());
  const int32_t nLeft = n - nKeep;
  int32_t nDiscard = slot.task.nDiscard != 0 ? slot.task.nDiscard : nLeft / 2;
  nDiscard = std::clamp(nDiscard, 0, std::max(0, nLeft - 1));
  if (nDiscard <= 0) return false;
  llama_memory_t memory = llama_get_memory(ctx_);
  llama_memory_seq_rm(memory, slot.id, nKeep, nKeep + nDiscard);
  llama_memory_seq_add(memory, slot.id, nKeep + nDiscard, n, -nDiscard);
  slot.cached.erase(slot.cached.begin() + nKeep, slot.cached.begin() + nKeep + nDiscard);
  ++slot.stats.contextShifts;
  return true;
}

// ---- saved state -----------------------------------------------------------------------------------------------

void Scheduler::RunStateTasks(std::vector<Event>& events) {
  std::deque<QueuedState> pending;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stateQueue_.empty()) return;
    pending.swap(stateQueue_);
    reservedNow_ = reserved_;
  }
  std::deque<QueuedState> waiting;
  for (QueuedState& q : pending) {
    Slot* slot = nullptr;
    if (q.task.sequence >= 0) {
      slot = &slots_[static_cast<size_t>(q.task.sequence)];
      if (slot->state != SlotState::Free) slot = nullptr;
    } else {
      for (Slot& s : slots_) {
        if (s.state == SlotState::Free && !reservedNow_[static_cast<size_t>(s.id)] && (!slot || s.lastUsed < slot->lastUsed)) slot = &s;
      }
    }
    if (!slot) {
      waiting.push_back(std::move(q));  // its sequence is busy: after this step, perhaps
      continue;
    }
    Event e;
    e.id = q.task.id;
    try {
      e.state = q.task.op == StateTask::Op::Save ? SaveState(*slot, q.task) : LoadState(*slot, q.task);
      e.kind = Event::Kind::State;
    } catch (const std::exception& error) {
      e = ErrorEvent(q.task.id, CodeOf(error), error.what());
    }
    events.push_back(std::move(e));
  }
  if (!waiting.empty()) {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto it = waiting.rbegin(); it != waiting.rend(); ++it) stateQueue_.push_front(std::move(*it));
  }
}

StateResult Scheduler::SaveState(Slot& slot, const StateTask& task) {
  if (slot.cached.empty()) throw TeaError("ERR_INVALID_ARGUMENT", "sequence " + std::to_string(slot.id) + " holds no tokens to save");
  std::vector<uint8_t> payload(llama_state_seq_get_size(ctx_, slot.id));
  const size_t n = llama_state_seq_get_data(ctx_, payload.data(), payload.size(), slot.id);
  if (n == 0) throw TeaError("ERR_INTERNAL", "llama.cpp could not save the state of sequence " + std::to_string(slot.id));
  payload.resize(n);
  try {
    CheckPayload(payload.data(), payload.size(), slot.cached, StateCellExt(model_));  // what a restore will demand
  } catch (const TeaError& e) {
    throw TeaError("ERR_INTERNAL", std::string("the saved sequence does not match its tokens: ") + e.what());
  }
  StateResult out;
  out.sequence = slot.id;
  out.tokens = static_cast<int32_t>(slot.cached.size());
  out.data = EncodeState(fingerprint_, slot.cached, task.meta, payload);
  slot.lastUsed = steps_;
  return out;
}

StateResult Scheduler::LoadState(Slot& slot, const StateTask& task) {
  DecodedState state = DecodeState(task.data.data(), task.data.size());
  if (state.fingerprint != fingerprint_) throw TeaError("ERR_INVALID_STATE", "invalid state file: it was saved with another model");
  const int32_t n = static_cast<int32_t>(state.tokens.size());
  if (n >= options_.sequenceLimit) {
    throw TeaError("ERR_CONTEXT_OVERFLOW", "the saved state holds " + std::to_string(n) + " tokens but a sequence of this context holds " +
                                               std::to_string(options_.sequenceLimit) + ": raise contextSize");
  }
  for (llama_token t : state.tokens) {
    if (t < 0 || t >= vocabSize_) throw TeaError("ERR_INVALID_STATE", "invalid state file: token " + std::to_string(t) + " is not in the vocabulary");
  }
  CheckPayload(state.payload, state.payloadSize, state.tokens, StateCellExt(model_));
  llama_memory_t memory = llama_get_memory(ctx_);
  llama_memory_seq_rm(memory, slot.id, -1, -1);
  slot.cached.clear();
  size_t read = llama_state_seq_set_data(ctx_, state.payload, state.payloadSize, slot.id);
  if (read == 0) {
    // Perhaps no room: idle unreserved sequences give their cached prefixes up, and it is tried once more.
    bool freed = false;
    for (Slot& other : slots_) {
      if (&other != &slot && other.state == SlotState::Free && !other.cached.empty() && !reservedNow_[static_cast<size_t>(other.id)]) {
        llama_memory_seq_rm(memory, other.id, -1, -1);
        other.cached.clear();
        freed = true;
      }
    }
    if (freed) read = llama_state_seq_set_data(ctx_, state.payload, state.payloadSize, slot.id);
  }
  if (read != state.payloadSize) {
    llama_memory_seq_rm(memory, slot.id, -1, -1);
    throw TeaError("ERR_INVALID_STATE", read == 0 ? "invalid state file: llama.cpp rejected the sequence state (another KV cache type or layout, or no room in the cache)"
                                                   : "invalid state file: the sequence state has trailing bytes");
  }
  slot.cached = std::move(state.tokens);
  slot.cachedLora = LoraKey::Of(LoraConfig{});  // saved state holds base-model cells (adapters are not saved with it)
  slot.lastUsed = steps_;
  StateResult out;
  out.sequence = slot.id;
  out.tokens = n;
  out.meta = std::move(state.meta);
  return out;
}

// ---- embeddings ------------------------------------------------------------------------------------------------

void Scheduler::StepEmbeddings(std::vector<Event>& events) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    while (!queue_.empty()) {
      Queued q = std::move(queue_.front());
      queue_.pop_front();
      EmbeddingJob job;
      job.task = std::move(std::get<EmbeddingTask>(q.task));
      job.cancelled = q.cancelled;
      job.vectors.resize(job.task.texts.size());
      running_.emplace_back(job.task.id, job.cancelled);
      ++active_;
      embeddingJobs_.push_back(std::move(job));
    }
  }
  const int32_t capacity = static_cast<int32_t>(std::min(nCtx_, nUbatch_));
  const bool encoderOnly = llama_model_has_encoder(model_) && !llama_model_has_decoder(model_);
  const int32_t nEmbd = pooling_ == LLAMA_POOLING_TYPE_RANK ? static_cast<int32_t>(llama_model_n_cls_out(model_))
                       : llama_model_n_embd_out(model_) > 0 ? llama_model_n_embd_out(model_) : llama_model_n_embd(model_);

  // Many texts of many requests in one batch, a sequence each, up to n_batch tokens and `sequences` texts.
  struct Entry {
    EmbeddingJob* job;
    size_t text;
    llama_seq_id seq;
  };
  std::vector<Entry> entries;
  batch_.n_tokens = 0;
  llama_seq_id seq = 0;
  bool full = false;
  for (EmbeddingJob& job : embeddingJobs_) {
    if (job.cancelled->load()) {
      job.failed = true;
      events.push_back(ErrorEvent(job.task.id, "ERR_ABORTED", "embedding aborted"));
      continue;
    }
    while (!full && !job.failed && job.next < job.task.texts.size() && seq < options_.sequences) {
      if (job.nextTokens.empty()) {
        try {
          const std::string& text = job.task.texts[job.next];
          job.nextTokens = job.task.rerankQuery ? RerankTokens(model_, *job.task.rerankQuery, text)
                                                : Tokenize(vocab_, text, /*addSpecial=*/true, /*parseSpecial=*/true);
        } catch (const TeaError& e) {
          job.failed = true;
          events.push_back(ErrorEvent(job.task.id, e.code(), e.what()));
          break;
        }
        const int32_t n = static_cast<int32_t>(job.nextTokens.size());
        const std::string which = "text " + std::to_string(job.next);
        if (n == 0 || n > capacity) {
          job.failed = true;
          events.push_back(n == 0 ? ErrorEvent(job.task.id, "ERR_INVALID_ARGUMENT", which + " produced no tokens")
                                  : ErrorEvent(job.task.id, "ERR_CONTEXT_OVERFLOW", which + " has " + std::to_string(n) +
                                                                                    " tokens but the embedding context holds " +
                                                                                    std::to_string(capacity)));
          break;
        }
      }
      const int32_t n = static_cast<int32_t>(job.nextTokens.size());
      if (batch_.n_tokens + n > static_cast<int32_t>(nBatch_)) {
        full = true;
        break;
      }
      for (int32_t i = 0; i < n; ++i) AddToken(batch_, job.nextTokens[static_cast<size_t>(i)], i, seq, true);
      entries.push_back({&job, job.next, seq});
      ++seq;
      ++job.next;
      job.nextTokens.clear();
    }
  }

  if (!entries.empty()) {
    if (llama_memory_t memory = llama_get_memory(ctx_)) llama_memory_clear(memory, true);
    if (options_.onBatch) options_.onBatch(batch_);
    const int32_t status = encoderOnly ? llama_encode(ctx_, batch_) : llama_decode(ctx_, batch_);
    for (const Entry& entry : entries) {
      EmbeddingJob& job = *entry.job;
      if (job.failed) continue;
      if (status != 0) {
        job.failed = true;
        events.push_back(status == 2 ? ErrorEvent(job.task.id, "ERR_ABORTED", "embedding aborted")
                                     : ErrorEvent(job.task.id, "ERR_DECODE", "llama.cpp failed to compute the embedding (status " +
                                                                              std::to_string(status) + ")"));
        continue;
      }
      const float* pooled = llama_get_embeddings_seq(ctx_, entry.seq);
      if (pooled == nullptr) throw TeaError("ERR_INTERNAL", "llama.cpp returned no pooled embedding");
      if (!AllFinite(pooled, static_cast<size_t>(nEmbd))) {
        job.failed = true;
        events.push_back(ErrorEvent(job.task.id, "ERR_NUMERIC", NonFiniteMessage(model_, "the embedding of text " + std::to_string(entry.text))));
        continue;
      }
      std::vector<float> v(pooled, pooled + nEmbd);
      if (job.task.normalize) {
        double sum = 0;
        for (float x : v) sum += static_cast<double>(x) * x;
        const double norm = std::sqrt(sum);
        if (norm > 0) {
          for (float& x : v) x = static_cast<float>(x / norm);
        }
      }
      job.vectors[entry.text] = std::move(v);
      ++job.done;
    }
  }

  for (auto it = embeddingJobs_.begin(); it != embeddingJobs_.end();) {
    if (!it->failed && it->done == it->task.texts.size()) {
      Event e;
      e.id = it->task.id;
      e.kind = Event::Kind::Embeddings;
      e.vectors = std::move(it->vectors);
      events.push_back(std::move(e));
    } else if (!it->failed) {
      ++it;
      continue;
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      Untrack(it->task.id);
    }
    it = embeddingJobs_.erase(it);
  }
}

}  // namespace tea
