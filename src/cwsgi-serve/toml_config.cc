// toml_config.cc: the -c FILE reader (see toml_config.hh).
#include "toml_config.hh"

#include <algorithm>
#include <set>
#include <sstream>
#include <string_view>

#include <fmt/format.h>
#include <toml++/toml.h>

#include "gunicorn_gaps.hh"

namespace cwsgi::serve {

namespace {

// gunicorn's config-file names where they differ from its command-line names, so that a
// gunicorn.conf.py's settings read the same here ("preload_app = true").
constexpr std::pair<const char *, const char *> kSettingAliases[] = {
    {"preload-app", "--preload"},
    {"pidfile", "--pid"},
    {"accesslog", "--access-logfile"},
    {"errorlog", "--error-logfile"},
    {"loglevel", "--log-level"},
    {"keepalive", "--keep-alive"},
    {"raw-env", "--env"},
    {"proc-name", "--name"},
    {"wsgi-app", "APP"},
};

enum class Kind : uint8_t { flag, integer, number, int_or_text, env, list, text };

Kind kind_of(const CLI::Option &opt)
{
    if (opt.get_expected_min() == 0) return Kind::flag;
    // get_type_name() appends the validators' descriptions ("UINT:INT in [1 - 1024]").
    std::string type = opt.get_type_name();
    type = type.substr(0, type.find(':'));
    if (type == "UINT" || type == "INT") return Kind::integer;
    if (type == "FLOAT" || type == kTypeSeconds) return Kind::number;
    if (type == kTypeSize || type == kTypeMode) return Kind::int_or_text;
    if (type == kTypeEnv) return Kind::env;
    if (opt.get_multi_option_policy() == CLI::MultiOptionPolicy::TakeAll) return Kind::list;
    return Kind::text;
}

const char *kind_text(Kind k)
{
    switch (k) {
    case Kind::flag: return "a boolean (true or false)";
    case Kind::integer: return "an integer";
    case Kind::number: return "a number";
    case Kind::int_or_text: return "an integer or a string";
    case Kind::env: return "a table of strings, or a list of \"KEY=VALUE\" strings";
    case Kind::list: return "a string or a list of strings";
    case Kind::text: return "a string";
    }
    return "a value";
}

const char *type_text(const toml::node &v)
{
    switch (v.type()) {
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a float";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::array: return "a list";
    case toml::node_type::table: return "a table";
    default: return "a date or time";
    }
}

std::string word(const toml::node &v);

// A string as a TOML basic string: quoted, with \" \\ and control characters escaped.
std::string quoted(const std::string &s)
{
    std::string out = "\"";
    for (unsigned char c : s) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += static_cast<char>(c);
        } else if (c < 0x20 || c == 0x7f) {
            out += fmt::format("\\u{:04X}", c);
        } else {
            out += static_cast<char>(c);
        }
    }
    return out + "\"";
}

// A value as it would be written in TOML, for the elements of a list.
std::string toml_text(const toml::node &v)
{
    if (const auto *s = v.as_string()) return quoted(s->get());
    return word(v);
}

// A value's text as a command-line word would carry it: strings as they are, the rest in
// their TOML spelling (true, 42, 1.5, 1979-05-27), a list as "[1, 2]" or "["a", "b"]" with its
// elements so spelled (LIFE-SET-2).
std::string word(const toml::node &v)
{
    if (const auto *s = v.as_string()) return s->get();
    if (const auto *b = v.as_boolean()) return b->get() ? "true" : "false";
    if (const auto *i = v.as_integer()) return std::to_string(i->get());
    if (const auto *f = v.as_floating_point()) return fmt::format("{}", f->get());
    if (const auto *a = v.as_array()) {
        std::string out = "[";
        for (const toml::node &e : *a) {
            out += (out.size() > 1 ? ", " : "") + toml_text(e);
        }
        return out + "]";
    }
    std::ostringstream out; // dates, times and inline tables inside a list: toml++'s spelling
    v.visit([&out](const auto &n) { out << n; });
    return out.str();
}

struct Setting {
    toml::source_position at;
    std::string name, value;
};

// "a.b" pairs of a table, depth first.
void flatten(const toml::table &t, const std::string &prefix, std::vector<Setting> &out)
{
    for (auto &&[k, v] : t) {
        std::string name = prefix.empty() ? std::string(k.str()) : prefix + "." + std::string(k.str());
        if (const auto *sub = v.as_table()) {
            flatten(*sub, name, out);
        } else {
            out.push_back(Setting{k.source().begin, std::move(name), word(v)});
        }
    }
}

} // namespace

