#!/usr/bin/env python3
"""A workload of verbatim-bench replayed against llama.cpp's C++ `llama-server` on the same GGUF
and thread count: one slot per client (`-np`), continuous batching, prompt caching with
`--cache-reuse 256`, one KV pool shared by the slots (`--kv-unified`).

Usage: llama_server_workload.py LLAMA_SERVER MODEL THREADS WORKLOAD_JSON OUTPUT_JSON
WORKLOAD_JSON is verbatim-bench's Workload (scripts of chat requests, a number of clients).
Writes {"ttft": [...], "end_to_end": [...], "generated_tokens": N, "wall_seconds": S,
"unique_completions": {group: count}} with requests in workload order.
"""
import http.client, json, os, socket, subprocess, sys, threading, time

binary, model, threads, workload_path, output_path = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
workload = json.load(open(workload_path))
slots = max(1, workload["clients"])

with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
server = subprocess.Popen(
    [binary, "-m", model, "-t", str(threads), "-tb", str(threads), "-np", str(slots), "--kv-unified", "-c", "16384",
     "--cache-reuse", "256", "--host", "127.0.0.1", "--port", str(port)],
    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_ready():
    for _ in range(600):
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/health")
            if c.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit("llama.cpp server did not start")


def send(messages, request):
    """One streamed chat completion: (ttft, end_to_end, answer text, chunks with content)."""
    body = {"messages": messages, "max_tokens": request["maxTokens"], "temperature": request.get("temperature", 0),
            "seed": request.get("seed", 0), "stream": True}
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    start = time.perf_counter()
    c.request("POST", "/v1/chat/completions", json.dumps(body), {"Content-Type": "application/json"})
    response = c.getresponse()
    if response.status != 200:
        raise SystemExit(f"llama.cpp server answered {response.status}: {response.read()[:300]!r}")
    first, text, chunks = None, "", 0
    for raw in response:
        line = raw.decode("utf-8").strip()
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        delta = json.loads(line[6:])["choices"][0].get("delta", {}).get("content")
        if delta:
            if first is None:
                first = time.perf_counter()
            text += delta
            chunks += 1
    end = time.perf_counter()
    return (first or end) - start, end - start, text, chunks


def main():
    wait_ready()
    scripts = workload["scripts"]
    results = [None] * len(scripts)
    next_script = [0]
    lock = threading.Lock()

    def client():
        while True:
            with lock:
                index = next_script[0]
                next_script[0] += 1
            if index >= len(scripts):
                return
            history, out = [], []
            for request in scripts[index]["requests"]:
                if request.get("thinkMilliseconds", 0):
                    time.sleep(request["thinkMilliseconds"] / 1000)
                messages = request["messages"]
                if request.get("continuesConversation"):
                    messages = history + [m for m in messages if m["role"] != "system"]
                ttft, e2e, text, chunks = send(messages, request)
                history = messages + [{"role": "assistant", "content": text}]
                out.append((request, ttft, e2e, text, chunks))
            results[index] = out

    started = time.perf_counter()
    workers = [threading.Thread(target=client) for _ in range(max(1, min(workload["clients"], len(scripts))))]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    wall = time.perf_counter() - started
    flat = [r for part in results for r in part]
    groups = {}
    for request, _, _, text, _ in flat:
        if request.get("identicalGroup"):
            groups.setdefault(request["identicalGroup"], set()).add(text)
    json.dump({"ttft": [r[1] for r in flat], "end_to_end": [r[2] for r in flat], "generated_tokens": sum(r[4] for r in flat),
               "wall_seconds": wall, "unique_completions": {g: len(t) for g, t in groups.items()}}, open(output_path, "w"))


try:
    main()
finally:
    server.terminate()
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
