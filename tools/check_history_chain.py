#!/usr/bin/env python3
"""Check one BitBurst user's history from the HTTP API alone, independently of the service's code.

    check_history_chain.py BASE_URL USER_ID [--api-key KEY] [--expect-hash HEX]
    check_history_chain.py --from-file PAGES_FILE USER_ID [--expect-hash HEX]
    check_history_chain.py --self-test

It reads every page of GET BASE_URL/users/USER_ID/history by following `next_cursor` (newest first),
puts the transactions oldest first and checks that:

- the sequences are 1, 2, ..., n with no gap;
- each `balance_after` is the previous one (0.00 before the first) plus `amount`;
- each `created_at` is not earlier than the one before it;
- each `hash` is SHA-256 of the canonical encoding of the transaction and the previous `hash`;
- with --expect-hash (a hash from an old receipt), that hash is in the chain.

A cursor continues right below the page that gave it, so adds made while the pages are read are left
out: the chain checked ends at the newest transaction of the first page.

The canonical encoding is seven lines of ASCII, each ended by one line feed (0x0A) and nothing else:

    1. the previous transaction's hash in lowercase hex (64 zeros for sequence 1)
    2. user_id
    3. sequence in decimal, without leading zeros
    4. id, a lowercase UUID with hyphens
    5. amount, and 6. balance_after, exactly as the API writes them (two decimals: 500.00)
    7. created_at exactly as the API writes it (2026-11-29T10:00:00.123456Z: six decimals, UTC "Z")

Each line is the text of the JSON answer, unchanged, so nothing has to be reformatted. docs/api.md
("The hash chain") shows the bytes of a worked example.

With --from-file, BASE_URL names a file (- for standard input) holding what the API answered: one
history page, a list of pages, or a list of transactions, newest first; handy to check saved pages.

Each failure is one line naming the sequence; the last line is a summary. Exit status: 0 if everything
holds, 1 if something does not, 2 for a usage or HTTP error. Standard library only: copy it freely.
"""

import argparse
import hashlib
import json
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime
from decimal import Decimal

GENESIS = "0" * 64
MONEY = re.compile(r"\d+\.\d{2}")
HEX64 = re.compile(r"[0-9a-f]{64}")
CREATED_AT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


def entry_hash(previous, tx):
    """SHA-256, in lowercase hex, of the canonical encoding of `tx` following the hash `previous`."""
    lines = [previous, tx["user_id"], str(tx["sequence"]), tx["id"], tx["amount"], tx["balance_after"],
             tx["created_at"]]
    return hashlib.sha256("".join(f"{line}\n" for line in lines).encode()).hexdigest()


def parse_created_at(text):
    """The time of a `created_at` written as the API writes it, else None."""
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ") if CREATED_AT.fullmatch(str(text)) else None
    except ValueError:
        return None


