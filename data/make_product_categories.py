"""Write product_categories.tsv: short product descriptions, each labelled with its category.

Written for the attention course (lesson 02, attention pooling). Every description is a few
neutral "shop talk" clauses that any product could have, with ONE clause naming the product.
Only that clause decides the category, so a classifier must find a few words among many: the
job attention pooling is good at and mean pooling is not.

The clauses and word lists below were written by hand for the course; the file is built from
them with a fixed seed, so running this script reproduces it byte for byte:

    python data/make_product_categories.py

The file ships inside the package (course_utils/data_files/, where
course_utils.pooling.load_product_categories reads it), so an installed course finds it too.

License: CC0 1.0 (public domain dedication), like the rest of this folder's generated data.
"""

from __future__ import annotations

import random
from pathlib import Path

SEED = 0
N_PER_CATEGORY = 100
OUT = Path(__file__).resolve().parents[1] / "course_utils" / "data_files" / "product_categories.tsv"

# The words that decide the category: the product itself.
PRODUCTS = {
    "kitchen": [
        "kettle",
        "blender",
        "frying pan",
        "toaster",
        "chopping board",
        "saucepan",
        "coffee grinder",
        "teapot",
        "whisk",
        "mixing bowl",
        "rice cooker",
        "colander",
    ],
    "garden": [
        "rake",
        "hose",
        "flower pot",
        "lawn mower",
        "watering can",
        "shovel",
        "wheelbarrow",
        "hedge trimmer",
        "seed tray",
        "compost bin",
        "bird feeder",
        "trowel",
    ],
    "electronics": [
        "headphones",
        "keyboard",
        "webcam",
        "charger",
        "speaker",
        "router",
        "smartwatch",
        "monitor",
        "power bank",
        "microphone",
        "tablet",
        "mouse",
    ],
    "clothing": [
        "jacket",
        "scarf",
        "sweater",
        "raincoat",
        "hoodie",
        "t-shirt",
        "pair of jeans",
        "dress",
        "pair of socks",
        "beanie",
        "skirt",
        "pair of gloves",
    ],
}

# The one clause that names the product ({p}); adjectives are shared by every category.
PRODUCT_CLAUSES = [
    "this {a} {p} is our best seller",
    "meet the {a} {p}",
    "a {a} {p} for every home",
    "our new {a} {p} has arrived",
    "the {a} {p} you have been waiting for",
    "order the {a} {p} today",
    "you will love this {a} {p}",
]
ADJECTIVES = [
    "classic",
    "compact",
    "modern",
    "lightweight",
    "premium",
    "simple",
    "sturdy",
    "stylish",
    "reliable",
    "handy",
    "elegant",
    "practical",
]

# Neutral clauses: any product in any category could say these.
FILLER_CLAUSES = [
    "made with care by a small team",
    "it comes in a recycled cardboard box",
    "makes a lovely gift for friends and family",
    "available in several colours",
    "backed by a two year warranty",
    "easy to clean and easy to store",
    "free delivery on orders over twenty pounds",
    "thousands of happy customers agree",
    "designed to last for many years",
    "rated five stars by our customers",
    "simple to use straight out of the box",
    "returns are free within thirty days",
    "great value for the price",
    "a favourite with our staff",
    "ships within two working days",
    "built from quality materials",
    "perfect for everyday use",
    "limited stock so order soon",
    "we tested it for months before selling it",
    "the quality speaks for itself",
    "customers say it feels solid and well made",
    "it will not let you down",
    "a smart choice for the price",
    "our support team is happy to help",
]


def describe(category: str, rng: random.Random) -> str:
    """One description: 4 to 10 neutral clauses with the product clause at a random place."""
    clauses = rng.sample(FILLER_CLAUSES, rng.randint(4, 10))
    product = rng.choice(PRODUCT_CLAUSES).format(
        a=rng.choice(ADJECTIVES), p=rng.choice(PRODUCTS[category])
    )
    clauses.insert(rng.randint(0, len(clauses)), product)
    return " ".join(clauses)


def build(seed: int = SEED, n_per_category: int = N_PER_CATEGORY) -> list[tuple[str, str]]:
    """``n_per_category`` distinct (description, category) rows per category, shuffled."""
    rng = random.Random(seed)
    rows: list[tuple[str, str]] = []
    seen: set[str] = set()
    for category in PRODUCTS:
        made = 0
        while made < n_per_category:
            text = describe(category, rng)
            if text not in seen:
                seen.add(text)
                rows.append((text, category))
                made += 1
    rng.shuffle(rows)
    return rows


def to_tsv(rows: list[tuple[str, str]]) -> str:
    return "text\tcategory\n" + "".join(f"{text}\t{category}\n" for text, category in rows)


if __name__ == "__main__":
    OUT.write_text(to_tsv(build()), encoding="utf-8", newline="\n")
    print(f"wrote {OUT}")
