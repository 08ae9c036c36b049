import asyncio, json, random, sys, time
N=int(sys.argv[1]); host="127.0.0.1"; port=8801
body=json.dumps({"model":"mnist","pixels":[random.randrange(256) for _ in range(784)],"scale":255}).encode()
payload=(f"POST /classify HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\nconnection: close\r\n\r\n").encode()+body
async def one():
    t=time.perf_counter()
    r,w=await asyncio.open_connection(host,port); w.write(payload); await w.drain()
    head=await r.readuntil(b"\r\n\r\n"); w.close()
    return int(head.split(b" ",2)[1]), time.perf_counter()-t
async def main():
    res=await asyncio.gather(*(one() for _ in range(N)))
    from collections import Counter; print(Counter(s for s,_ in res), sorted(t for _,t in res)[N//2]*1000, "ms median")
asyncio.run(main())
