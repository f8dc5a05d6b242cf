-- post-predict.lua: the wrk script (wrk -s) with which run-mhd.sh measures apps/predict; the
-- URL names /v1/predict. Every request is a POST of one row of the model's four features, the
-- body tests/apps/test_apps.c sends; the answer is a 200 with {"predictions":[0.99881...]}.
wrk.method = "POST"
wrk.body = '{"features":[6.3,3.3,6.0,2.5]}'
wrk.headers["Content-Type"] = "application/json"
