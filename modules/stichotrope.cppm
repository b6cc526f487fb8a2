// The stichotrope module: an instrumentation profiler for threads and coroutines.
// This unit only assembles the partitions; each one holds one concern.
export module stichotrope;

export import :error;    // Error values returned through tl::expected
export import :clock;    // time-stamp counter, calibration to nanoseconds
export import :results;  // plain value types: results, histograms, merging
export import :core;     // per-thread buffers, call-site slots, contexts (internal)
export import :profiler; // Profiler, Block scopes, Site handles, track() wrappers
export import :format;   // CSV, JSON and console-table writers
