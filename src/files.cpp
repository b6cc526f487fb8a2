// Files written whole or not at all (modules/files.cppm): a temporary in the
// same directory and a rename; devices and pipes written in place.
module;
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <ostream>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <tl/expected.hpp>
module stichotrope;

namespace stichotrope {
namespace {

std::string errno_text(int err) { return std::generic_category().message(err); }

Error io_error(const std::filesystem::path& file, std::string_view what, int err) {
  return Error{errc::io_error, "cannot " + std::string(what) + " '" + file.string() + "': " + errno_text(err)};
}

/// Writes all of `content` to `fd`; 0 or an errno value.
int write_all(int fd, std::string_view content) {
  while (!content.empty()) {
    const ssize_t n = ::write(fd, content.data(), content.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    content.remove_prefix(static_cast<std::size_t>(n));
  }
  return 0;
}

} // namespace

expected<void> write_file(const std::filesystem::path& file, std::string_view content) {
  if (file.empty()) return fail(errc::io_error, "cannot write a file with an empty path");
  struct stat st{};
  const bool exists = ::stat(file.c_str(), &st) == 0;
  if (exists && S_ISDIR(st.st_mode))
    return fail(errc::io_error, "cannot write '" + file.string() + "': it is a directory");
  if (exists && !S_ISREG(st.st_mode)) {
    // A device or a pipe: it cannot be replaced, so write it in place.
    const int fd = ::open(file.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return tl::unexpected(io_error(file, "open", errno));
    int err = write_all(fd, content);
    if (::close(fd) != 0 && err == 0) err = errno;
    if (err != 0) return tl::unexpected(io_error(file, "write", err));
    return {};
  }

  const std::filesystem::path dir = file.has_parent_path() ? file.parent_path() : std::filesystem::path(".");
  std::string temp = (dir / ("." + file.filename().string() + ".tmp.XXXXXX")).string();
  const int fd = ::mkstemp(temp.data());
  if (fd < 0) {
    const int err = errno;
    return fail(errc::io_error,
                "cannot create a file in '" + dir.string() + "' to write '" + file.string() + "': " + errno_text(err));
  }
  ::fchmod(fd, exists ? (st.st_mode & 07777) : 0644);
  int err = write_all(fd, content);
  if (err == 0 && ::fsync(fd) != 0) err = errno;
  if (::close(fd) != 0 && err == 0) err = errno;
  if (err == 0 && ::rename(temp.c_str(), file.c_str()) != 0) err = errno;
  if (err != 0) {
    ::unlink(temp.c_str());
    return tl::unexpected(io_error(file, "write", err));
  }
  return {};
}

} // namespace stichotrope
