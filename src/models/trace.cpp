#include "models/trace.h"

namespace qrobust::models {
namespace {
thread_local std::vector<TracedOp>* t_trace = nullptr;
}

TraceScope::TraceScope() {
  TORCH_CHECK(t_trace == nullptr, "TraceScope: a trace is already open on this thread");
  t_trace = &ops_;
}

TraceScope::~TraceScope() { t_trace = nullptr; }

bool tracing() { return t_trace != nullptr; }

void record(TracedOp op) {
  if (t_trace != nullptr) t_trace->push_back(std::move(op));
}

}  // namespace qrobust::models
