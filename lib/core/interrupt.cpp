#include "core/interrupt.h"

#include <csignal>

#include "core/error.h"

namespace kvlab {

namespace {

// Written only by the handler; sig_atomic_t is what a handler may touch.
volatile std::sig_atomic_t g_signal = 0;

extern "C" void on_interrupt(int sig) { g_signal = sig; }

}  // namespace

void install_interrupt_handlers() {
  struct sigaction action = {};
  action.sa_handler = on_interrupt;
  sigemptyset(&action.sa_mask);
  // SA_RESTART: a signal during a read or write resumes it instead of failing it with EINTR.
  // SA_RESETHAND: the second Ctrl-C is not caught, so an impatient user can still kill the run.
  action.sa_flags = SA_RESTART | SA_RESETHAND;
  for (int sig : {SIGINT, SIGTERM})
    if (sigaction(sig, &action, nullptr) != 0) fail("cannot install the signal handlers", kExitInternal);
}

bool interrupted() { return g_signal != 0; }

std::string interrupt_reason() {
  switch (g_signal) {
    case 0: return "";
    case SIGINT: return "interrupted by SIGINT";
    case SIGTERM: return "interrupted by SIGTERM";
    default: return "interrupted by signal " + std::to_string(int(g_signal));
  }
}

}  // namespace kvlab