std::vector<CLI::ConfigItem> TomlConfig::from_config(std::istream &input) const
{
    const CLI::Option *config_opt = app_->get_config_ptr();
    const std::string file = config_opt && config_opt->count() ? config_opt->as<std::string>() : "config file";
    toml::table root;
    try {
        root = toml::parse(input, file);
    } catch (const toml::parse_error &e) {
        throw CLI::ConfigError(
            fmt::format("{}:{}:{}: {}", file, e.source().begin.line, e.source().begin.column, e.description()));
    }

    std::vector<CLI::ConfigItem> items;
    for (auto &&[k, v] : root) {
        const std::string key(k.str());
        const auto where = [&] { return fmt::format("{}:{}", file, k.source().begin.line); };
        if (key == "app") {
            // Reserved for the app's own settings (Config::app_settings).
            const auto *table = v.as_table();
            if (!table) {
                throw CLI::ConfigError(fmt::format("{}: app: expected a table ([app]), got {}", where(), type_text(v)));
            }
            // toml++ keeps keys sorted; the app gets them in the order the operator wrote them.
            std::vector<Setting> settings;
            flatten(*table, "", settings);
            std::stable_sort(settings.begin(), settings.end(),
                             [](const Setting &a, const Setting &b) { return a.at < b.at; });
            // LIFE-SET-2: one name, one value. A quoted "a.b" and a table a with a key b flatten
            // to the same name; a NUL could never be looked up by a NUL-terminated key.
            std::set<std::string> seen;
            for (Setting &s : settings) {
                const auto at = [&] { return fmt::format("{}:{}", file, s.at.line); };
                if (s.name.find('\0') != std::string::npos) {
                    throw CLI::ConfigError(fmt::format("{}: app: a key holds a NUL character (LIFE-SET-2)", at()));
                }
                if (!seen.insert(s.name).second) {
                    throw CLI::ConfigError(fmt::format("{}: app.{} is given twice (a quoted key with a dot and a "
                                                       "table name spell the same setting) (LIFE-SET-2)",
                                                       at(), s.name));
                }
                app_settings_->emplace_back(std::move(s.name), std::move(s.value));
            }
            continue;
        }
        std::string name = key;
        for (char &c : name) {
            if (c == '_') c = '-';
        }
        std::string option = "--" + name;
        for (const auto &[alias, target] : kSettingAliases) {
            if (name == alias) option = target;
        }
        const CLI::Option *opt = app_->get_option_no_throw(option);
        if (opt == nullptr) {
            if (const char *why = gunicorn_gap(name)) {
                throw GunicornGapError(
                    fmt::format("{}: {} is a gunicorn setting that cwsgi-serve does not have: {}", where(), key, why));
            }
            throw CLI::ConfigError(fmt::format("{}: unknown key '{}' (the keys are the long flags of --help, "
                                               "without the dashes; the app's own settings go in [app])",
                                               where(), key));
        }
        if (!opt->get_configurable()) {
            throw CLI::ConfigError(fmt::format("{}: {} is for the command line only", where(), key));
        }

        CLI::ConfigItem item;
        item.name = option.rfind("--", 0) == 0 ? option.substr(2) : option;
        const Kind kind = kind_of(*opt);
        const auto type_error = [&] {
            return CLI::ConfigError(
                fmt::format("{}: {}: expected {}, got {}", where(), key, kind_text(kind), type_text(v)));
        };
        switch (kind) {
        case Kind::flag:
            if (!v.is_boolean()) throw type_error();
            item.inputs.push_back(word(v));
            break;
        case Kind::integer:
            if (!v.is_integer()) throw type_error();
            item.inputs.push_back(word(v));
            break;
        case Kind::number:
            if (!v.is_integer() && !v.is_floating_point()) throw type_error();
            item.inputs.push_back(word(v));
            break;
        case Kind::int_or_text:
            if (!v.is_integer() && !v.is_string()) throw type_error();
            item.inputs.push_back(word(v));
            break;
        case Kind::text:
            if (!v.is_string()) throw type_error();
            item.inputs.push_back(word(v));
            break;
        case Kind::list:
        case Kind::env:
            if (v.is_string()) {
                item.inputs.push_back(word(v));
            } else if (const auto *arr = v.as_array()) {
                for (const toml::node &e : *arr) {
                    if (!e.is_string()) throw type_error();
                    item.inputs.push_back(word(e));
                }
            } else if (const auto *table = v.as_table(); table && kind == Kind::env) {
                for (auto &&[ek, ev] : *table) {
                    if (ev.is_table() || ev.is_array()) throw type_error();
                    item.inputs.push_back(std::string(ek.str()) + "=" + word(ev));
                }
            } else {
                throw type_error();
            }
            break;
        }
        items.push_back(std::move(item));
    }
    return items;
}

} // namespace cwsgi::serve
