#!/usr/bin/env python3
"""Other users' PING round trip while one client attacks the server (issue 12's attacks).

Starts `charla serve` (the release binary by default, default flags) on loopback, then for each
attack: a witness IRC client in a process of its own sends PING every 125 ms (under the flood
limit) and times each PONG,
while this process runs the attack for SECS seconds. Prints one table row per attack (p50, p99
and max round trip, PINGs answered) and a JSON line with every figure.

    cargo build --release && bench/abuse_ping.py                 # every attack, 10 s each
    bench/abuse_ping.py --secs 10 --attacks baseline,history      # a selection

Attacks: baseline (none), join (one client joining 40 new rooms per JOIN line, as fast as the
server answers), rooms_list (32 connections creating rooms, four clients sending LIST ten times
a second), bans (an operator setting 4 KB ban masks while 20 members talk), history (60 plain
connections that never read, each asking /history 500 twenty times in a room of 4 KB lines),
flooder (ten plain clients each sending 100,000 lines, then closing). Attackers connect from
127.0.x.y addresses, under the per-address limits. Loopback only; every client is closed and
the server stopped at the end.
"""

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time


async def connect(addr, source="127.0.0.1"):
    host, port = addr
    return await asyncio.open_connection(host, port, local_addr=(source, 0))


async def drain(reader):
    """Reads and throws away everything until the server closes the connection."""
    try:
        while await reader.read(65536):
            pass
    except (ConnectionError, OSError):
        pass


async def register(addr, nick, source="127.0.0.1"):
    reader, writer = await connect(addr, source)
    writer.write(f"NICK {nick}\r\nUSER {nick} 0 * :{nick}\r\n".encode())
    await writer.drain()
    while True:
        line = await reader.readline()
        if not line:
            raise RuntimeError(f"{nick}: closed during registration")
        if b" 376 " in line or b" 422 " in line:
            return reader, writer


async def plain(addr, source):
    reader, writer = await connect(addr, source)
    for _ in range(3):
        await reader.readline()
    return reader, writer


def source(block, i):
    return f"127.0.{block}.{1 + i % 250}"


# ---- the witness, in a process of its own ----

# Eight PINGs a second: under the default flood limit (10 lines a second), which would
# otherwise be what is measured.
PING_EVERY = 0.125


async def witness(addr, secs):
    reader, writer = await register(addr, f"witness{os.getpid() % 10000}")
    rtts, sent = [], 0
    deadline = time.monotonic() + secs
    while time.monotonic() < deadline:
        sent += 1
        start = time.monotonic()
        writer.write(f"PING :{sent}\r\n".encode())
        await writer.drain()
        try:
            while True:
                line = await asyncio.wait_for(reader.readline(), max(0.001, deadline + 5 - time.monotonic()))
                if not line:
                    raise ConnectionError("closed")
                words = line.split()
                if len(words) > 2 and words[1] == b"PONG" and words[-1].lstrip(b":") == str(sent).encode():
                    break
        except asyncio.TimeoutError:
            break
        rtts.append((time.monotonic() - start) * 1000)
        await asyncio.sleep(max(0.0, PING_EVERY - (time.monotonic() - start)))
    writer.close()
    print(json.dumps({"sent": sent, "rtts": rtts}))


# ---- attacks ----


async def attack_baseline(addr, stop, ready):
    ready.set()
    await stop.wait()


async def attack_join(addr, stop, ready):
    reader, writer = await register(addr, "joiner", source(1, 0))
    reading = asyncio.create_task(drain(reader))
    ready.set()
    n = 0
    while not stop.is_set():
        rooms = ",".join(f"#j{n + i}" for i in range(40))
        n += 40
        writer.write(f"JOIN {rooms}\r\n".encode())
        await writer.drain()
        await asyncio.sleep(0)
    writer.close()
    reading.cancel()


async def attack_rooms_list(addr, stop, ready):
    async def creator(i):
        reader, writer = await register(addr, f"maker{i}", source(2, i))
        reading = asyncio.create_task(drain(reader))
        n = 0
        while not stop.is_set():
            writer.write(f"JOIN #m{i}x{n}\r\nPRIVMSG #m{i}x{n} :kept\r\n".encode())
            n += 1
            await writer.drain()
            await asyncio.sleep(0.01)
        writer.close()
        reading.cancel()

    async def lister(i):
        reader, writer = await register(addr, f"lister{i}", source(3, i))
        reading = asyncio.create_task(drain(reader))
        while not stop.is_set():
            writer.write(b"LIST\r\n")
            await writer.drain()
            await asyncio.sleep(0.1)
        writer.close()
        reading.cancel()

    ready.set()
    await asyncio.gather(*[creator(i) for i in range(32)], *[lister(i) for i in range(4)])


