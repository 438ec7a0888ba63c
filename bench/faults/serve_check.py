"""Whether a model version can be downloaded and served, for the fault campaign.

    serve_check.py URL TOKEN MODEL_ID IMAGE_ID SERVICE

Downloads ``/api/models/{id}/artifact`` (a tar of meta.json and model.bpk), deploys the
version as SERVICE, waits for it to run, and sends it the image IMAGE_ID through the
predict API. Prints one line saying what each step answered; exits 1 when one failed.
"""
import base64, io, json, sys, tarfile, time, urllib.error, urllib.request

url, token, model, image, service = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]


def call(method, path, body=None, auth="Bearer " + token, raw=False):
    req = urllib.request.Request(url + path, method=method,
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={"Authorization": auth, "content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            status, data = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, data = e.code, e.read()
    return status, data if raw else json.loads(data or b"null")


said, ok = [], True
status, data = call("GET", f"/api/models/{model}/artifact", raw=True)
if status == 200:
    try:
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            members = {m.name: m.size for m in tar.getmembers()}
            meta = json.loads(tar.extractfile("meta.json").read())
        said.append(f"artifact 200, {len(data)} bytes, tar of {', '.join(f'{n} ({s} B)' for n, s in members.items())}, "
                    f"weights_bytes in meta {meta.get('weights_bytes')}")
        ok &= members.get("model.bpk") == meta.get("weights_bytes")
    except (tarfile.TarError, KeyError, ValueError) as e:
        said.append(f"artifact 200 but unreadable ({len(data)} bytes): {e}")
        ok = False
else:
    said.append(f"artifact {status}: {data[:200]!r}")
    ok = False

status, svc = call("POST", f"/api/models/{model}/services", {"name": service})
if status != 201:
    said.append(f"deploy {status}: {svc}")
    print("; ".join(said))
    sys.exit(1)
state = None
for _ in range(120):
    state = call("GET", f"/api/services/{service}")[1].get("status")
    if state != "loading":
        break
    time.sleep(0.5)
req = urllib.request.Request(f"{url}/api/images/{image}/content", headers={"Authorization": "Bearer " + token})
with urllib.request.urlopen(req, timeout=30) as r:
    b64 = base64.b64encode(r.read()).decode()
status, answer = call("POST", f"/api/predict/{service}",
                      {"dataArray": [{"name": "image", "type": "stream", "body": b64}]}, auth=svc["token"])
if status == 200 and answer.get("success"):
    top = answer["result"]["output"][0]["body"][0]
    said.append(f"deployed ({state}), predict 200: {top['label']} {top['conf']:.2f}")
else:
    said.append(f"deployed ({state}), predict {status}: {str(answer)[:200]}")
    ok = False
print("; ".join(said))
sys.exit(0 if ok else 1)
