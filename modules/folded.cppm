// Folded stacks of the call tree, for flame graphs (src/folded.cpp).
module;
#include "output_headers.hpp"
export module stichotrope:folded;
import :results;

export namespace stichotrope {

/// What folded stacks are weighted by.
enum class fold_weight { self_time, active_time };
/// Folded stacks (`root;child;leaf weight`, one line per path) from the call
/// tree, for flame graph tools. A block with several parents has its weight
/// split between them in proportion to its time under each.
std::string to_folded(const ProfilerResults& results, fold_weight weight = fold_weight::self_time);

} // namespace stichotrope
