"""Upload throughput against a running gateway: `python -m bench.uploads --url http://127.0.0.1:8000`.

Registers a throwaway user, then POSTs a file of --size-mib (default 10) --repeat times
to /api/uploads and reads it back from its URL, one request at a time: a file of
random bytes (typed application/octet-stream: transport and storage only) and a PNG of
about that size (the image path: decode, verify, thumbnail). Prints MiB/s per request
as min/median/max. The gateway's throttle (GOCHAT_THROTTLE_UPLOADS, 60/min) must allow
--repeat uploads a minute.
"""

import argparse
import io
import os
import statistics
import time
import uuid

import requests
from PIL import Image

PASSWORD = "Corr3ct-horse-battery"
MiB = 1024 * 1024


def login(base: str) -> dict[str, str]:
    username = f"bench{uuid.uuid4().hex[:10]}"
    r = requests.post(f"{base}/api/auth/register", json={"username": username, "password": PASSWORD}, timeout=30)
    r.raise_for_status()
    r = requests.post(f"{base}/api/auth/login", json={"username": username, "password": PASSWORD}, timeout=30)
    r.raise_for_status()
    return {"Authorization": f"Bearer {r.json()['access']}"}


def noise_png(target_bytes: int) -> bytes:
    """A PNG of random pixels (incompressible) just under target_bytes."""
    side = int((target_bytes / 3) ** 0.5) - 8
    while True:
        out = io.BytesIO()
        Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(out, "PNG", compress_level=1)
        if out.tell() <= target_bytes:
            return out.getvalue()
        side -= 16


def measure(base: str, headers: dict[str, str], name: str, data: bytes, ctype: str, repeat: int) -> dict[str, list]:
    up, down = [], []
    for _ in range(repeat):
        started = time.perf_counter()
        r = requests.post(f"{base}/api/uploads", files={"file": (name, data, ctype)}, headers=headers, timeout=120)
        up.append(time.perf_counter() - started)
        r.raise_for_status()
        started = time.perf_counter()
        got = requests.get(base + r.json()["url"], headers=headers, timeout=120)
        down.append(time.perf_counter() - started)
        assert got.status_code == 200 and len(got.content) == len(data), got.status_code
    return {"up": up, "down": down}


def line(label: str, size: int, seconds: list[float]) -> str:
    rates = sorted(size / MiB / s for s in seconds)
    return (f"{label:<36} {len(rates):>3}x  MiB/s min {rates[0]:7.1f}  median {statistics.median(rates):7.1f}  "
            f"max {rates[-1]:7.1f}  (median {statistics.median(seconds) * 1000:6.0f} ms a request)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--size-mib", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    size = int(args.size_mib * MiB)
    headers = login(args.url)
    blob = os.urandom(size)
    image = noise_png(size)
    print(f"gateway {args.url}; file {size} bytes, PNG {len(image)} bytes ({Image.open(io.BytesIO(image)).size})")
    for label, data, ctype, name in (("random bytes", blob, "application/octet-stream", "blob.bin"),
                                     ("PNG (decode + thumbnail)", image, "image/png", "noise.png")):
        result = measure(args.url, headers, name, data, ctype, args.repeat)
        print(line(f"upload {label}", len(data), result["up"]))
        print(line(f"download {label}", len(data), result["down"]))


if __name__ == "__main__":
    main()
