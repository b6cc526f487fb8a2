// With -DSTICHOTROPE_INSTRUMENTATION=OFF the API still compiles and runs, and records nothing.
#define BOOST_TEST_MODULE compiled_out
#include <boost/test/unit_test.hpp>

#include <type_traits>
import stichotrope;

namespace {
int twice(int x) { return 2 * x; }
} // namespace

BOOST_AUTO_TEST_CASE(instrumentation_compiles_to_nothing) {
  static_assert(!stichotrope::instrumentation_compiled_in);
  stichotrope::Profiler profiler{"off"};
  {
    auto b = profiler.block(0, "x");
    BOOST_TEST(!b.active());
  }
  auto f = profiler.track(0, "twice", twice);
  static_assert(std::is_same_v<decltype(f), int (*)(int)>); // the callable itself, no wrapper
  BOOST_TEST(f(4) == 8);
  BOOST_TEST(!stichotrope::is_global_enabled());
  BOOST_TEST(profiler.get_results().total_hits() == 0u);
}
