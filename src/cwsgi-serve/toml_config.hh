// toml_config.hh: the -c FILE reader, a CLI11 config formatter over toml++.
//
// The file and the command line share one option table: every key of the file is looked up
// among cwsgi-serve's long options (dashes or underscores alike), its TOML value is checked
// against the option's kind and handed to CLI11 as if typed, and CLI11 keeps what the command
// line set (the command line wins over the file, as in gunicorn). The [app] table is the app's
// own: it is flattened into "a.b" = "value" pairs and never looked up as options.
#pragma once

#include <istream>
#include <string>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>

namespace cwsgi::serve {

/// Option type names that tell the file reader which TOML types a key accepts (they also show
/// in --help): "SECONDS" an integer or a float; "SIZE" and "MODE" an integer or a string;
/// "KEY=VALUE" a table, a list of "K=V" strings or one such string. Flags take a boolean,
/// "UINT"/"INT" an integer, an option that takes several values a string or a list of
/// strings, anything else a string.
inline constexpr const char *kTypeSeconds = "SECONDS";
inline constexpr const char *kTypeSize = "SIZE";
inline constexpr const char *kTypeMode = "MODE";
inline constexpr const char *kTypeEnv = "KEY=VALUE";

/// A key of the file that is a gunicorn setting cwsgi-serve lacks; its message already says
/// what to use instead.
class GunicornGapError : public CLI::ConfigError {
public:
    explicit GunicornGapError(std::string message) : CLI::ConfigError(std::move(message), CLI::ExitCodes::ConfigError)
    {
    }
};

/// Reads a TOML file into CLI11 config items for the options of `app`.
class TomlConfig : public CLI::Config {
public:
    /// `app` is the option table (borrowed; it must outlive this formatter). The [app] table's
    /// pairs are appended to `app_settings` (borrowed) in file order.
    TomlConfig(const CLI::App *app, std::vector<std::pair<std::string, std::string>> *app_settings)
        : app_(app), app_settings_(app_settings)
    {
    }

    /// Not used: --print-config prints the resolved Config instead (options.hh). Returns "".
    std::string to_config(const CLI::App *, bool, bool, std::string) const override { return {}; }

    /// Parses `input` as TOML. Throws CLI::ConfigError with "FILE:LINE: ..." for a syntax
    /// error, an unknown key, a gunicorn setting cwsgi-serve lacks, a command-line-only option
    /// or a value of the wrong type (each names the key).
    std::vector<CLI::ConfigItem> from_config(std::istream &input) const override;

private:
    const CLI::App *app_;
    std::vector<std::pair<std::string, std::string>> *app_settings_;
};

} // namespace cwsgi::serve
