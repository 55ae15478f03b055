"""Users, Products and Orders: each in its own database (see distributed_system.routers).

No rule is enforced by the database: no unique index, no CHECK constraint, no foreign key.
Rules on a record's own fields live here (field validators and clean()); rules that need other
rows (email uniqueness, references across databases) live in data_insertion.services.
"""

import re
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator, MaxValueValidator, MinValueValidator
from django.db import models

NAME_BLANK = "This field cannot be blank."
CONTROL_CHARACTER = "Must not contain control characters (found %(codepoint)s)."
UNPAIRED_SURROGATE = "Must not contain unpaired surrogates (found %(codepoint)s)."
EMAIL_TOO_LONG_CASE_FOLDED = "This address is too long once letter case is ignored."
NORMALIZED_EMAIL_MAX_LENGTH = 320
QUANTITY_MIN = 1
QUANTITY_MAX = 1_000_000
PRICE_MIN = Decimal("0")
PRICE_MAX = Decimal("99999999.99")


# Unicode's control characters (category Cc): C0, DEL and C1.
CONTROL_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f]")
SURROGATES = re.compile("[\ud800-\udfff]")


def validate_no_control_characters(value: str) -> None:
    """No control character, and no lone surrogate (text no database can store)."""
    for pattern, message, code in (
        (CONTROL_CHARACTERS, CONTROL_CHARACTER, "control_character"),
        (SURROGATES, UNPAIRED_SURROGATE, "surrogate"),
    ):
        found = pattern.search(value)
        if found:
            raise ValidationError(
                message, code=code, params={"codepoint": f"U+{ord(found.group()):04X}"}
            )


def normalize_email(email: str) -> str:
    """The form two addresses share when they differ only in letter case."""
    return email.casefold()


class User(models.Model):
    name = models.CharField(max_length=100, validators=[validate_no_control_characters])
    email = models.CharField(max_length=254, validators=[EmailValidator()])
    # Case-folded email with a plain (non-unique) index: it makes the uniqueness check in the
    # service one indexed lookup on every backend. It is not a constraint.
    email_normalized = models.CharField(
        max_length=NORMALIZED_EMAIL_MAX_LENGTH, db_index=True, editable=False
    )
    # A run spread over processes or machines gives each record a deterministic identity
    # (engine/identity.py) so that a slice run twice skips what it committed the first time.
    # A plain index: the check is the service's, inside the insert's transaction.
    record_key = models.BigIntegerField(null=True, blank=True, db_index=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.name} <{self.email}>"

    def clean(self) -> None:
        self.email_normalized = normalize_email(self.email or "")
        if len(self.email_normalized) > NORMALIZED_EMAIL_MAX_LENGTH:  # "ﬃ" folds to "ffi"
            raise ValidationError({"email": EMAIL_TOO_LONG_CASE_FOLDED})


class Product(models.Model):
    name = models.CharField(max_length=200, validators=[validate_no_control_characters])
    price = models.DecimalField(
        max_digits=10,
        decimal_places=2,
        validators=[MinValueValidator(PRICE_MIN), MaxValueValidator(PRICE_MAX)],
    )
    # A run spread over processes or machines gives each record a deterministic identity
    # (engine/identity.py) so that a slice run twice skips what it committed the first time.
    # A plain index: the check is the service's, inside the insert's transaction.
    record_key = models.BigIntegerField(null=True, blank=True, db_index=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.price})"


class Order(models.Model):
    # Plain integers: a foreign key cannot span databases. The service checks that both exist.
    user_id = models.BigIntegerField()
    product_id = models.BigIntegerField()
    quantity = models.IntegerField(
        validators=[MinValueValidator(QUANTITY_MIN), MaxValueValidator(QUANTITY_MAX)]
    )
    # A run spread over processes or machines gives each record a deterministic identity
    # (engine/identity.py) so that a slice run twice skips what it committed the first time.
    # A plain index: the check is the service's, inside the insert's transaction.
    record_key = models.BigIntegerField(null=True, blank=True, db_index=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"Order {self.pk}: user {self.user_id}, product {self.product_id} x {self.quantity}"


class ShardMap(models.Model):
    """Which database holds each logical shard of one model (topology.shards): the truth once
    created, kept in the default database, one row per sharded model.

    `assignment` has one character per logical shard naming its database's index (users_db_2
    is "2"); a rebalance writes the assignment it moves to in `target`, lists the logical shards
    in their short cut-over in `frozen`, and bumps `version` whenever a writer must look again.
    """

    model = models.CharField(max_length=20, primary_key=True)
    database_count = models.IntegerField()
    assignment = models.TextField()
    target = models.TextField(blank=True, default="")
    frozen = models.TextField(blank=True, default="")
    version = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.model}s over {self.database_count} databases (version {self.version})"
