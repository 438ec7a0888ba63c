"""Save burst for the fault campaign: CLIENTS threads each save their own images over and
over, each save a new label ``v<n>`` with n rising, and log every save the server answered
2xx (image, n) to ACKED (flushed per line, so the log survives whatever happens to the
server). Runs until STOP exists or SECONDS pass; connection errors and 5xx are counted and
the client carries on (the server may be killed and restarted meanwhile). Optional PART
PARTS: this burst saves only every PARTS-th image from the PART-th (0-based), so bursts
through several servers at once never save the same image.

``check`` mode reads every image back and counts acknowledged saves that are not there: an
image whose stored n is lower than the last n acknowledged for it lost a save.
"""
import json, os, sys, threading, time, urllib.error, urllib.request

def call(url, token, method, path, body=None, timeout=10):
    req = urllib.request.Request(url + path, method=method,
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={"Authorization": "Bearer " + token,
                                          "content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, json.loads(r.read() or b"null")

def images(url, token, ds):
    return call(url, token, "GET", f"/api/datasets/{ds}/images?per_page=500")[1]["items"]

def burst(url, token, ds, clients, seconds, acked_path, stop_path, part=0, parts=1):
    ids = [i["id"] for i in images(url, token, ds)][part::parts]
    log = open(acked_path, "a", buffering=1)
    lock = threading.Lock()
    counts = {"acked": 0, "failed": 0}
    def client(k):
        mine = ids[k::clients]
        n = 0
        deadline = time.time() + seconds
        while time.time() < deadline and not os.path.exists(stop_path):
            n += 1
            for image in mine:
                try:
                    status, _ = call(url, token, "PUT", f"/api/images/{image}/annotation",
                                     {"labels": [f"v{n}"]}, timeout=5)
                    ok = 200 <= status < 300
                except (urllib.error.URLError, OSError, ValueError):
                    ok = False
                with lock:
                    if ok:
                        log.write(f"{image} {n}\n")
                        counts["acked"] += 1
                    else:
                        counts["failed"] += 1
                if not ok:
                    time.sleep(0.05)
    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads: t.start()
    for t in threads: t.join()
    print(json.dumps(counts))

def check(url, token, ds, acked_path):
    last = {}
    for line in open(acked_path):
        image, n = map(int, line.split())
        last[image] = max(last.get(image, 0), n)
    stored = {}
    for i in images(url, token, ds):
        labels = i["annotation"].get("labels", [])
        stored[i["id"]] = int(labels[0][1:]) if labels and labels[0].startswith("v") else 0
    lost = sorted(i for i, n in last.items() if stored.get(i, 0) < n)
    print(json.dumps({"acknowledged": sum(1 for _ in open(acked_path)),
                      "images": len(last), "lost": len(lost), "lost_images": lost[:20]}))
    return 1 if lost else 0

if __name__ == "__main__":
    mode, url, token, ds = sys.argv[1:5]
    if mode == "burst":
        burst(url, token, int(ds), int(sys.argv[5]), float(sys.argv[6]), sys.argv[7], sys.argv[8],
              *map(int, sys.argv[9:11]))
    else:
        sys.exit(check(url, token, int(ds), sys.argv[5]))
