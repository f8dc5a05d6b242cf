// arbiter.hh: the master process, gunicorn's arbiter in native code, for every adapter.
//
// The master binds every listener once (or adopts the ones systemd or a re-executing master
// passed on), forks `workers` worker processes that inherit them, and keeps that many alive: it
// reaps and replaces workers that exit, kills workers that hang (--timeout) or serve one request
// too long (--harakiri), recycles workers that grow past --max-worker-memory, and answers the
// signals of gunicorn's master (spec/lifecycle.md, LIFE-ARB-*). Signal handlers only queue the
// signal; the main loop does the work. The master never starts a thread, so forking stays safe.
#pragma once

#include <string>

#include "core/adapter.hh"
#include "core/context.hh"
#include "core/server.hh"

namespace cwsgi::arbiter {

/// Runs a master serving `app_path` with adapter `ops` until it is stopped, and returns the exit
/// code: 0 after TERM, INT or QUIT; 1 when a listener cannot be opened; 3 when a worker fails to
/// boot; 4 when the app does not load. `reload` (may be empty) gives the new configuration on HUP.
/// Threads: the process's only thread (it forks).
int run_master(const core::Config &config, const std::string &app_path, const core::AdapterOps &ops,
               core::ConfigReloader reload);

} // namespace cwsgi::arbiter
