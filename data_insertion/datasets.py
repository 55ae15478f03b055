"""The records a simulation inserts: the seed's demo set, or a deterministic generated set.

A generated record is a pure function of (seed, model, index), so worker threads build their
own records without sharing a generator, a million records cost no memory up front, and a seed
gives the same records, and so the same counts of inserted and rejected, on every run.
Emails carry the run's tag, so a rerun inserts again instead of colliding with earlier runs.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

DEMO_USERS = [
    ("Alice", "alice"),
    ("Bob", None),  # an invalid email
    ("Charlie", "charlie"),
    ("Diana", "diana"),
    ("", "nameless"),  # an empty name
    ("Frank", "frank"),
    ("Grace", "grace"),
    ("Heidi", "heidi"),
    ("Ivan", "ivan"),
    ("Zoë", "zoe"),
]
DEMO_PRODUCTS = [
    ("Laptop", "1299.99"),
    ("Smartphone", "799.00"),
    ("Headphones", "149.50"),
    ("Monitor", "329.99"),
    ("Keyboard", "-49.99"),  # a negative price
    ("Mouse", "25.00"),
    ("Webcam", "59.90"),
    ("Desk Lamp", "34.95"),
    ("USB-C Cable", "9.99"),
    ("Espresso Machine", "449.00"),
]
DEMO_ORDER_QUANTITIES = [1, 2, 1, 0, 3, 1, 5, 2, 1, 4]  # one zero quantity
DEMO_MISSING_USER_ORDER = 7  # this order references a user that does not exist

FIRST_NAMES = [
    "Alice",
    "Bob",
    "Chloé",
    "Dmitri",
    "Élodie",
    "François",
    "Giulia",
    "Hiroshi",
    "Ingrid",
    "Jürgen",
    "Zoë",
    "Łukasz",
    "Ελένη",
    "Дмитрий",
    "李雷",
    "山田",
    "김민수",
    "Søren",
    "Núria",
    "O'Brien",
]
LAST_NAMES = [
    "Smith",
    "Müller",
    "García",
    "Rossi",
    "Dubois",
    "Nowak",
    "Ivanova",
    "Papadopoulos",
    "Tanaka",
    "Kim",
    "Wang",
    "O'Neil",
    "D'Angelo",
    'Robert"); DROP TABLE users;--',
    "Østergaard",
]
PRODUCT_WORDS = [
    "Laptop",
    "Phone",
    "Tablet",
    "Monitor",
    "Keyboard",
    "Mouse",
    "Camera",
    "Speaker",
    "Router",
    "Café Grinder",
    "Ноутбук",
    "Κάμερα",
    "耳机",
    'Drill 18"',
    "Desk 'Pro'",
]

USER_INVALID_KINDS = (
    "blank_name",
    "long_name",
    "control_character",
    "invalid_email",
    "long_email",
    "duplicate_email",
)
PRODUCT_INVALID_KINDS = (
    "blank_name",
    "long_name",
    "control_character",
    "negative_price",
    "too_many_decimals",
    "not_a_number",
    "too_expensive",
)
ORDER_INVALID_KINDS = (
    "zero_quantity",
    "negative_quantity",
    "huge_quantity",
    "not_a_number",
    "missing_user",
    "missing_product",
)

# How many earlier records a duplicate email tries before it settles on another invalid kind.
DUPLICATE_EMAIL_TRIES = 8
_MASK = (1 << 64) - 1
_MODEL_SALT = {"user": 0x5553, "product": 0x5052, "order": 0x4F52}


def _mix(value: int) -> int:
    """splitmix64: a fast, well-spread 64-bit hash (Vigna)."""
    value = (value + 0x9E3779B97F4A7C15) & _MASK
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & _MASK
    return value ^ (value >> 31)


class _Draws:
    """A record's own stream of pseudo-random numbers."""

    __slots__ = ("state",)

    def __init__(self, seed: int, model: str, index: int) -> None:
        self.state = _mix(_mix(seed * 1_000_003 + _MODEL_SALT[model]) ^ index)

    def below(self, bound: int) -> int:
        self.state = _mix(self.state)
        return self.state % bound

    def chance(self) -> float:
        self.state = _mix(self.state)
        return self.state / 2**64


