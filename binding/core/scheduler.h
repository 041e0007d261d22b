// Scheduler: continuous batching over one llama_context, in the shape of llama-server's server_context.
//
// One scheduler per context, on its own thread (never a libuv pool thread: a generation parks nothing of the
// host's). It owns the context (n_seq_max = sequences, one unified KV cache) and a bounded FIFO task queue. Each
// step: admit queued tasks into free slots (the slot whose cached tokens share the longest prefix with the prompt,
// so only the new suffix is decoded); build one llama_batch with one token for every generating slot and prompt
// chunks of the others, within n_batch and shared fairly; decode once; sample each slot; publish the step's events
// at once. It sleeps on a condition variable when idle.
//
// Threads: the constructor, Submit, Cancel, Counts and the destructor run on the owner's thread (the JS main
// thread in the addon, the test's thread in ctest); Loop and everything it calls run on the scheduler thread.
//
// A full KV cache: cells of idle slots are dropped first; if the batch still does not fit, the active slot that
// holds the most cells finishes with finishReason "length" and contextFull, its cells are freed, and the batch is
// retried without it. Other sequences are never touched. A sequence that reaches the per-sequence limit also
// finishes with "length" and contextFull (no context shift).
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <set>
#include <thread>
#include <variant>
#include <vector>

#include "llama.h"
#include "sampler.h"
#include "task.h"
#include "text_stream.h"

namespace tea {

struct SchedulerOptions {
  int32_t sequences = 4;        // parallel sequences (slots); n_seq_max of the context
  int32_t maxQueued = 1024;     // tasks that may wait for a slot; past it Submit throws ERR_QUEUE_FULL
  int32_t sequenceLimit = 0;    // most tokens one sequence may hold (prompt + generated); 0: n_ctx
  bool embeddings = false;      // an embedding context: takes EmbeddingTasks only
  // Called on the scheduler thread with each batch just before it is decoded (tests look at its shape).
  std::function<void(const llama_batch&)> onBatch;
};

class Scheduler {
 public:
  using Clock = std::chrono::steady_clock;

  // Takes ownership of `ctx` (freed on the scheduler thread, which ran its decodes). `keepAlive` keeps the model
  // that `ctx` was made from alive for as long as the scheduler runs.
  Scheduler(llama_context* ctx, std::shared_ptr<const void> keepAlive, SchedulerOptions options, EventSink* sink);
  // Stops: running and queued work ends (see Stop), the thread is joined and the context freed.
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Queues a task. Throws ERR_QUEUE_FULL past maxQueued, ERR_DISPOSED after Stop, ERR_INVALID_ARGUMENT for a
  // task of the wrong kind for this context.
  void Submit(GenerationTask task);
  void Submit(EmbeddingTask task);
  // Aborts a task: a queued one ends with an ERR_ABORTED error event; a running generation ends with what it
  // produced and finishReason "abort" (its slot is free for the next task at once). Unknown ids are ignored.
  void Cancel(uint64_t id);
  // Ends everything: queued tasks get ERR_DISPOSED, running ones finish with "abort"; the decode in flight is
  // interrupted through llama.cpp's abort callback. Returns once the scheduler thread has exited. Idempotent.
  void Stop();

  struct Counts {
    int32_t active = 0;
    int32_t queued = 0;
  };
  Counts counts() const;
  const SchedulerOptions& options() const { return options_; }
  uint32_t contextSize() const { return nCtx_; }
  uint32_t batchSize() const { return nBatch_; }
  uint32_t microBatchSize() const { return nUbatch_; }
  int32_t pooling() const { return pooling_; }

 private:
  using Task = std::variant<GenerationTask, EmbeddingTask>;
  struct Queued {
    Task task;
    Clock::time_point submitted;
    std::shared_ptr<std::atomic<bool>> cancelled;
  };
  enum class SlotState { Free, Prompt, Generating };
  struct Slot {
    int32_t id = 0;                      // its sequence id
    SlotState state = SlotState::Free;
    std::vector<llama_token> cached;     // tokens whose KV cells this sequence holds, in order
    uint64_t lastUsed = 0;               // step counter at release, for least-recently-used choice
    // The running task:
    GenerationTask task;
    std::shared_ptr<std::atomic<bool>> cancelled;
    std::vector<llama_token> prompt;
    size_t promptDone = 0;               // prompt tokens in the KV cache
    llama_token next = -1;               // sampled, not yet decoded
    int32_t batchIndex = -1;             // index of its logits in the current batch, -1: none
    int32_t batchTokens = 0;             // tokens it has in the current batch
    SamplerPtr sampler;  // null for plain greedy without a grammar
    std::set<llama_token> preserved;     // tokens rendered as text (a grammar's tool-call markup), as llama-server
    TextStream stream;
    std::string utf8Tail;                // with logprobs: the generated bytes' last incomplete UTF-8 character
    GenerationStats stats;
    Clock::time_point submitted, admitted, firstToken;
  };

  struct EmbeddingJob;

  void Loop();
  // One step: admit, build the batch, decode, sample. Returns false when nothing was left to do.
  void Step(std::vector<Event>& events);
  void Admit(std::vector<Event>& events);
  void AdmitGeneration(Queued& queued, std::vector<Event>& events);
  Slot* ChooseSlot(const std::vector<llama_token>& prompt);
  void BuildBatch();
  // Decodes the batch; handles a full cache by the policy above. Returns false when the decode failed or was
  // aborted (the slots involved have then been finished).
  bool Decode(std::vector<Event>& events);
  void SampleSlots(std::vector<Event>& events);
  // Records the log-probabilities of `token` sampled from `logits` (a request with logprobs).
  void AddLogprobs(Slot& slot, const float* logits, llama_token token, bool special);
  void Finish(Slot& slot, const std::string& reason, std::vector<Event>& events);
  void Fail(Slot& slot, const std::string& code, const std::string& message, std::vector<Event>& events);
  void DropSequence(Slot& slot);
  // Forgets a task that no longer runs (under mutex_).
  void Untrack(uint64_t id);
  void StepEmbeddings(std::vector<Event>& events);
  void Publish(std::vector<Event>& events);
  static bool ShouldAbort(void* self);

  llama_context* ctx_;
  std::shared_ptr<const void> keepAlive_;
  const llama_model* model_;
  const llama_vocab* vocab_;
  SchedulerOptions options_;
  EventSink* sink_;
  uint32_t nCtx_, nBatch_, nUbatch_;
  int32_t pooling_;
  int32_t vocabSize_;

  // Shared with the owner's thread, under mutex_.
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Queued> queue_;
  std::vector<std::pair<uint64_t, std::shared_ptr<std::atomic<bool>>>> running_;  // ids and flags of admitted tasks
  bool stopping_ = false;
  std::string lost_;  // set once an RPC server of the context is lost: every later Submit throws ERR_RPC_CONNECTION
  std::atomic<bool> abortAll_{false};
  int32_t active_ = 0;  // mirrored for counts()

  // Scheduler thread only.
  std::vector<Slot> slots_;
  llama_batch batch_{};
  std::vector<Slot*> inBatch_;
  std::list<EmbeddingJob> embeddingJobs_;
  uint64_t steps_ = 0;
  uint32_t abortChecks_ = 0;

  std::thread thread_;  // last: starts once everything above exists
};

}  // namespace tea
