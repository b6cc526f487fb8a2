module;
#include <ostream>
#include <string>
#include <utility>

#include <tl/expected.hpp>
export module stichotrope:error;

export namespace stichotrope {

/// What went wrong, coarsely; the message says exactly what and what to do.
enum class errc {
  invalid_track,    ///< a track index outside [0, max_tracks)
  empty_name,       ///< a block or track name that is empty
  io_error,         ///< a file could not be created, written or renamed
  too_many_sites,   ///< the profiler's call-site table is full
  invalid_input,    ///< a results file that is not valid JSON or not a results document
  invalid_argument, ///< options that cannot work (e.g. a repetition with no way to stop)
};

struct Error {
  errc code;
  std::string message;

  friend bool operator==(const Error&, const Error&) = default;
  friend std::ostream& operator<<(std::ostream& os, const Error& e) { return os << e.message; }
};

template <class T>
using expected = tl::expected<T, Error>;

} // namespace stichotrope

namespace stichotrope { // internal: the library's own shorthand, not exported
/// Returning an error: `return fail(errc::io_error, "...")`.
inline tl::unexpected<Error> fail(errc code, std::string message) {
  return tl::unexpected<Error>(Error{code, std::move(message)});
}
} // namespace stichotrope
