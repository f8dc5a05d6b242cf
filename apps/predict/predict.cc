// predict: the use case CWSGI exists for, in C++ with cwsgi.hpp: a small model served as a
// JSON HTTP API. It shows the App lifecycle and the router together:
//   - the model (a linear or logistic regression: "features" names, "weights", "bias", "kind")
//     is loaded in worker_start, after fork, once per worker (LIFE-WORKER-1); a model that
//     cannot be loaded fails the worker's boot with a message that names the file and the fault;
//   - routes: GET /health at the root, and a group mounted under /v1 (so the handlers see
//     script_name() "/v1"): POST /v1/predict and GET /v1/model;
//   - JSON in, JSON out with nlohmann-json; bad input is answered by throwing
//     cwsgi::HttpError with a JSON body: 400 for a body that is not the expected JSON, 422 for
//     rows with the wrong features, 413 for a body over 1 MiB.
// The model is read-only once loaded, so the app declares itself thread-safe, and handlers
// block only inside the server's calls, so cooperative too (THR-5).
//
// Where the model comes from, first match wins:
//   1. the app setting model.path (LIFE-SET-1, ABI 1.2): `[app.model]` `path = "..."` in
//      cwsgi-serve's -c file; on an older server the setting reads as unset;
//   2. $CWSGI_PREDICT_MODEL when set (and then only that file);
//   3. predict.model.json next to predict.so (the build puts a copy there);
//   4. CWSGI_PREDICT_DEFAULT_MODEL, compiled in: apps/predict/model.json in the source tree.
//
// POST /v1/predict takes {"features":[x1,...]} or {"features":{"name":x,...}} for one row,
// or {"instances":[row,...]} for many (each row an array or an object as above), and answers
// {"predictions":[p,...]}: the probability for a logistic model, the value for a linear one.
#include <cwsgi.hpp>

#include <dlfcn.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#ifndef CWSGI_PREDICT_DEFAULT_MODEL
#define CWSGI_PREDICT_DEFAULT_MODEL ""
#endif

namespace {

using nlohmann::json;

/// Bodies above this are refused with 413: a row is a few numbers, a batch a few thousand rows.
constexpr size_t kMaxBody = size_t{1} << 20;

/// A linear model over named features; immutable once loaded.
struct Model {
    std::string name;
    std::string kind; // "logistic" or "linear"
    std::vector<std::string> features;
    std::vector<double> weights;
    double bias = 0;
    std::string path;

    /// The prediction for one row of features.size() values.
    double predict(const std::vector<double> &x) const
    {
        double z = bias;
        for (size_t i = 0; i < x.size(); ++i) {
            z += weights[i] * x[i];
        }
        return kind == "logistic" ? 1.0 / (1.0 + std::exp(-z)) : z;
    }
};

/// Reads and checks a model file. @throws std::runtime_error naming the file and the fault.
Model load_model(const std::string &path)
{
    auto fail = [&](const std::string &why) { return std::runtime_error("predict: model " + path + ": " + why); };
    std::ifstream in(path);
    if (!in) {
        throw fail("cannot open the file");
    }
    std::stringstream text;
    text << in.rdbuf();
    json doc = json::parse(text.str(), nullptr, false);
    if (doc.is_discarded() || !doc.is_object()) {
        throw fail("not a JSON object");
    }
    Model m;
    m.path = path;
    try {
        m.name = doc.value("name", std::string("model"));
        m.kind = doc.value("kind", std::string("linear"));
        m.features = doc.at("features").get<std::vector<std::string>>();
        m.weights = doc.at("weights").get<std::vector<double>>();
        m.bias = doc.at("bias").get<double>();
    } catch (const json::exception &e) {
        throw fail(std::string("needs \"features\" (names), \"weights\" and \"bias\" (numbers): ") + e.what());
    }
    if (m.kind != "logistic" && m.kind != "linear") {
        throw fail("\"kind\" must be \"logistic\" or \"linear\"");
    }
    if (m.features.empty() || m.features.size() != m.weights.size()) {
        throw fail("\"features\" and \"weights\" must be non-empty and of the same length");
    }
    return m;
}

/// The directory of the shared object this code is in, or "" when the loader cannot say.
std::string own_directory()
{
    Dl_info info{};
    static const int anchor = 0;
    if (dladdr(&anchor, &info) == 0 || info.dli_fname == nullptr) {
        return {};
    }
    return std::filesystem::path(info.dli_fname).parent_path().string();
}

/// The model file to load, as the file comment orders them; `setting` is the model.path
/// setting, if any. @throws std::runtime_error listing the places tried when none holds a file.
std::string model_path(std::optional<std::string_view> setting)
{
    if (setting && !setting->empty()) {
        return std::string(*setting);
    }
    if (const char *env = std::getenv("CWSGI_PREDICT_MODEL"); env != nullptr && *env != '\0') {
        return env;
    }
    std::vector<std::string> tried;
    if (std::string dir = own_directory(); !dir.empty()) {
        tried.push_back(dir + "/predict.model.json");
    }
    if (*CWSGI_PREDICT_DEFAULT_MODEL != '\0') {
        tried.emplace_back(CWSGI_PREDICT_DEFAULT_MODEL);
    }
    std::string list;
    for (const std::string &p : tried) {
        std::error_code ec;
        if (std::filesystem::is_regular_file(p, ec)) {
            return p;
        }
        list += (list.empty() ? "" : ", ") + p;
    }
    throw std::runtime_error("predict: no model file (set [app.model] path in the -c file, or "
                             "CWSGI_PREDICT_MODEL; tried: " +
                             list + ")");
}

/// An HttpError with body {"error": message}.
cwsgi::HttpError json_error(uint32_t status, const std::string &message)
{
    return cwsgi::HttpError(status, json{{"error", message}}.dump() + "\n", "application/json");
}

class PredictApp : public cwsgi::App {
public:
    static constexpr uint32_t thread_safety() { return CWSGI_THREADS_SAFE; }
    static constexpr bool cooperative() { return true; }

