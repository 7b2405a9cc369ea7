#!/usr/bin/env python3
"""The load of `verbatim-bench serving`, sent the same way to any OpenAI-compatible server.

Usage: serving_client.py URL PLAN_JSON OUTPUT_JSON

PLAN_JSON: {"phases": [{"name": str, "clients": [[request, ...], ...]}]}. Each client is a
thread that sends its requests one after another as streamed chat completions; a request is
{"messages": [...], "max_tokens": n, "temperature": t, "seed": s, "delay": seconds to wait
before sending (optional), "tag": str}. Phases run one after another.

Writes {"phases": [{"name", "wall_seconds", "requests": [{"tag", "ttft", "end_to_end",
"tokens", "text", "status"}]}]}: the client's own clock, tokens counted as content chunks (one
per generated token on both servers) or the usage's completion_tokens when it is sent.
"""
import http.client, json, sys, threading, time, urllib.parse

url, plan_path, output_path = sys.argv[1], sys.argv[2], sys.argv[3]
target = urllib.parse.urlparse(url)
plan = json.load(open(plan_path))


def send(request):
    body = {"messages": request["messages"], "max_tokens": request["max_tokens"], "temperature": request.get("temperature", 0),
            "seed": request.get("seed", 0), "stream": True, "stream_options": {"include_usage": True}}
    connection = http.client.HTTPConnection(target.hostname, target.port, timeout=1800)
    start = time.perf_counter()
    connection.request("POST", "/v1/chat/completions", json.dumps(body), {"Content-Type": "application/json"})
    response = connection.getresponse()
    if response.status != 200:
        detail = response.read()[:300].decode("utf-8", "replace")
        return {"tag": request.get("tag", ""), "status": response.status, "error": detail, "ttft": None,
                "end_to_end": time.perf_counter() - start, "tokens": 0, "text": ""}
    first, text, chunks, usage_tokens = None, "", 0, None
    for raw in response:
        line = raw.decode("utf-8").strip()
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        event = json.loads(line[6:])
        usage = event.get("usage")
        if usage and usage.get("completion_tokens") is not None:
            usage_tokens = usage["completion_tokens"]
        for choice in event.get("choices") or []:
            delta = (choice.get("delta") or {}).get("content")
            if delta is not None and choice.get("finish_reason") is None and (delta or "token_ids" in choice):
                if first is None:
                    first = time.perf_counter()
                text += delta
                chunks += 1
    end = time.perf_counter()
    connection.close()
    return {"tag": request.get("tag", ""), "status": 200, "ttft": (first or end) - start, "end_to_end": end - start,
            "tokens": usage_tokens if usage_tokens is not None else chunks, "text": text}


def run_phase(phase):
    results = [[] for _ in phase["clients"]]

    def client(index, requests):
        for request in requests:
            if request.get("delay"):
                time.sleep(request["delay"])
            results[index].append(send(request))

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i, requests)) for i, requests in enumerate(phase["clients"])]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"name": phase["name"], "wall_seconds": time.perf_counter() - started, "requests": [r for part in results for r in part]}


json.dump({"phases": [run_phase(p) for p in plan["phases"]]}, open(output_path, "w"))
