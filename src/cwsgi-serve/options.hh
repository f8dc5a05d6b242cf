// options.hh: cwsgi-serve's command line and -c file, parsed into a Config.
//
// One option table serves the command line, the TOML file and --help. parse_invocation() is
// pure (it prints nothing, exits nowhere, changes no process state), so the HUP reloader calls
// it again with the saved arguments and gets a fresh Config or a one-line reason.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/context.hh"

namespace cwsgi::serve {

/// What the command line asks for.
enum class Action : uint8_t { serve, check, print_config, help, version, list_adapters };

/// A parsed command line.
struct Invocation {
    Action action = Action::serve;
    core::Config config;
    std::string app_path;     // the APP argument, else the file's wsgi_app ("" = none given)
    std::string adapter_name; // --adapter as given ("" = the first built one)
    std::string help;         // Action::help: the text --help prints
};

/// Parses `args` (the command line without the program name) and the -c file it names into
/// `out`. Relative -c and --chdir paths are taken from `base_dir` (the directory cwsgi-serve
/// started in), so that a re-parse after --chdir reads the same files. Returns false with
/// `error` set to a message for the operator (no "cwsgi-serve:" prefix) for every bad command
/// line: an unknown or malformed flag, a gunicorn flag cwsgi-serve lacks, a bad value, an
/// unreadable or invalid -c file. The caller exits 2 then (docs/deployment.md). It leaves
/// config.adapter to the caller, which resolves adapter_name against the adapter table.
/// Threads: one caller at a time (it reads getpwnam/getgrnam).
bool parse_invocation(const std::vector<std::string> &args, const std::string &base_dir, Invocation &out,
                      std::string &error);

/// One line per adapter of the table: name, summary, and why it is missing if it is (the
/// "Adapters:" block of --help and of an unknown-adapter error).
std::string adapter_list();

/// The resolved configuration of `inv` as a TOML file that -c reads back to the same Config
/// (--print-config). Settings that are unset print as comments.
std::string config_to_toml(const Invocation &inv);

} // namespace cwsgi::serve
