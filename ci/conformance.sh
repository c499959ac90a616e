#!/usr/bin/env bash
# The conformance matrix: runs the data-driven suite (tests/conformance.rs, cases under
# conformance/cases/) once per Envoy version and writes target/conformance/report.{md,json}.
#
#   ci/conformance.sh               # every version in conformance/envoy-versions
#   ci/conformance.sh 1.36.4 1.40.0 # just these
#
# Exits non-zero if any case failed on any version (or a run produced no results).
set -uo pipefail
cd "$(dirname "$0")/.."

out=target/conformance
mkdir -p "$out"
if [ "$#" -gt 0 ]; then
    versions=("$@")
else
    mapfile -t versions < <(grep -v '^[[:space:]]*\(#\|$\)' conformance/envoy-versions | sed 's/[[:space:]]//g; /^$/d')
fi
[ "${#versions[@]}" -gt 0 ] || { echo "no Envoy versions" >&2; exit 2; }

echo "==> conformance: building the suite"
cargo test --features e2e --test conformance --no-run || exit 1

status=0
timings="$out/timings.tsv"
: > "$timings"
for v in "${versions[@]}"; do
    results="$out/results-$v.jsonl"
    log="$out/log-$v.txt"
    rm -f "$results"
    echo "==> conformance: Envoy $v"
    started=$(date +%s)
    ISOBAR_ENVOY_VERSION="$v" ISOBAR_CONFORMANCE_REPORT="$PWD/$results" \
        cargo test --features e2e --test conformance -- --nocapture >"$log" 2>&1
    rc=$?
    secs=$(( $(date +%s) - started ))
    printf '%s\t%s\t%s\n' "$v" "$secs" "$rc" >> "$timings"
    grep '^conformance ' "$log" || true
    if [ "$rc" -ne 0 ]; then
        status=1
        if [ ! -s "$results" ]; then
            echo "Envoy $v: the suite produced no results (exit $rc); see $log" >&2
            tail -30 "$log" >&2
        fi
    fi
    echo "    Envoy $v: ${secs} s, exit $rc"
done

python3 - "$out" "${versions[@]}" <<'PY' || status=1
import json, sys, os
out, versions = sys.argv[1], sys.argv[2:]
rows = []
for v in versions:
    p = os.path.join(out, f"results-{v}.jsonl")
    if os.path.exists(p):
        with open(p) as f:
            rows += [json.loads(l) for l in f if l.strip()]
timings = {}
with open(os.path.join(out, "timings.tsv")) as f:
    for line in f:
        v, secs, rc = line.rstrip("\n").split("\t")
        timings[v] = {"seconds": int(secs), "exit": int(rc)}
cases = sorted({r["case"] for r in rows})
by = {(r["case"], r["version"]): r for r in rows}
with open(os.path.join(out, "report.json"), "w") as f:
    json.dump({"versions": versions, "timings": timings, "results": rows}, f, indent=2)
def cell(r):
    if r is None:
        return "not run"
    if not r["pass"]:
        return "**FAIL**"
    return "skip" if r["reason"].startswith("skipped") else "pass"
lines = ["# isobar conformance matrix", "",
         "| case | " + " | ".join(versions) + " |",
         "|---|" + "---|" * len(versions)]
for c in cases:
    lines.append(f"| {c} | " + " | ".join(cell(by.get((c, v))) for v in versions) + " |")
lines.append("| **wall time** | " + " | ".join(
    f"{timings[v]['seconds']} s" if v in timings else "-" for v in versions) + " |")
failures = [r for r in rows if not r["pass"]]
lines += ["", "## Failures", ""]
if not failures:
    lines.append("None.")
for r in failures:
    reason = r["reason"].replace("|", "\\|").replace("\n", " ")
    if len(reason) > 500:
        reason = reason[:500] + "… (full reason in report.json)"
    lines.append(f"* `{r['case']}` on Envoy {r['version']}: {reason}")
missing = [(c, v) for c in cases for v in versions if (c, v) not in by]
for c, v in missing:
    lines.append(f"* `{c}` on Envoy {v}: not run (see target/conformance/log-{v}.txt)")
notes = [r for r in rows if r["pass"] and r.get("note")]
if notes:
    lines += ["", "## Notes", ""]
    for r in notes:
        lines.append(f"* `{r['case']}` on Envoy {r['version']}: {r['note']}")
with open(os.path.join(out, "report.md"), "w") as f:
    f.write("\n".join(lines) + "\n")
print("\n".join(lines))
bad = failures or missing or not rows or any(t["exit"] for t in timings.values())
sys.exit(1 if bad else 0)
PY
echo "==> conformance: report in $out/report.md and $out/report.json"
exit "$status"
