// gunicorn_gaps.hh: the gunicorn flags and settings that cwsgi-serve does not have, each with
// the reason and what to use instead.
//
// gunicorn's users are ours: a flag they bring along must not be answered with a bare
// "not expected", nor silently accepted. The command line and the -c file both look names up
// here, so `--daemon` and `daemon = true` get the same answer.
#pragma once

#include <string_view>

namespace cwsgi::serve {

/// The reason cwsgi-serve lacks gunicorn's flag or setting `name`, or nullptr when gunicorn has
/// no such name. `name` is given without leading dashes, with dashes or underscores alike:
/// "daemon", "worker-connections", "statsd_host", "D" (the short -D). Threads: any.
const char *gunicorn_gap(std::string_view name);

} // namespace cwsgi::serve
