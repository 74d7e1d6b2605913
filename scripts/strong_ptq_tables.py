#!/usr/bin/env python3
"""Prints the strong-PTQ experiment's summary in Markdown, from the tables `qrobust run` wrote
(table.json: variants against none per quantizer setting; table_by_quantizer.json: quantizer
settings against rtn per variant; mixed_precision.json). Per bit configuration, one table with a
row per quantizer setting: none's accuracy, what the setting recovers over rtn on none, and each
variant's paired difference from none under that setting, with 95 % t-intervals over seeds
(bold where they exclude 0); then the mixed-precision plans of each variant against none.
Usage: scripts/strong_ptq_tables.py results/NAME [--split test] [--columns w4a4,w3a3]"""
import argparse
import json
import pathlib
import sys


def mean_std(s):
    return f"{s['mean']:.2f} ± {s['std']:.2f}" if s["n"] > 1 else f"{s['mean']:.2f}"


def difference(d):
    if d is None:
        return "–"
    text = f"{d['mean']:+.2f}"
    if not d["defined"]:
        return f"{text} (n={d['n']})"
    if d["excludes_zero"]:
        text = f"**{text}**"
    return f"{text} [{d['low']:+.2f}, {d['high']:+.2f}]"


def load(path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        sys.exit(f"{path}: {e}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("experiment", type=pathlib.Path)
    parser.add_argument("--split", default="test")
    parser.add_argument("--columns", help="bit configurations to show (default: all but fp32)")
    args = parser.parse_args()
    by_variant = load(args.experiment / "table.json")
    by_quantizer = load(args.experiment / "table_by_quantizer.json")
    reference, reference_quantizer = by_variant["reference"], by_quantizer["reference"]
    columns = args.columns.split(",") if args.columns else [c for c in by_variant["columns"] if c != "fp32"]
    tables = [t for t in by_variant["tables"] if t["split"] == args.split]
    if not tables:
        sys.exit(f"{args.experiment}: no {args.split}-split tables")
    variants = [r["variant"] for r in tables[0]["rows"] if r["variant"] != reference]
    recovered = {}  # quantizer -> column -> difference from rtn, on the reference variant
    for t in by_quantizer["tables"]:
        if t["variant"] == reference and t["split"] == args.split:
            for row in t.get("comparison", []):
                recovered[row["quantizer"]] = row["difference"]
    for column in columns:
        print(f"#### {column}\n")
        heads = ["quantizer", reference, f"− {reference_quantizer} on {reference}"] + [f"{v} − {reference}" for v in variants]
        print("| " + " | ".join(heads) + " |")
        print("|" + " --- |" * len(heads))
        for t in tables:
            rows = {r["variant"]: r["accuracy"] for r in t["rows"]}
            compared = {r["variant"]: r["difference"] for r in t.get("comparison", [])}
            base = rows.get(reference, {}).get(column)
            gain = recovered.get(t["quantizer"], {}).get(column)
            cells = [t["quantizer"], mean_std(base) if base else "–",
                     difference(gain) if t["quantizer"] != reference_quantizer else "–"]
            cells += [difference(compared.get(v, {}).get(column)) for v in variants]
            print("| " + " | ".join(cells) + " |")
        print()
    mixed = args.experiment / "mixed_precision.json"
    if mixed.exists():
        doc = load(mixed)
        print(f"#### mixed precision (plan accuracy, mean ± std; − {doc.get('reference', 'none')}: paired by seed)\n")
        print("| quantizer | criterion | budget | variant | plan | uniform | plan − uniform | plan − reference |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- |")
        for row in doc["rows"]:
            plan, uniform = row["plan_accuracy"], row["uniform_accuracy"]
            mean = sum(plan) / len(plan)
            std = (sum((x - mean) ** 2 for x in plan) / (len(plan) - 1)) ** 0.5 if len(plan) > 1 else 0.0
            gap = f"{sum(p - u for p, u in zip(plan, uniform)) / len(plan):+.2f}" if uniform else "–"
            if uniform and len(plan) > 1:
                gap += f" [{row['difference_low']:+.2f}, {row['difference_high']:+.2f}]"
            print(f"| {row['quantizer']} | {row['criterion']} | {row['budget']:g} | {row['variant']} | "
                  f"{mean:.2f} ± {std:.2f} | {row['uniform'] or '–'} | {gap} | "
                  f"{difference(row.get('versus_reference'))} |")
        print()


if __name__ == "__main__":
    main()
