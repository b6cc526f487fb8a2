// libFuzzer target: the results-JSON reader (what the command-line tool reads
// from files it is given). Any input must give a value or an Error, never a
// crash, a hang or undefined behaviour; a value must survive a round trip.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
import stichotrope;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto results = stichotrope::read_results_json(text, "fuzz");
  if (!results) {
    if (results.error().message.empty()) std::abort(); // an error always says what went wrong
    return 0;
  }
  // What was read is written and read again: the writer must accept anything
  // the reader produced, and the second reading must agree with the first.
  const std::string json = stichotrope::to_json(*results);
  const auto again = stichotrope::read_results_json(json, "round trip");
  if (!again || stichotrope::to_json(*again) != json) std::abort();
  (void)stichotrope::to_csv(*results);
  (void)stichotrope::to_table(*results);
  (void)stichotrope::to_folded(*results);
  (void)stichotrope::compare_results(*results, *again, 10.0);
  (void)stichotrope::merge_results({*results, *again});
  return 0;
}
