// The stichotrope module: an instrumentation profiler for threads and coroutines.
// This unit only assembles the partitions; each one holds one concern.
export module stichotrope;

export import :error;      // Error values returned through tl::expected
export import :config;     // settings from the code, the environment and a TOML file
export import :clock;      // time-stamp counter, calibration to nanoseconds
export import :results;    // plain value types: results, histograms, merging
export import :core;       // per-thread buffers, call-site slots, flows (internal)
export import :coro;       // Context for fibers/executors, flow and timed awaiters
export import :profiler;   // Profiler, Block scopes, Site handles, track() and wrap()
export import :task;       // task<T>: a coroutine type whose chain carries its flow
export import :report;     // the seed's formats: CSV, JSON, the console table
export import :files;      // files written whole or not at all
export import :trace;      // timelines for viewers: Chrome trace, speedscope
export import :folded;     // folded stacks for flame graphs
export import :prometheus; // Prometheus text exposition
export import :reader;     // results JSON read back, merged, compared
