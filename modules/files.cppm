// Files written whole or not at all (src/files.cpp).
module;
#include "output_headers.hpp"
export module stichotrope:files;
import :error;

export namespace stichotrope {

/// Writes `content` to `file` through a temporary in the same directory and a
/// rename, so a failed write never leaves a partial file nor destroys an
/// existing one. Devices and pipes (which cannot be renamed over) are written
/// directly.
expected<void> write_file(const std::filesystem::path& file, std::string_view content);

} // namespace stichotrope
