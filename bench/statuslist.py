"""Status list at 1,000,000 entries: size, load time, memory and lookup time against a plain dict.

Run by hand: `.venv/bin/python bench/statuslist.py [--entries N]`.

The kiosk's list (kiosk.statuslist: verify the JWS, then build the bucket
offsets) is compared with the obvious alternative measured in the same run: a
JSON array of SHA-256 hex digests loaded into a Python dict of hex strings.
Each loader runs in a fresh interpreter so that its RSS delta is its own.
Lookup time is also measured at 10x and 100x fewer entries: a flat line is
what O(1) looks like.

Then the cost of one guess by whoever holds a kiosk and its list: a candidate
citizen number tested as the kiosk tests one (the list's salted SHA-256 key,
then the bucket probe), against a plain SHA-256 of the same candidate in the
same run, and from it the time to enumerate the CCCD number space on one core
of this machine, whole and as its first six digits narrow it
(`--guesses-only` runs this part alone).
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from kiosk import jws
from kiosk import statuslist as sl
from kiosk.cards.cccd import CENTURY_BY_DIGIT, PROVINCE_CODES

LOOKUPS = 200_000
CODES = ("F0", "F1", "F2", "quarantine")
ROWS = (
    ("load (verify + build)", "s", "load_s"),
    ("RSS after load", "MiB", "rss_mb"),
    ("peak RSS during load", "MiB", "peak_mb"),
    ("lookup", "µs", "lookup_us"),
)


def identities(count: int) -> list[str]:
    """Listed identities: 12-digit citizen id numbers."""
    return [f"{i * 7919 % 10**12:012d}" for i in range(count)]


def probes(count: int) -> list[str]:
    """Half listed, half unlisted identities, interleaved."""
    listed = identities(count)
    half = LOOKUPS // 2
    return [x for i in range(half) for x in (listed[i * 7 % count], f"9{i:011d}")]


def rss_bytes() -> int:
    """Current resident set size (Linux)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def reset_peak_rss() -> None:
    """Start a new peak-RSS measurement (Linux 4.0+: clear_refs 5 resets VmHWM)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def peak_rss_bytes() -> int:
    """Peak resident set size since the last reset (VmHWM; ru_maxrss would include the parent's)."""
    with open("/proc/self/status") as f:
        line = next(line for line in f if line.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


# ---------------------------------------------------------------- the two loaders, each in a child process


def child_kiosk(token_path: Path, public_raw: bytes, count: int) -> dict[str, float]:
    """Load the kiosk's list as the daemon does (StatusListStore.offer), then time lookups."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    key = Ed25519PublicKey.from_public_bytes(public_raw)
    queries = probes(count)
    gc.collect()
    reset_peak_rss()
    before = rss_bytes()
    start = time.perf_counter()
    store = sl.StatusListStore(key)
    store.offer(token_path.read_bytes())
    load = time.perf_counter() - start
    gc.collect()
    return {**memory_since(before, load), **time_lookups(store.lookup, queries)}


def child_baseline(json_path: Path, count: int) -> dict[str, float]:
    """Load a JSON array of hex digests into a dict of hex strings, then time lookups."""
    queries = probes(count)
    salt = b"0123456789abcdef"
    gc.collect()
    reset_peak_rss()
    before = rss_bytes()
    start = time.perf_counter()
    rows = json.loads(json_path.read_bytes())
    table = {digest: CODES[code] for digest, code in rows}
    del rows
    load = time.perf_counter() - start
    gc.collect()

    def lookup(identity: str) -> str | None:
        return table.get(hashlib.sha256(salt + identity.encode()).hexdigest())

    return {**memory_since(before, load), **time_lookups(lookup, queries)}


def memory_since(before: int, load_s: float) -> dict[str, float]:
    """Load time with the RSS growth since `before`, now and at its peak, in MiB."""
    return {
        "load_s": load_s,
        "rss_mb": (rss_bytes() - before) / 2**20,
        "peak_mb": (peak_rss_bytes() - before) / 2**20,
    }


def time_lookups(lookup: Callable[[str], object], queries: list[str]) -> dict[str, float]:
    """Mean lookup time in microseconds (best of 3 passes, against a busy machine), and hits."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        found = sum(lookup(q) is not None for q in queries)
        best = min(best, time.perf_counter() - start)
    return {"lookup_us": best / len(queries) * 1e6, "found": found}


# ---------------------------------------------------------------- the parent: make files, run children


def make_files(folder: Path, count: int, key: Ed25519PrivateKey) -> tuple[Path, Path, dict[str, float]]:
    """Write the signed kiosk list and the baseline JSON; return their paths and the making costs."""
    rows = [sl.Entry(identity, sl.Status(CODES[i % 4])) for i, identity in enumerate(identities(count))]
    start = time.perf_counter()
    token = sl.sign_payload(sl.build_payload(rows, version=1, issued=datetime.now(UTC)), key)
    make_s = time.perf_counter() - start
    token_path = folder / f"list-{count}.jws"
    token_path.write_bytes(token)
    salt = b"0123456789abcdef"
    baseline = [[hashlib.sha256(salt + r.identity.encode()).hexdigest(), i % 4] for i, r in enumerate(rows)]
    json_path = folder / f"list-{count}.json"
    json_path.write_text(json.dumps(baseline))
    sizes = {"make_s": make_s, "token_mb": len(token) / 2**20, "json_mb": json_path.stat().st_size / 2**20}
    return token_path, json_path, sizes


def run_child(*args: str) -> dict[str, float]:
    """Run one measurement in a fresh interpreter and read its JSON result."""
    out = subprocess.run(
        [sys.executable, __file__, "--child", *args], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


def measure(count: int, folder: Path, key: Ed25519PrivateKey) -> dict[str, dict[str, float]]:
    """Make the files for `count` entries and measure both loaders."""
    token_path, json_path, sizes = make_files(folder, count, key)
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()
    kiosk = run_child("kiosk", str(token_path), raw, str(count))
    baseline = run_child("baseline", str(json_path), str(count))
    return {"sizes": sizes, "kiosk": kiosk, "baseline": baseline}


def report(count: int, result: dict[str, dict[str, float]]) -> None:
    """Print the Markdown table for one size."""
    kiosk, base, sizes = result["kiosk"], result["baseline"], result["sizes"]
    limit = jws.MAX_TOKEN_BYTES / 2**20
    made = f"making and signing the list took {sizes['make_s']:.1f} s"
    print(f"\n{count:,} entries: token {sizes['token_mb']:.2f} MiB (limit {limit:.0f} MiB), "
          f"baseline JSON {sizes['json_mb']:.1f} MiB; {made}")  # fmt: skip
    print("| measure | kiosk list | dict of hex strings | ratio (dict / kiosk) |")
    print("|---|---:|---:|---:|")
    for name, unit, key in ROWS:
        print(f"| {name} | {kiosk[key]:.3g} {unit} | {base[key]:.3g} {unit} | {base[key] / kiosk[key]:.2f} |")
    assert kiosk["found"] == base["found"] == LOOKUPS // 2, (kiosk["found"], base["found"])


# ---------------------------------------------------------------- the cost of a guess

GUESSES = 300_000
# Birth years of the living, for the narrowest structured space (ages 0 to about 106 in 2026).
LIVING_YEARS = range(1920, 2027)


def cccd_candidates(count: int) -> list[str]:
    """Well-formed candidate citizen numbers (a real province, century/gender digit and year)."""
    provinces = sorted(PROVINCE_CODES)
    return [f"{provinces[i % len(provinces)]}{i % 4}{i % 100:02d}{i:06d}"[:12] for i in range(count)]


def time_guesses(test: Callable[[str], object], candidates: list[str]) -> float:
    """Mean time per candidate in microseconds, best of 3 passes (the machine is shared)."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for candidate in candidates:
            test(candidate)
        best = min(best, time.perf_counter() - start)
    return best / len(candidates) * 1e6


def cccd_spaces() -> list[tuple[str, int]]:
    """The citizen-number space, whole and narrowed by what its first six digits can be."""
    provinces, serials = len(PROVINCE_CODES), 10**6
    living = 2 * len(LIVING_YEARS)  # a male and a female century/gender digit per year
    assert {CENTURY_BY_DIGIT[d] for d in range(4)} == {1900, 2000}
    return [
        ("any 12 digits", 10**12),
        (f"{provinces} province codes, any digit 4, any year", provinces * 10 * 100 * serials),
        (f"{provinces} provinces, born 1900-2099 (digit 4 in 0-3)", provinces * 4 * 100 * serials),
        (f"{provinces} provinces, born {LIVING_YEARS[0]}-{LIVING_YEARS[-1]}", provinces * living * serials),
        ("one person's province, gender and birth year known", serials),
    ]


def measure_guesses(key: Ed25519PrivateKey) -> dict[str, float]:
    """Time a plain SHA-256, the list's salted key and a whole kiosk lookup over the same candidates."""
    rows = [sl.Entry(identity, sl.Status(CODES[i % 4])) for i, identity in enumerate(identities(100_000))]
    token = sl.sign_payload(sl.build_payload(rows, version=1, issued=datetime.now(UTC)), key)
    store = sl.StatusListStore(key.public_key())
    store.offer(token)
    current = store.current
    assert current is not None
    salt, bits = current.salt, sl.bucket_bits(current.count)
    candidates = cccd_candidates(GUESSES)
    return {
        "plain_us": time_guesses(lambda c: hashlib.sha256(c.encode()).digest(), candidates),
        "key_us": time_guesses(lambda c: sl.identity_key(salt, c, bits), candidates),
        "guess_us": time_guesses(store.lookup, candidates),
    }


def report_guesses(times: dict[str, float]) -> None:
    """Print the cost of one guess and of enumerating the citizen-number space at that cost."""
    plain = times["plain_us"]
    print(f"\nOne guess, {GUESSES:,} candidate citizen numbers, best of 3 (one core):")
    print("| computation | per guess | ratio (to plain SHA-256) | guesses/s |")
    print("|---|---:|---:|---:|")
    for name, key in (
        ("plain SHA-256 of the number (baseline)", "plain_us"),
        ("the list's key: SHA-256(salt || number), top bits", "key_us"),
        ("a whole kiosk lookup (key + bucket probe)", "guess_us"),
    ):
        print(f"| {name} | {times[key]:.3g} µs | {times[key] / plain:.2f} | {1e6 / times[key]:,.0f} |")
    guess_s = times["guess_us"] / 1e6
    print("\nEnumerating the CCCD space at one kiosk lookup per candidate, one core:")
    print("| candidates | count | time |")
    print("|---|---:|---:|")
    for name, count in cccd_spaces():
        print(f"| {name} | {count:.3g} | {duration(count * guess_s)} |")


def duration(seconds: float) -> str:
    """A duration in the largest unit that keeps it above 1."""
    for unit, size in (("days", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if seconds >= size:
            return f"{seconds / size:,.1f} {unit}"
    return f"{seconds:.1f} s"


def main() -> None:
    """Measure at the requested size and at 10x and 100x fewer entries, then the cost of a guess."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--guesses-only", action="store_true", help="measure only the cost of a guess")
    args = parser.parse_args()
    key = Ed25519PrivateKey.generate()
    if not args.guesses_only:
        with tempfile.TemporaryDirectory() as folder:
            for count in (args.entries // 100, args.entries // 10, args.entries):
                report(count, measure(count, Path(folder), key))
    report_guesses(measure_guesses(key))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        kind, path, *rest = sys.argv[2:]
        if kind == "kiosk":
            result = child_kiosk(Path(path), bytes.fromhex(rest[0]), int(rest[1]))
        else:
            result = child_baseline(Path(path), int(rest[0]))
        print(json.dumps(result))
    else:
        main()
