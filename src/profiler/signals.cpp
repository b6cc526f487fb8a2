// SIGINT and SIGTERM write the configured outputs before the process ends
// (docs/reliability.md, "Signals"). The handler only writes the signal's
// number to a pipe (async-signal-safe); a thread of ours reads it, has
// every live profiler's exporters write what they hold (the configured
// outputs are one of them), then hands the signal on: to the default action, which ends the
// process as the signal would have, or to the handler the program had
// installed before us, which then decides.
module;
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <mutex>
#include <thread>
module stichotrope;

namespace stichotrope::detail {
namespace {

constexpr int handled[] = {SIGINT, SIGTERM};
int wake[2] = {-1, -1};                      // the pipe: the handler writes, the watcher reads
struct sigaction before[std::size(handled)]; // each signal's disposition before ours
bool chains[std::size(handled)] = {};        // the program had a handler of its own

void on_signal(int sig) {
  const int saved = errno;
  const unsigned char b = static_cast<unsigned char>(sig);
  [[maybe_unused]] const ssize_t n = ::write(wake[1], &b, 1); // full pipe: a write is already pending
  errno = saved;
}

void watch() {
  for (;;) {
    unsigned char b = 0;
    const ssize_t n = ::read(wake[0], &b, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n != 1) return;
    for (std::size_t i = 0; i < std::size(handled); ++i) {
      if (handled[i] != b) continue;
      // A chained handler may let the program go on (and end it normally
      // later, when each profiler writes again): the exporters keep running.
      signal_exporters(!chains[i]);
      ::sigaction(handled[i], &before[i], nullptr);
      ::kill(::getpid(), handled[i]); // as if it came now: default action, or the program's handler
    }
  }
}

} // namespace

void write_outputs_on_signals() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (::pipe2(wake, O_CLOEXEC) != 0) return;
    ::fcntl(wake[1], F_SETFL, O_NONBLOCK);
    bool any = false;
    for (std::size_t i = 0; i < std::size(handled); ++i) {
      struct sigaction now{};
      if (::sigaction(handled[i], nullptr, &now) != 0) continue;
      const bool has_info = (now.sa_flags & SA_SIGINFO) != 0;
      if (!has_info && now.sa_handler == SIG_IGN) continue; // ignored on purpose: left alone
      chains[i] = has_info || now.sa_handler != SIG_DFL;
      before[i] = now;
      struct sigaction ours{};
      ours.sa_handler = on_signal;
      sigemptyset(&ours.sa_mask);
      ours.sa_flags = SA_RESTART;
      any = ::sigaction(handled[i], &ours, nullptr) == 0 || any;
    }
    if (any) std::thread(watch).detach();
  });
}

} // namespace stichotrope::detail
