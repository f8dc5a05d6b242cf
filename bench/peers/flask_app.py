"""flask_app.py: the Flask peer of apps/hello and apps/predict, the stack CWSGI replaces.

GET / answers "Hello, World!\n". POST /v1/predict is apps/predict's API for one row or many:
{"features": [x, ...]} or {"features": {"name": x, ...}}, or {"instances": [row, ...]}, answered
{"predictions": [p, ...]} with the same logistic or linear model file (apps/predict/model.json,
or $CWSGI_PREDICT_MODEL), loaded once per worker as a Flask app does at import. Bad JSON is 400,
rows with the wrong features 422, as in apps/predict. Run by bench/run as
`gunicorn -k sync -w 2 flask_app:app`."""
import json
import math
import os

from flask import Flask, abort, jsonify, request

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL_PATH = os.environ.get("CWSGI_PREDICT_MODEL",
                            os.path.join(HERE, "..", "..", "apps", "predict", "model.json"))
with open(MODEL_PATH, encoding="utf-8") as f:
    MODEL = json.load(f)

app = Flask(__name__)
app.config["MAX_CONTENT_LENGTH"] = 1 << 20


@app.get("/")
def hello():
    return "Hello, World!\n", 200, {"Content-Type": "text/plain"}


def score(row):
    names, weights = MODEL["features"], MODEL["weights"]
    if isinstance(row, dict):
        if sorted(row) != sorted(names):
            abort(422)
        row = [row[n] for n in names]
    if not isinstance(row, list) or len(row) != len(weights):
        abort(422)
    if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in row):
        abort(422)
    z = MODEL["bias"] + sum(w * x for w, x in zip(weights, row))
    return 1.0 / (1.0 + math.exp(-z)) if MODEL["kind"] == "logistic" else z


@app.post("/v1/predict")
def predict():
    doc = request.get_json(force=True, silent=True)
    if not isinstance(doc, dict):
        abort(400)
    if "instances" in doc and isinstance(doc["instances"], list):
        rows = doc["instances"]
    elif "features" in doc:
        rows = [doc["features"]]
    else:
        abort(400)
    return jsonify(predictions=[score(r) for r in rows])