async def attack_bans(addr, stop, ready):
    op_reader, op = await register(addr, "banop", source(4, 0))
    op.write(b"JOIN #bans\r\n")
    members = []
    for i in range(20):
        members.append(await register(addr, f"member{i}", source(4, 1 + i)))
        members[-1][1].write(b"JOIN #bans\r\n")
    readers = [asyncio.create_task(drain(r)) for r, _ in members] + [asyncio.create_task(drain(op_reader))]
    ready.set()
    n = 0
    while not stop.is_set():
        mask = f"x{n}" + "a" * 4000 + "!*@*"
        op.write(f"MODE #bans +b {mask}\r\nMODE #bans +b bad{n}!*@*\r\n".encode())
        members[n % 20][1].write(f"PRIVMSG #bans :message {n}\r\n".encode())
        n += 1
        await op.drain()
        await asyncio.sleep(0.005)
    for r in readers:
        r.cancel()
    for _, w in members:
        w.close()
    op.close()


async def attack_history(addr, stop, ready):
    # A room of 4 KB lines: seven writers from seven addresses, 30 lines each (the burst).
    for w in range(7):
        reader, writer = await plain(addr, source(5, w))
        line = "y" * 4000
        writer.write("".join(f"{w} {i} {line}\n" for i in range(30)).encode())
        await writer.drain()
        await asyncio.sleep(0.5)
        writer.close()
    hogs = []
    for i in range(60):
        reader, writer = await plain(addr, source(6, i))
        writer.write(b"/history 500\n" * 20)
        hogs.append(writer)
    ready.set()
    await stop.wait()
    for writer in hogs:
        writer.close()


async def attack_flooder(addr, stop, ready):
    async def flooder(i):
        reader, writer = await plain(addr, source(7, i))
        writer.write("".join(f"flood {n}\n" for n in range(100_000)).encode())
        try:
            await asyncio.wait_for(writer.drain(), 2)
        except (asyncio.TimeoutError, ConnectionError):
            pass
        writer.close()

    ready.set()
    await asyncio.gather(*[flooder(i) for i in range(10)])
    await stop.wait()


ATTACKS = ["baseline", "join", "rooms_list", "bans", "history", "flooder"]


def percentile(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


async def run(args):
    data = tempfile.mkdtemp(prefix="charla-abuse-")
    server = subprocess.Popen(
        [args.bin, "serve", "127.0.0.1", "0", "--data-dir", data],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        line = server.stdout.readline()
        host, port = line.strip().removeprefix("charla listening on ").rsplit(":", 1)
        addr = (host, int(port))
        rows = []
        for name in args.attacks:
            stop = asyncio.Event()
            attack = globals()[f"attack_{name}"]
            print(f"{name}: starting", file=sys.stderr)
            ready = asyncio.Event()
            task = asyncio.create_task(attack(addr, stop, ready))
            await asyncio.wait_for(ready.wait(), 60)
            witness_process = await asyncio.create_subprocess_exec(
                sys.executable, __file__, "--witness", f"{host}:{port}", str(args.secs), stdout=subprocess.PIPE
            )
            out, _ = await witness_process.communicate()
            stop.set()
            try:
                await asyncio.wait_for(task, 10)
            except (asyncio.TimeoutError, ConnectionError, RuntimeError) as e:
                task.cancel()
                print(f"{name}: attack ended with {e!r}", file=sys.stderr)
            figures = json.loads(out)
            rtts = figures["rtts"]
            row = {
                "attack": name,
                "pings": figures["sent"],
                "answered": len(rtts),
                "p50_ms": round(percentile(rtts, 50), 2),
                "p99_ms": round(percentile(rtts, 99), 2),
                "max_ms": round(max(rtts), 2) if rtts else None,
                "mean_ms": round(statistics.mean(rtts), 2) if rtts else None,
            }
            rows.append(row)
            await asyncio.sleep(1)
        rss = open(f"/proc/{server.pid}/status").read().split("VmRSS:")[1].split("\n")[0].strip()
        print("| attack | PINGs answered | p50 | p99 | max |")
        print("|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['attack']} | {r['answered']}/{r['pings']} | {r['p50_ms']} ms | {r['p99_ms']} ms | {r['max_ms']} ms |")
        print(f"server VmRSS at the end: {rss}")
        print(json.dumps({"secs": args.secs, "rows": rows, "rss_end": rss}))
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(data, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", default=os.path.join(os.path.dirname(__file__), "..", "target", "release", "charla"))
    parser.add_argument("--secs", type=float, default=10.0, help="seconds each attack is measured")
    parser.add_argument("--attacks", default=",".join(ATTACKS), help="comma-separated, from: " + ", ".join(ATTACKS))
    parser.add_argument("--witness", nargs=2, metavar=("ADDR", "SECS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.witness:
        host, port = args.witness[0].rsplit(":", 1)
        asyncio.run(witness((host, int(port)), float(args.witness[1])))
        return
    args.attacks = [a for a in args.attacks.split(",") if a]
    unknown = [a for a in args.attacks if a not in ATTACKS]
    if unknown:
        parser.error(f"unknown attacks: {unknown}")
    if not os.path.exists(args.bin):
        parser.error(f"{args.bin} does not exist: run `cargo build --release` first")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
