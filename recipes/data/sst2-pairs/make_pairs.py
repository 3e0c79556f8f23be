"""Rebuild this folder's sentence-pair files from ../sst2 (seeded: the same files every time).

    python recipes/data/sst2-pairs/make_pairs.py

Each row pairs an SST-2 review with a claim about it ("the critic liked it", "a negative review",
...); label 1 when the claim is true of the review. Half the claims are true: neither text alone
tells the label, the model has to read both.
"""

import csv
import random
from pathlib import Path

HERE = Path(__file__).parent
ROWS = {"train": 8000, "dev": 500, "test": 872}
CLAIMS = {  # sentiment label -> claims that say it
    "1": ["the critic liked it .", "a positive review .", "the film is recommended ."],
    "0": ["the critic disliked it .", "a negative review .", "the film is not recommended ."],
}


def read(path: Path) -> list[tuple[str, str]]:
    with path.open(encoding="utf-8") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        next(reader)
        return [(row[0].strip(), row[1]) for row in reader if row]


def main() -> None:
    rng = random.Random(0)
    for split, n in ROWS.items():
        rows = read(HERE.parent / "sst2" / f"{split}.tsv")
        firsts = rng.sample(range(len(rows)), min(n, len(rows)))
        with (HERE / f"{split}.tsv").open("w", encoding="utf-8", newline="") as f:
            f.write("review\tclaim\tlabel\n")
            for i in firsts:
                text, sentiment = rows[i]
                true = rng.random() < 0.5
                said = sentiment if true else ("0" if sentiment == "1" else "1")
                f.write(f"{text}\t{rng.choice(CLAIMS[said])}\t{int(true)}\n")


if __name__ == "__main__":
    main()
