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
// retried without it. Other sequences are never touched (idle reserved sequences give their cells up after the
// unreserved ones). A sequence that reaches the per-sequence limit also finishes with "length" and contextFull,
// unless its task asks for llama-server's context shift: then, before the token that would reach the limit is
// decoded, nDiscard tokens after the first nKeep are removed from its cells and the rest moved back (as
// server-context.cpp's pre_decode), and the generation goes on.
//
// Reserved sequences (Reserve): only tasks that name them run there, so a chat session's cached conversation is not
// taken by other traffic. State tasks (save or restore one sequence's KV state) run between steps, once their
// sequence is idle.
//
// LoRA: the context has one adapter set per decode, so a batch holds only slots whose request has the same
// adapters and scales (llama-server's can_batch_with); the others wait for a later step, whose turn starts after
// the last slot served (round robin). A slot's cached cells are reused only by a request with the configuration
// they were computed under (llama-server clears a slot's cache when its LoRA changes).
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
#include "speculation.h"
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
  // that `ctx` was made from alive for as long as the scheduler runs. `speculation`: speculative decoding for every
  // generation of this context (drafted before each batch, verified in it; see speculation.h), or null.
  Scheduler(llama_context* ctx, std::shared_ptr<const void> keepAlive, SchedulerOptions options, EventSink* sink,
            std::unique_ptr<Speculation> speculation = nullptr);
  // Stops: running and queued work ends (see Stop), the thread is joined and the context freed.
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Queues a task. Throws ERR_QUEUE_FULL past maxQueued, ERR_DISPOSED after Stop, ERR_INVALID_ARGUMENT for a
  // task of the wrong kind for this context.
  void Submit(GenerationTask task);
  void Submit(EmbeddingTask task);
  // Queues a state save or restore (binding/core/state_file.h); its result is a State event, its failure an Error
  // event (ERR_INVALID_STATE for a file that does not fit this model). Throws ERR_INVALID_ARGUMENT on an
  // embedding context, for a model whose state is not supported, or for a sequence out of range.
  void Submit(StateTask task);
  // Reserves an unreserved sequence for tasks that name it (a chat session's); returns its id. At least one
  // sequence stays unreserved: throws ERR_QUEUE_FULL when none could be reserved.
  int32_t Reserve();
  // Ends a reservation; the sequence's cells stay as a cached prefix for anyone. Unknown ids are ignored.
  void Release(int32_t sequence);
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
  bool speculative() const { return spec_ != nullptr; }

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
    LoraKey cachedLora;                  // the LoRA configuration those cells were computed under
    uint64_t lastUsed = 0;               // step counter at release, for least-recently-used choice
    // The running task:
    GenerationTask task;
    std::shared_ptr<std::atomic<bool>> cancelled;
    std::vector<llama_token> prompt;
    size_t promptDone = 0;               // prompt tokens in the KV cache
    llama_token next = -1;               // sampled, not yet decoded
    int32_t batchIndex = -1;             // index of its logits in the current batch, -1: none
    int32_t batchTokens = 0;             // tokens it has in the current batch
    std::vector<llama_token> draft;      // speculative: drafted after `next`, in the batch after it
    SamplerPtr sampler;  // null for plain greedy without a grammar
    std::set<llama_token> preserved;     // tokens rendered as text (a grammar's tool-call markup), as llama-server
    TextStream stream;
    std::string utf8Tail;                // with logprobs: the generated bytes' last incomplete UTF-8 character
    GenerationStats stats;
    Clock::time_point submitted, admitted, firstToken;
  };

  struct EmbeddingJob;
  struct QueuedState {
    StateTask task;
    Clock::time_point submitted;
  };

  void Loop();
  // One step: admit, build the batch, decode, sample. Returns false when nothing was left to do.
  void Step(std::vector<Event>& events);
  void Admit(std::vector<Event>& events);
  void AdmitGeneration(Queued& queued, std::vector<Event>& events);
  // The slot for a new prompt: `pinned` when >= 0, else the free unreserved one with the longest common prefix
  // computed under the same LoRA configuration.
  Slot* ChooseSlot(const std::vector<llama_token>& prompt, int32_t pinned, const LoraConfig& lora);
  // Whether a queued task may be admitted now: a free slot it may use exists (under mutex_).
  bool Admissible(const Task& task) const;
  // Runs the state tasks whose sequence is idle; the others wait for the next step.
  void RunStateTasks(std::vector<Event>& events);
  StateResult SaveState(Slot& slot, const StateTask& task);
  StateResult LoadState(Slot& slot, const StateTask& task);
  // llama-server's context shift of one generating slot; false when nothing can be discarded.
  bool ShiftContext(Slot& slot);
  void BuildBatch();
  // Decodes the batch; handles a full cache by the policy above. Returns false when the decode failed or was
  // aborted (the slots involved have then been finished).
  bool Decode(std::vector<Event>& events);
  void SampleSlots(std::vector<Event>& events);
  // Speculative decoding: drafts for every generating slot, within what is left of n_batch, before BuildBatch.
  void DraftSlots();
  // Verifies a slot's draft against the batch's logits (llama.cpp's sample-and-accept) and emits what it accepted.
  void SampleDraft(Slot& slot, std::vector<Event>& events);
  // Emits one sampled token (its logits at batch index `index`); false when the slot finished on it.
  bool EmitToken(Slot& slot, llama_token token, int32_t index, std::vector<Event>& events);
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
  uint64_t fingerprint_;         // of the model, for state files
  std::string stateUnsupported_;  // why this model's state cannot be saved; empty: it can

  // Shared with the owner's thread, under mutex_.
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Queued> queue_;
  std::deque<QueuedState> stateQueue_;
  std::vector<bool> reserved_;  // per sequence: reserved for tasks that name it
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
  std::unique_ptr<Speculation> spec_;
  uint64_t steps_ = 0;
  uint32_t abortChecks_ = 0;
  std::vector<bool> reservedNow_;  // reserved_ as of the last Admit or state run
  size_t loraTurn_ = 0;   // the slot whose LoRA configuration the next batch takes, if it has work (round robin)
  LoraConfig applied_;    // set on ctx_: its shares keep the adapters llama.cpp points to alive

  std::thread thread_;  // last: starts once everything above exists
};

}  // namespace tea