def fetch_history(base_url, user_id, api_key):
    """Every transaction of the user, newest first, page by page through `next_cursor`."""
    url = f"{base_url.rstrip('/')}/users/{urllib.parse.quote(user_id, safe='')}/history"
    headers = {"Accept": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    transactions, cursor, seen = [], None, set()
    while True:
        query = f"?{urllib.parse.urlencode({'cursor': cursor})}" if cursor else ""
        with urllib.request.urlopen(urllib.request.Request(url + query, headers=headers), timeout=30) as answer:
            page = json.load(answer)
        transactions += page["transactions"]
        cursor = page["next_cursor"]
        if cursor is None or cursor in seen:
            return transactions
        seen.add(cursor)


def read_pages(path):
    """Transactions from a file (- for standard input): one history page, a list of pages, or a list of
    transactions, newest first as the API answers them."""
    with (sys.stdin if path == "-" else open(path, encoding="utf-8")) as source:
        data = json.load(source)
    pages = data if isinstance(data, list) else [data]
    return [tx for page in pages for tx in (page["transactions"] if "transactions" in page else [page])]


def check_chain(user_id, transactions, expect_hash=None):
    """The failures of the chain, one line each, for `transactions` oldest first."""
    failures = []
    previous_sequence, previous_hash, balance, previous_time = 0, GENESIS, Decimal("0.00"), None
    for tx in transactions:
        sequence, problems = tx.get("sequence"), []
        if sequence != previous_sequence + 1:
            problems.append(f"follows sequence {previous_sequence}: a gap, a duplicate or a reordering")
        if tx.get("user_id") != user_id:
            problems.append(f"belongs to user {tx.get('user_id')!r}, not {user_id!r}")
        created_at = parse_created_at(tx.get("created_at"))
        if not (MONEY.fullmatch(str(tx.get("amount"))) and MONEY.fullmatch(str(tx.get("balance_after")))
                and created_at):
            problems.append("amount, balance_after or created_at is not written as the API writes it; stopping")
            return failures + [f"sequence {sequence}: {problem}" for problem in problems]
        balance += Decimal(tx["amount"])
        if Decimal(tx["balance_after"]) != balance:
            problems.append(f"balance_after {tx['balance_after']} is not the previous balance plus {tx['amount']}")
            balance = Decimal(tx["balance_after"])  # Check the next one against what this one says.
        if previous_time is not None and created_at < previous_time:
            problems.append(f"created_at {tx['created_at']} is earlier than the previous transaction's")
        if not HEX64.fullmatch(str(tx.get("hash"))):
            problems.append(f"hash {tx.get('hash')!r} is not 64 lowercase hex digits")
        elif entry_hash(previous_hash, tx) != tx["hash"]:
            problems.append(f"hash {tx['hash']} does not match the transaction and the previous hash")
        failures += [f"sequence {sequence}: {problem}" for problem in problems]
        # Each link is checked against what the previous transaction shows, so one changed transaction
        # is reported once rather than with every transaction after it.
        previous_sequence = sequence if isinstance(sequence, int) else previous_sequence + 1
        previous_hash, previous_time = str(tx.get("hash")), created_at
    if expect_hash is not None and expect_hash not in {tx.get("hash") for tx in transactions}:
        failures.append(f"expected hash {expect_hash} is not in the chain")
    return failures


def self_test():
    """The worked example of docs/api.md (the first link, and a second one after it), recomputed."""
    first = {"user_id": "gopal", "sequence": 1, "id": "0190f0c8-7d3a-7c12-9a4e-5b8f2e1d6c3a", "amount": "500.00",
             "balance_after": "500.00", "created_at": "2026-11-29T10:00:00.123456Z",
             "hash": "0a2483e750cdf009ebbf32562432b4e95e7102c1ad480e00370858c02f41de82"}
    second = {"user_id": "gopal", "sequence": 2, "id": "0190f0d2-1b44-7e01-8c3f-2a9d7b6e5f10", "amount": "12.34",
              "balance_after": "512.34", "created_at": "2026-11-29T10:05:00.000001Z",
              "hash": "1bf2a3222af1aa437f74217f1197b34290182e5800c8f42ff80ebd5843fa6e94"}
    computed = [entry_hash(GENESIS, first), entry_hash(first["hash"], second)]
    ok = computed == [first["hash"], second["hash"]] and not check_chain("gopal", [first, second])
    print(f"self-test {'ok' if ok else 'FAILED'}: the worked example hashes to {computed[0]}, then {computed[1]}")
    return 0 if ok else 1


def main():
    parser = argparse.ArgumentParser(description="Check a BitBurst user's hash chain from the HTTP history.")
    parser.add_argument("base_url", nargs="?", metavar="BASE_URL", help="e.g. http://localhost:8080")
    parser.add_argument("user_id", nargs="?", metavar="USER_ID")
    parser.add_argument("--api-key", metavar="KEY", help="sent as Authorization: Bearer KEY")
    parser.add_argument("--expect-hash", metavar="HEX", help="a hash that must be in the chain (from a receipt)")
    parser.add_argument("--from-file", action="store_true",
                        help="BASE_URL is a file (- for standard input) of history pages as JSON, not a URL")
    parser.add_argument("--self-test", action="store_true", help="only recompute the worked example")
    args = parser.parse_args()
    if args.self_test:
        return self_test()
    if args.user_id is None:
        parser.error("BASE_URL and USER_ID are required")
    expect_hash = args.expect_hash.lower() if args.expect_hash else None
    if expect_hash is not None and not HEX64.fullmatch(expect_hash):
        parser.error("--expect-hash must be 64 hex digits")
    try:
        if args.from_file:
            newest_first = read_pages(args.base_url)
        else:
            newest_first = fetch_history(args.base_url, args.user_id, args.api_key)
    except urllib.error.HTTPError as error:
        print(f"check_history_chain: {error.url} answered {error.code}: {error.read().decode(errors='replace')}",
              file=sys.stderr)
        return 2
    except (OSError, ValueError, KeyError, TypeError) as error:
        print(f"check_history_chain: cannot read the history: {error!r}", file=sys.stderr)
        return 2
    if not all(isinstance(tx, dict) for tx in newest_first):
        print("check_history_chain: the history holds something that is not a transaction", file=sys.stderr)
        return 2
    transactions = newest_first[::-1]
    failures = check_chain(args.user_id, transactions, expect_hash)
    for failure in failures:
        print(failure)
    if failures:
        print(f"chain BROKEN: {args.user_id} {len(transactions)} transactions, {len(failures)} failure(s)")
        return 1
    head = transactions[-1]["hash"] if transactions else GENESIS
    print(f"chain ok: {args.user_id} {len(transactions)} transactions, head {head}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