    PredictApp()
    {
        router().get("/health", [this](cwsgi::Request &, cwsgi::Response &res) { health(res); });
        cwsgi::Group v1("/v1");
        v1.post("/predict", [this](cwsgi::Request &req, cwsgi::Response &res) { predict(req, res); });
        v1.get("/model", [this](cwsgi::Request &, cwsgi::Response &res) { describe(res); });
        router().mount(v1);
    }

    void worker_start(uint32_t worker_id) override
    {
        model_ = load_model(model_path(setting("model.path")));
        log(CWSGI_LOG_INFO, "predict: worker " + std::to_string(worker_id) + " loaded model '" + model_->name +
                                "' from " + model_->path);
    }

private:
    const Model &model() const
    {
        if (!model_) {
            throw json_error(503, "no model loaded");
        }
        return *model_;
    }

    void health(cwsgi::Response &res) const
    {
        const Model &m = model();
        res.json(json{{"status", "ok"}, {"model", m.name}, {"features", m.features.size()}}.dump() + "\n");
    }

    void describe(cwsgi::Response &res) const
    {
        const Model &m = model();
        res.json(
            json{{"name", m.name}, {"kind", m.kind}, {"features", m.features}, {"weights", m.weights}, {"bias", m.bias}}
                .dump() +
            "\n");
    }

    /// One row: an array of features.size() numbers, or an object with a number per name.
    std::vector<double> row(const json &r) const
    {
        const Model &m = model();
        std::vector<double> x;
        if (r.is_array()) {
            if (r.size() != m.features.size()) {
                throw json_error(422, "expected " + std::to_string(m.features.size()) + " features, got " +
                                          std::to_string(r.size()));
            }
            for (const json &v : r) {
                if (!v.is_number()) {
                    throw json_error(400, "features must be numbers");
                }
                x.push_back(v.get<double>());
            }
            return x;
        }
        if (r.is_object()) {
            for (const std::string &name : m.features) {
                auto it = r.find(name);
                if (it == r.end()) {
                    throw json_error(422, "missing feature \"" + name + "\"");
                }
                if (!it->is_number()) {
                    throw json_error(400, "features must be numbers");
                }
                x.push_back(it->get<double>());
            }
            if (r.size() != m.features.size()) {
                throw json_error(422, "unknown feature names (expected " + json(m.features).dump() + ")");
            }
            return x;
        }
        throw json_error(400, "a row is an array of numbers or an object of named numbers");
    }

    void predict(cwsgi::Request &req, cwsgi::Response &res) const
    {
        const Model &m = model();
        std::string body;
        try {
            body = req.read_all(kMaxBody);
        } catch (const cwsgi::HttpError &e) {
            throw json_error(e.status(), "body over " + std::to_string(kMaxBody) + " bytes");
        }
        json doc = json::parse(body, nullptr, false);
        if (doc.is_discarded()) {
            throw json_error(400, "body is not valid JSON");
        }
        if (!doc.is_object()) {
            throw json_error(400, "body must be a JSON object");
        }
        json predictions = json::array();
        if (auto inst = doc.find("instances"); inst != doc.end()) {
            if (!inst->is_array()) {
                throw json_error(400, "\"instances\" must be an array of rows");
            }
            for (const json &r : *inst) {
                predictions.push_back(m.predict(row(r)));
            }
        } else if (auto feat = doc.find("features"); feat != doc.end()) {
            predictions.push_back(m.predict(row(*feat)));
        } else {
            throw json_error(400, "expected {\"features\": row} or {\"instances\": [row, ...]}");
        }
        res.json(json{{"predictions", predictions}}.dump() + "\n");
    }

    std::optional<Model> model_;
};

} // namespace

CWSGI_APP(PredictApp, "predict", CWSGI_VERSION_STRING);
