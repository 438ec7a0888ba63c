"""Predict and recall load through two API servers for the fault campaign's two-servers case.

    mixed_load.py A_URL B_URL TOKEN TRAIN_INSTANCE IMAGE_ID SECONDS

TOKEN is a login token (one session, valid on both servers: sessions are database rows).

Recall: makes a recommendation_recall instance through B, imports user_item and item_item
through A, a collaborative-filtering strategy through B and a recall service through A;
then one client per server asks ``GET /api/recall/{service}`` over and over. After a few
seconds a behaviour-log CF build starts through A (``POST .../behavior-logs``); its job is
polled through B (and, for comparison, through A) until it ends. Once A says it ended, B's
recall answer for ``u9`` (a user only the log knows) shows whether B sees the CF result.

Predict: waits for TRAIN_INSTANCE's first model version, deploys it through A, and one
client per server sends the image IMAGE_ID (read through B) to ``/api/predict/{service}``.

Runs SECONDS, longer if needed to give predict 20 s after the deploy (at most 240 s more),
then prints one JSON object: answers by status code per server, and what was seen.
"""
import base64, collections, json, sys, threading, time, urllib.error, urllib.request

A, B, TOKEN, TRAIN_INST, IMAGE, SECONDS = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6])
SERVERS = {"A": A, "B": B}
START = time.time()
lock = threading.RLock()
out = {"recall": {"A": collections.Counter(), "B": collections.Counter()},
       "predict": {"A": collections.Counter(), "B": collections.Counter()},
       "cf": {}, "notes": []}
deadline = [START + SECONDS]
stop = threading.Event()


def request(url, method="GET", path="", body=None, auth="Bearer " + TOKEN, ctype="application/json", timeout=30):
    """(status, parsed JSON or text); status 0 when the server could not be reached."""
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    req = urllib.request.Request(url + path, method=method, data=data,
                                 headers={"Authorization": auth, "content-type": ctype})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    except (urllib.error.URLError, OSError) as e:
        return 0, str(e)
    try:
        return status, json.loads(raw or b"null")
    except ValueError:
        return status, raw[:200].decode(errors="replace")


def must(status_body, what):
    status, body = status_body
    if not 200 <= status < 300:
        raise SystemExit(f"{what}: {status} {body}")
    return body


def note(text):
    with lock:
        out["notes"].append(f"{time.time() - START:.0f}s {text}")


# --- recall set-up: instance through B, tables through A, strategy B, service A ---------
rec = must(request(B, "POST", "/api/instances", {"type": "recommendation_recall", "name": "fleet_recall"}), "recall instance")["id"]
must(request(A, "PUT", f"/api/instances/{rec}/tables/user_item?mode=replace",
             b'user_id,item_ids\nu1,"h1,h2"\nu2,h1\nu3,h2\n', ctype="text/csv"), "user_item")
must(request(A, "PUT", f"/api/instances/{rec}/tables/item_item?mode=replace",
             b"h1\ta:0.9,h2:0.8,b:0.5\nh2\tb:0.6,c:0.1\n", ctype="text/csv"), "item_item")
must(request(B, "POST", f"/api/instances/{rec}/strategies", {"name": "cf", "type": "collaborative_filtering", "count": 5}), "strategy")
svc = "fleet_feed"
recall_token = must(request(A, "POST", f"/api/instances/{rec}/services", {"name": svc}), "recall service")["token"]


def recall_items(server, user):
    s, body = request(SERVERS[server], "GET", f"/api/recall/{svc}?user_id={user}&size=5&fallback=none", auth=recall_token)
    return s, [f"{i['item_id']}/{i['retrieve_id']}" for i in body.get("items", [])] if isinstance(body, dict) else body


out["recall_first"] = {k: recall_items(k, "u1") for k in SERVERS}


def recall_client(server):
    n = 0
    while not stop.is_set():
        n += 1
        s, _ = request(SERVERS[server], "GET", f"/api/recall/{svc}?user_id=u{n % 4}&size=5", auth=recall_token, timeout=10)
        with lock:
            out["recall"][server][s] += 1
        time.sleep(0.02)


