#!/usr/bin/env python3
"""An independent timing server on Python's aiohttp, the kind of HTTP stack vLLM serves from
(Python, asyncio): OpenAI chat SSE on any POST, one `write()` per event, following an
`asyncio.sleep` schedule from the request's arrival. It records when each write returned
(GET /truth, POST /reset), the truth scripts/bench_overhead.sh compares the clients with.

    python3 scripts/truth_aiohttp.py --listen 127.0.0.1:8000 [--first-ms 50] [--gap-ms 10] [--events 64]
"""
import argparse
import asyncio
import json
import math
import time

from aiohttp import web

EVENT = ('data: {{"id":"c","object":"chat.completion.chunk","created":0,"model":"m","choices":'
         '[{{"index":0,"delta":{{"content":"t{i} "}},"finish_reason":null}}]}}\n\n')
END = ('data: {"id":"c","object":"chat.completion.chunk","created":0,"model":"m","choices":'
       '[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n')


class Truth:
    def __init__(self):
        self.reset()
        self.in_flight = 0

    def reset(self):
        self.ttft, self.itl, self.e2e = [], [], []
        self.max_in_flight = getattr(self, "in_flight", 0)

    @staticmethod
    def stats(values):
        if not values:
            return None
        s = sorted(values)
        # Nearest rank, as HdrHistogram's value_at_quantile reads it.
        q = lambda p: s[max(0, math.ceil(p * len(s)) - 1)] / 1000.0
        return {"count": len(s), "p50": q(0.5), "p90": q(0.9), "p99": q(0.99),
                "mean": sum(s) / len(s) / 1000.0}

    def json(self):
        return {"requests": len(self.e2e), "max_in_flight": self.max_in_flight,
                "ttft_ms": self.stats(self.ttft), "itl_ms": self.stats(self.itl),
                "e2e_ms": self.stats(self.e2e)}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--listen", default="127.0.0.1:8000")
    p.add_argument("--first-ms", type=float, default=50)
    p.add_argument("--gap-ms", type=float, default=10)
    p.add_argument("--events", type=int, default=64)
    a = p.parse_args()
    truth = Truth()
    us = lambda ns: ns // 1000

    async def generate(request):
        arrived = time.monotonic_ns()
        await request.read()
        truth.in_flight += 1
        truth.max_in_flight = max(truth.max_in_flight, truth.in_flight)
        try:
            resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            resp.enable_chunked_encoding()
            await resp.prepare(request)
            loop = asyncio.get_running_loop()
            start = loop.time() - (time.monotonic_ns() - arrived) / 1e9
            ttft, last, gaps = None, arrived, []
            for i in range(a.events):
                delay = start + (a.first_ms + a.gap_ms * i) / 1000 - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                await resp.write(EVENT.format(i=i).encode())
                sent = time.monotonic_ns()
                if ttft is None:
                    ttft = us(sent - arrived)
                else:
                    gaps.append(us(sent - last))
                last = sent
            await resp.write(END.encode())
            truth.ttft.append(ttft)
            truth.itl.extend(gaps)
            truth.e2e.append(us(time.monotonic_ns() - arrived))
            await resp.write_eof()
            return resp
        finally:
            truth.in_flight -= 1

    async def get_truth(_):
        return web.json_response(truth.json())

    async def reset(_):
        truth.reset()
        return web.json_response({})

    async def other(_):
        return web.json_response({})

    app = web.Application()
    app.router.add_get("/truth", get_truth)
    app.router.add_post("/reset", reset)
    app.router.add_post("/{tail:.*}", generate)
    app.router.add_get("/{tail:.*}", other)
    host, port = a.listen.rsplit(":", 1)
    web.run_app(app, host=host, port=int(port), print=None, access_log=None, backlog=8192)


if __name__ == "__main__":
    main()
