module;
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>
export module stichotrope:config;
import :error;

export namespace stichotrope {

/// What a full per-thread timeline buffer does with new events.
enum class overflow_policy {
  keep_first,  ///< keep the first events, refuse (and count) the rest
  keep_latest, ///< keep the most recent, overwrite (and count) the oldest
};

// The pragmas: Config's implicit copy and move read its deprecated member;
// only a program's own use of that member should warn.
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wdeprecated-declarations"
/// A profiler's settings. Each field left unset falls through to the next
/// source, in this priority: the code (the Config given to the Profiler) >
/// environment variables > the TOML file named by STICHOTROPE_CONFIG >
/// defaults. README "Configuration" lists every variable and key.
struct Config {
  std::optional<bool> enabled;            ///< the global switch (every profiler of the process)
  std::map<int, bool> tracks_enabled;     ///< by track index
  std::map<int, std::string> track_names; ///< by track index
  /// Timeline capture: events kept per thread; 0 = capture off
  /// (STICHOTROPE_TIMELINE, TOML `[timeline] events`).
  std::optional<std::uint64_t> timeline_events;
  /// The former name of timeline_events (it reads as a switch; it is a
  /// count). Still honoured when timeline_events is unset; a resolved
  /// Config holds the same value in both.
  [[deprecated("Config::timeline is Config::timeline_events")]] std::optional<std::uint64_t> timeline;
  std::optional<overflow_policy> timeline_when_full;
  /// Files written when the profiler is destroyed; the format comes from the
  /// extension (.json, .csv, .txt, .trace.json, .speedscope.json, .folded);
  /// "{name}" and "{pid}" expand.
  std::optional<std::vector<std::string>> outputs;
  /// "host:port" of the HTTP endpoint (loopback by default): /metrics for
  /// Prometheus, the live view and its JSON API.
  std::optional<std::string> http;
  /// The bearer token every request to the endpoint must carry
  /// (`Authorization: Bearer <token>`), or, when it begins with '/', the
  /// file whose first line is the token. Needed to serve on an address
  /// other than loopback (docs/reliability.md).
  std::optional<std::string> http_token;
  std::optional<std::string> otlp_endpoint;
  std::optional<std::string> service_name;
  std::optional<std::string> resource_attributes; ///< "k=v,k2=v2", as OTEL_RESOURCE_ATTRIBUTES
  std::optional<std::uint64_t> export_interval_ms;

  /// Fills every field unset here from `lower` (lower priority).
  Config& fill_from(const Config& lower);
  friend bool operator==(const Config&, const Config&) = default;
};
#pragma clang diagnostic pop

/// Reads the environment through `lookup` (std::getenv by default). An
/// unset or empty variable is not set; a bad value is an Error naming the
/// variable and the value.
expected<Config> config_from_environment(const std::function<const char*(const char*)>& lookup = {});

/// Reads a TOML document: top-level keys, then the section
/// [profiler."<profiler_name>"], whose keys win. An Error names the source,
/// the line and column, and the key. Needs stichotrope built with
/// toml++ (libtomlplusplus-dev); otherwise every call is an Error saying so.
expected<Config> config_from_toml(std::string_view text, std::string_view source, std::string_view profiler_name);
expected<Config> load_config_file(const std::filesystem::path& file, std::string_view profiler_name);

/// A configuration put together from every source, with what went wrong on
/// the way (each source that failed is left out whole: nothing of a broken
/// file or variable is half-applied).
struct ResolvedConfig {
  Config config;
  std::vector<Error> errors;
};
ResolvedConfig resolve_config(const Config& code, std::string_view profiler_name,
                              const std::function<const char*(const char*)>& lookup = {});

/// "{name}" and "{pid}" in an output path, expanded (the name made safe for a
/// file name).
std::string expand_output_path(std::string_view pattern, std::string_view profiler_name);

} // namespace stichotrope