def cf_build():
    time.sleep(5)
    log = "user_id,item_id,active_type,active_date\n"
    for u in range(6):
        log += f"u{u},tea,0,2024-01-0{u + 1}\nu{u},cup,1,2024-01-0{u + 2}\n"
    log += "u9,tea,2,2024-02-01\n"
    s, job = request(A, "POST", f"/api/instances/{rec}/behavior-logs?top_n=10", log.encode(), ctype="text/csv")
    out["cf"]["start_via_A"] = s
    if s != 202:
        out["cf"]["start_answer"] = job
        return
    path = f"/api/instances/{rec}/behavior-logs/jobs/{job['id']}"
    seen = {"A": collections.Counter(), "B": collections.Counter()}
    last = {}
    ended_at = None
    while time.time() < deadline[0] + 60:
        for k in ("B", "A"):
            s, body = request(SERVERS[k], "GET", path, timeout=10)
            state = body.get("state") if isinstance(body, dict) else None
            seen[k][f"{s} {state}" if state else str(s)] += 1
            last[k] = {"status": s, "body": body}
        a_done = last["A"]["status"] == 200 and last["A"]["body"].get("state") != "running"
        b_done = last["B"]["status"] == 200 and last["B"]["body"].get("state") != "running"
        if a_done and ended_at is None:
            ended_at = time.time()
        # B is asked until it too reports the end, or 10 s after A did.
        if a_done and (b_done or time.time() > ended_at + 10):
            break
        time.sleep(0.5)
    out["cf"]["polled_via"] = {k: dict(v) for k, v in seen.items()}
    out["cf"]["final"] = {k: (v["status"], v["body"].get("state") if isinstance(v["body"], dict) else v["body"],
                              (v["body"].get("stats") or v["body"].get("error")) if isinstance(v["body"], dict) else None)
                          for k, v in last.items()}
    if ended_at is not None:
        # The CF result written through A: u9 (only in the log) now gets cup from cf.
        time.sleep(1.5)   # B's recall cache re-checks the instance's version once a second
        out["cf"]["u9_after"] = {k: recall_items(k, "u9") for k in ("B", "A")}


def predict_clients():
    model = None
    while not stop.is_set() and model is None:
        s, models = request(B, "GET", f"/api/instances/{TRAIN_INST}/models", timeout=10)
        if s == 200 and models:
            model = models[0]["id"]
        else:
            time.sleep(1)
    if model is None:
        note("no model version before the end: no predict load")
        return
    name = "fleet_shapes"
    s, deployed = request(A, "POST", f"/api/models/{model}/services", {"name": name})
    if s != 201:
        note(f"deploy via A: {s} {deployed}")
        return
    note(f"model {model} deployed via A as {name}")
    with lock:
        deadline[0] = max(deadline[0], min(time.time() + 20, START + SECONDS + 240))
    s, image = 0, None
    req = urllib.request.Request(f"{B}/api/images/{IMAGE}/content", headers={"Authorization": "Bearer " + TOKEN})
    with urllib.request.urlopen(req, timeout=30) as r:
        image = base64.b64encode(r.read()).decode()
    body = {"dataArray": [{"name": "image", "type": "stream", "body": image}]}
    first = {}

    def client(server):
        while not stop.is_set():
            s, answer = request(SERVERS[server], "POST", f"/api/predict/{name}", body, auth=deployed["token"], timeout=60)
            with lock:
                out["predict"][server][s] += 1
                if s == 200 and server not in first:
                    first[server] = answer["result"]["output"][0]["body"][0]["label"]
                    note(f"first predict answer via {server}: {first[server]}")
                elif s != 200 and out["predict"][server][s] == 1:
                    note(f"predict via {server}: {s} {str(answer)[:160]}")
            time.sleep(0.05)
    threads = [threading.Thread(target=client, args=(k,)) for k in SERVERS]
    for t in threads: t.start()
    for t in threads: t.join()


workers = [threading.Thread(target=recall_client, args=(k,)) for k in SERVERS]
workers += [threading.Thread(target=cf_build), threading.Thread(target=predict_clients)]
for t in workers:
    t.daemon = True
    t.start()
while time.time() < deadline[0]:
    time.sleep(0.5)
stop.set()
for t in workers:
    t.join(timeout=max(1, deadline[0] + 90 - time.time()))
hung = [t.name for t in workers if t.is_alive()]
if hung:
    note(f"threads still busy at the end: {hung}")
out["seconds"] = round(time.time() - START)
for kind in ("recall", "predict"):
    out[kind] = {k: {str(s): n for s, n in sorted(v.items())} for k, v in out[kind].items()}
print(json.dumps(out))
