#pragma once
// Stopping a run cleanly on SIGINT or SIGTERM. The handler only records the signal; loops over
// samples ask interrupted() when a sample is done and stop there, and the app writes the report
// of the completed samples marked incomplete and exits with kExitInterrupted. A second signal of
// the same kind ends the process at once (the handler is reset to the default by the first).
#include <string>

namespace kvlab {

// Installs the handlers for SIGINT and SIGTERM. Until then those signals end the process.
void install_interrupt_handlers();
// True once SIGINT or SIGTERM arrived after install_interrupt_handlers().
bool interrupted();
// "interrupted by SIGINT" (or SIGTERM), or "" when no signal arrived.
std::string interrupt_reason();

}  // namespace kvlab
