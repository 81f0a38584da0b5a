"""One knob, two basins: the editable half of the deceptive study.

A benchmark study for search policies (benchmarks/search.py), not a model.
evaluate.py scores SCALE on a landscape with a near, shallow basin (SCALE
around 2.5, loss 0.4) and a far, deep one (SCALE around 0.01, loss 0). From
the default, small steps up improve at once; steps down first get slightly
worse (a ridge up to SCALE ~ 0.56), then improve steadily all the way to the
deep basin. Greedy hill-climbing takes the near basin and stays there; a
search that also builds on worse experiments can cross the ridge.

Run: python train.py   (writes knobs.json for evaluate.py)
"""

import json

# --- hyperparameters -----------------------------------------------------------

SCALE = 1.0  # the one knob; evaluate.py scores it on a log scale


def main() -> None:
    """Write the knob for the sealed evaluation and print it."""
    with open("knobs.json", "w") as f:
        json.dump({"scale": SCALE}, f)
    print(f"scale: {SCALE:.6g}")


if __name__ == "__main__":
    main()