@dataclass(frozen=True)
class Dataset:
    """Records by index: `user(i)`, `product(i)` and, once users and products exist, `order(i)`."""

    records: int
    tag: str
    seed: int | None = None
    invalid_ratio: float = 0.1

    @property
    def is_demo(self) -> bool:
        return self.seed is None and self.records == len(DEMO_USERS)

    def _email(self, local: str) -> str:
        return f"{local}+{self.tag}@example.com"

    def user(self, index: int) -> dict[str, Any]:
        if self.is_demo:
            name, local = DEMO_USERS[index]
            email = self._email(local) if local else "bob-at-example.com"
            return {"name": name, "email": email}
        draws = _Draws(self.seed or 0, "user", index)
        first_name = FIRST_NAMES[draws.below(len(FIRST_NAMES))]
        name = f"{first_name} {LAST_NAMES[draws.below(len(LAST_NAMES))]}"
        email = self._email(f"user{index}")
        if not self._invalid_user(index, draws):
            return {"name": name, "email": email}
        kind = USER_INVALID_KINDS[draws.below(len(USER_INVALID_KINDS))]
        original = self._valid_earlier_user(index, draws) if kind == "duplicate_email" else None
        if kind == "duplicate_email" and original is None:
            # No valid address to repeat: copying an invalid record's address would make a
            # valid record (the first holder of that address), so break the name instead.
            kind = "blank_name"
        if kind == "blank_name":
            name = "   "
        elif kind == "long_name":
            name = "N" * 101
        elif kind == "control_character":
            name = f"{name}\x00"
        elif kind == "invalid_email":
            email = f"user{index}.{self.tag}.example.com"
        elif kind == "long_email":
            email = self._email("u" * 250)
        else:  # duplicate_email: an earlier valid record's address in other letter case
            email = self._email(f"user{original}").upper()
        return {"name": name, "email": email}

    def _invalid_user(self, index: int, draws: "_Draws") -> bool:
        """Whether user `index` is made invalid (draws: its stream, just past its name)."""
        return draws.chance() < self.invalid_ratio

    def _valid_earlier_user(self, index: int, draws: "_Draws") -> int | None:
        """An earlier user that is valid, for a duplicate email to repeat: a record that
        repeats an invalid one's address is the first to hold it, and so valid itself.
        A few draws are tried; None when they find none (always so at an invalid ratio of 1)."""
        for _ in range(DUPLICATE_EMAIL_TRIES if index else 0):
            candidate = draws.below(index)
            candidate_draws = _Draws(self.seed or 0, "user", candidate)
            candidate_draws.below(len(FIRST_NAMES))
            candidate_draws.below(len(LAST_NAMES))
            if not self._invalid_user(candidate, candidate_draws):
                return candidate
        return None

    def product(self, index: int) -> dict[str, Any]:
        if self.is_demo:
            name, price = DEMO_PRODUCTS[index]
            return {"name": name, "price": price}
        draws = _Draws(self.seed or 0, "product", index)
        name = f"{PRODUCT_WORDS[draws.below(len(PRODUCT_WORDS))]} {index}"
        price = f"{draws.below(200_000) / 100:.2f}"
        if draws.chance() >= self.invalid_ratio:
            return {"name": name, "price": price}
        kind = PRODUCT_INVALID_KINDS[draws.below(len(PRODUCT_INVALID_KINDS))]
        if kind == "blank_name":
            name = ""
        elif kind == "long_name":
            name = "P" * 201
        elif kind == "control_character":
            name = f"{name}\x07"
        elif kind == "negative_price":
            price = f"-{price}"
        elif kind == "too_many_decimals":
            price = f"{price}9"
        elif kind == "not_a_number":
            price = "abc"
        else:
            price = "100000000.00"
        return {"name": name, "price": price}

    def order(
        self,
        index: int,
        user_ids: Sequence[int],
        product_ids: Sequence[int],
        missing_user_id: int,
        missing_product_id: int,
    ) -> dict[str, Any]:
        """An order for users and products committed in this run (ids sorted ascending)."""
        if self.is_demo:
            user_id = user_ids[index % len(user_ids)] if user_ids else missing_user_id
            if index == DEMO_MISSING_USER_ORDER:
                user_id = missing_user_id
            product_id = (
                product_ids[index % len(product_ids)] if product_ids else missing_product_id
            )
            return {
                "user_id": user_id,
                "product_id": product_id,
                "quantity": DEMO_ORDER_QUANTITIES[index],
            }
        draws = _Draws(self.seed or 0, "order", index)
        user_id = user_ids[draws.below(len(user_ids))] if user_ids else missing_user_id
        product_id = (
            product_ids[draws.below(len(product_ids))] if product_ids else missing_product_id
        )
        quantity: Any = 1 + draws.below(10)
        if draws.chance() < self.invalid_ratio:
            kind = ORDER_INVALID_KINDS[draws.below(len(ORDER_INVALID_KINDS))]
            if kind == "zero_quantity":
                quantity = 0
            elif kind == "negative_quantity":
                quantity = -quantity
            elif kind == "huge_quantity":
                quantity = 1_000_001
            elif kind == "not_a_number":
                quantity = "many"
            elif kind == "missing_user":
                user_id = missing_user_id
            else:
                product_id = missing_product_id
        return {"user_id": user_id, "product_id": product_id, "quantity": quantity}
