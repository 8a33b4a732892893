"""Writes general_slice.jsonl: short general-capability conversations (arithmetic, facts, language),
mixed into a fine-tune at a small ratio against catastrophic forgetting. Deterministic; written by
this project (no third-party data). Run: python assets/demo/make_general_slice.py"""

import json
import random
from pathlib import Path

CAPITALS = {
    "France": "Paris", "Germany": "Berlin", "Italy": "Rome", "Spain": "Madrid", "Portugal": "Lisbon",
    "Japan": "Tokyo", "Canada": "Ottawa", "Australia": "Canberra", "Brazil": "Brasília", "Egypt": "Cairo",
    "Kenya": "Nairobi", "India": "New Delhi", "Mexico": "Mexico City", "Norway": "Oslo", "Sweden": "Stockholm",
    "Poland": "Warsaw", "Greece": "Athens", "Ireland": "Dublin", "Argentina": "Buenos Aires", "Chile": "Santiago",
}
ANTONYMS = {"hot": "cold", "early": "late", "happy": "sad", "open": "closed", "strong": "weak", "light": "dark",
            "full": "empty", "fast": "slow", "high": "low", "old": "young", "rich": "poor", "wide": "narrow"}
FACTS = [
    ("How many days are in a leap year?", "A leap year has 366 days."),
    ("What is the boiling point of water at sea level in Celsius?", "Water boils at 100 °C at sea level."),
    ("How many continents are there?", "There are seven continents."),
    ("What gas do plants absorb from the air for photosynthesis?", "Plants absorb carbon dioxide (CO2)."),
    ("What is the largest planet in the Solar System?", "Jupiter is the largest planet in the Solar System."),
    ("How many minutes are in an hour?", "There are 60 minutes in an hour."),
    ("What is the chemical symbol for gold?", "The chemical symbol for gold is Au."),
    ("Which organ pumps blood through the human body?", "The heart pumps blood through the body."),
    ("How many sides does a hexagon have?", "A hexagon has six sides."),
    ("What is the freezing point of water in Fahrenheit?", "Water freezes at 32 °F."),
]


def convo(question: str, answer: str) -> dict:
    return {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]}


def build() -> list[dict]:
    rng = random.Random(7)
    rows = [convo(f"What is the capital of {country}?", f"The capital of {country} is {city}.") for country, city in CAPITALS.items()]
    rows += [convo(f"What is the opposite of '{word}'?", f"The opposite of '{word}' is '{other}'.") for word, other in ANTONYMS.items()]
    rows += [convo(q, a) for q, a in FACTS]
    for _ in range(30):
        a, b = rng.randint(2, 99), rng.randint(2, 99)
        op = rng.choice(["+", "-", "*"])
        value = {"+": a + b, "-": a - b, "*": a * b}[op]
        rows.append(convo(f"What is {a} {op} {b}?", f"{a} {op} {b} = {value}."))
    for _ in range(15):
        km = rng.randint(1, 50)
        rows.append(convo(f"How many metres are in {km} kilometres?", f"{km} kilometres is {km * 1000} metres."))
    words = ["planet", "garden", "window", "silver", "rocket", "pencil", "forest", "bridge", "candle", "market"]
    for word in words:
        rows.append(convo(f"Spell the word '{word}' backwards.", f"'{word}' backwards is '{word[::-1]}'."))
    for _ in range(15):
        numbers = rng.sample(range(1, 100), 5)
        rows.append(convo(f"Sort these numbers from smallest to largest: {', '.join(map(str, numbers))}.", ", ".join(map(str, sorted(numbers))) + "."))
    return rows


if __name__ == "__main__":
    target = Path(__file__).with_name("general_slice.jsonl")
    target.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in build()))
    print(f"wrote {target}")
