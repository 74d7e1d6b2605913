#!/usr/bin/env python3
"""Prints one Markdown table per run of an experiment that compares PTQ recipes as quantizer
settings: a row per quantizer (its recipe and granularity), a column per configuration, each
cell the accuracy (mean ± std over calibration draws where there are several), and the recipe's
cost from the sweep header. Usage: scripts/recipe_table.py results/NAME [--split test]"""
import argparse
import json
import pathlib
import sys


def cell(row):
    draws = row.get("accuracy_draws", [])
    if len(draws) > 1:
        return f"{row['accuracy']:.2f} ± {row['accuracy_std']:.2f}"
    return f"{row['accuracy']:.2f}"


def cost(header):
    c = header.get("recipe_cost", {})
    spent = sum(c.get(k, 0.0) for k in ("equalize_seconds", "capture_seconds", "adaround_seconds",
                                        "bias_correction_seconds"))
    return f"{spent:.0f} s ({c.get('layers_learned', 0)} layers)" if spent >= 0.5 else "–"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("experiment", type=pathlib.Path)
    parser.add_argument("--split", default="test")
    args = parser.parse_args()
    runs = sorted(p for p in args.experiment.glob("seed_*/*") if p.is_dir())
    if not runs:
        sys.exit(f"{args.experiment}: no seed_*/VARIANT run directories")
    for run in runs:
        sweeps = sorted(run.glob(f"sweep_*_{args.split}.json"), key=lambda p: p.stat().st_mtime)
        if not sweeps:
            continue
        documents = [(p.name[len("sweep_"):-len(f"_{args.split}.json")], json.loads(p.read_text())) for p in sweeps]
        columns = [r["config"] for r in documents[0][1]["rows"]]
        print(f"### {run.parent.name} {run.name} ({args.split} split)\n")
        print("| quantizer | recipe | weights | " + " | ".join(columns) + " | recipe cost |")
        print("| --- | --- | --- | " + " | ".join("---" for _ in columns) + " | --- |")
        for name, doc in documents:
            header = doc["header"]
            by_config = {r["config"]: r for r in doc["rows"]}
            cells = [cell(by_config[c]) if c in by_config else "" for c in columns]
            print(f"| {name} | {header.get('recipe', 'round-to-nearest')} | {header['weight_granularity']} | "
                  + " | ".join(cells) + f" | {cost(header)} |")
        print()


if __name__ == "__main__":
    main()
