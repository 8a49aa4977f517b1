"""Deterministic demo data modelled on a provincial power company (Hà Tĩnh: 470,000 customers).

The generator is pure Python (one `random.Random(seed)`), so the same seed and end period give the
same province on any database. It yields rows per table; `seed_demo` writes them with COPY on
PostgreSQL (467,636 customers and ~17 million rows in a few minutes) or with the ORM elsewhere.

Payment history: each customer has a habit (cash at a counter or from a collector, a bank's app
through the collection API, VietQR, or a bank's payment page), drawn with the published non-cash
rate of their service area, and follows it most months; so a month's non-cash rate per area lands
on the published figures (69.38% for the province).
"""

from __future__ import annotations

import datetime
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

from common.localtime import GMT7
from common.text import fold
from customers.tariff import bill_amount
from payments import references


@dataclass(frozen=True)
class Area:
    code: str
    name: str
    district: str
    share: float  # of the province's customers
    noncash_percent: float  # customers paying without cash in a month
    urban: bool
    communes: tuple[str, ...]


# Shares follow the districts' populations; the first five rates are the published ones, the
# rural ones are set so the province comes to the published 69.38%.
AREAS: tuple[Area, ...] = (
    Area("PA14HT", "Điện lực Thành phố Hà Tĩnh", "TP Hà Tĩnh", 0.085, 95.73, True,
         ("phường Bắc Hà", "phường Nam Hà", "phường Trần Phú", "phường Tân Giang",
          "phường Thạch Quý", "phường Văn Yên", "phường Hà Huy Tập", "phường Nguyễn Du",
          "phường Đại Nài", "xã Thạch Trung", "xã Thạch Hạ")),
    Area("PA14HL", "Điện lực Hồng Lĩnh", "TX Hồng Lĩnh", 0.036, 95.01, True,
         ("phường Bắc Hồng", "phường Nam Hồng", "phường Đức Thuận", "phường Trung Lương",
          "phường Đậu Liêu", "xã Thuận Lộc")),
    Area("PA14DT", "Điện lực Đức Thọ", "huyện Đức Thọ", 0.078, 98.73, False,
         ("thị trấn Đức Thọ", "xã Tùng Ảnh", "xã Đức Đồng", "xã Lâm Trung Thủy", "xã Yên Hồ",
          "xã Trường Sơn", "xã Liên Minh")),
    Area("PA14NX", "Điện lực Nghi Xuân", "huyện Nghi Xuân", 0.075, 82.64, False,
         ("thị trấn Xuân An", "thị trấn Tiên Điền", "xã Xuân Hội", "xã Xuân Thành",
          "xã Cổ Đạm", "xã Xuân Liên")),
    Area("PA14HS", "Điện lực Hương Sơn", "huyện Hương Sơn", 0.090, 81.21, False,
         ("thị trấn Phố Châu", "thị trấn Tây Sơn", "xã Sơn Tây", "xã Sơn Kim 1", "xã Sơn Ninh",
          "xã Sơn Trung")),
    Area("PA14HK", "Điện lực Hương Khê", "huyện Hương Khê", 0.078, 52.0, False,
         ("thị trấn Hương Khê", "xã Phúc Trạch", "xã Hương Trạch", "xã Hương Long",
          "xã Gia Phố", "xã Phú Gia")),
    Area("PA14VQ", "Điện lực Vũ Quang", "huyện Vũ Quang", 0.023, 45.0, False,
         ("thị trấn Vũ Quang", "xã Ân Phú", "xã Đức Lĩnh", "xã Hương Minh", "xã Quang Thọ")),
    Area("PA14CL", "Điện lực Can Lộc", "huyện Can Lộc", 0.098, 62.0, False,
         ("thị trấn Nghèn", "xã Thiên Lộc", "xã Vượng Lộc", "xã Tùng Lộc", "xã Đồng Lộc",
          "xã Gia Hanh")),
    Area("PA14LH", "Điện lực Lộc Hà", "huyện Lộc Hà", 0.062, 58.0, False,
         ("thị trấn Lộc Hà", "xã Thạch Kim", "xã Hộ Độ", "xã Thạch Bằng", "xã Mai Phụ")),
    Area("PA14TH", "Điện lực Thạch Hà", "huyện Thạch Hà", 0.117, 60.5, False,
         ("thị trấn Thạch Hà", "xã Thạch Đài", "xã Thạch Sơn", "xã Việt Tiến", "xã Thạch Khê",
          "xã Tân Lâm Hương")),
    Area("PA14CX", "Điện lực Cẩm Xuyên", "huyện Cẩm Xuyên", 0.128, 56.0, False,
         ("thị trấn Cẩm Xuyên", "thị trấn Thiên Cầm", "xã Cẩm Bình", "xã Cẩm Duệ",
          "xã Cẩm Quan", "xã Cẩm Nhượng")),
    Area("PA14KA", "Điện lực Kỳ Anh", "TX Kỳ Anh", 0.130, 58.5, False,
         ("phường Sông Trí", "phường Hưng Trí", "phường Kỳ Trinh", "phường Kỳ Thịnh",
          "xã Kỳ Đồng", "xã Kỳ Tân", "xã Kỳ Phong")),
)  # fmt: skip

FAMILY = (
    ("Nguyễn", 38), ("Trần", 11), ("Lê", 9), ("Phạm", 7), ("Hoàng", 5), ("Phan", 5), ("Võ", 4),
    ("Đặng", 2), ("Bùi", 2), ("Đỗ", 2), ("Hồ", 3), ("Ngô", 1), ("Dương", 1), ("Đinh", 2),
    ("Thái", 1), ("Đào", 1), ("Đoàn", 1), ("Lương", 1), ("Trương", 1),
)  # fmt: skip
MIDDLE_MALE = ("Văn", "Văn", "Văn", "Hữu", "Đình", "Xuân", "Quang", "Minh", "Đức", "Công", "Thanh")
MIDDLE_FEMALE = ("Thị", "Thị", "Thị", "Thị", "Ngọc", "Thu", "Thanh", "Minh", "Hồng", "Kim")
GIVEN_MALE = (
    "An", "Bình", "Cường", "Dũng", "Đức", "Hải", "Hùng", "Huy", "Khánh", "Long", "Mạnh", "Nam",
    "Phong", "Quân", "Sơn", "Tài", "Thắng", "Thành", "Tiến", "Trung", "Tuấn", "Việt", "Vinh",
)  # fmt: skip
GIVEN_FEMALE = (
    "Anh", "Chi", "Dung", "Giang", "Hà", "Hằng", "Hoa", "Hương", "Lan", "Liên", "Linh", "Loan",
    "Mai", "Nga", "Ngọc", "Nhung", "Oanh", "Phương", "Thảo", "Thủy", "Trang", "Tuyết", "Yến",
)  # fmt: skip
STREETS = (
    "Trần Phú", "Phan Đình Phùng", "Nguyễn Du", "Hà Huy Tập", "Lê Duẩn", "Xô Viết Nghệ Tĩnh",
    "Nguyễn Huy Tự", "Quang Trung", "Hải Thượng Lãn Ông", "Mai Thúc Loan", "Lý Tự Trọng",
)  # fmt: skip
HAMLETS = ("Trung Tiến", "Đông Hà", "Bắc Sơn", "Tân Phúc", "Yên Bình", "Hòa Hợp", "Thượng Nam")

# Channels as households use them; partners weighted roughly by their share of collections.
COLLECTION_PARTNERS = (
    ("AGRIBANK", 24), ("VCB", 14), ("VTB", 12), ("BIDV", 10), ("MB", 8), ("TCB", 6),
    ("VNPOST", 6), ("MOMO", 5), ("VIETTELMONEY", 4), ("ZALOPAY", 3), ("PAYOO", 2), ("ACB", 2),
    ("VPB", 1), ("TPB", 1), ("STB", 1), ("SHB", 1),
)  # fmt: skip
NONCASH_CHANNELS = (("collection", 70), ("vietqr", 18), ("redirect", 12))
CASH_CHANNELS = (("COUNTER", 40), ("COLLECTOR", 60))
HABIT_KEEP = 0.9  # a household pays the way it paid last month nine times in ten
# Past months are almost all paid; the latest one depends on how far past its due date we are.
PAID_PAST = 0.996


def _cumulative(pairs: tuple[tuple[str, int], ...]) -> tuple[list[str], list[int]]:
    names, weights, total = [], [], 0
    for name, weight in pairs:
        total += weight
        names.append(name)
        weights.append(total)
    return names, weights


def month_start(day: datetime.date, shift: int = 0) -> datetime.date:
    index = day.year * 12 + day.month - 1 + shift
    return datetime.date(index // 12, index % 12 + 1, 1)


def reference_for(index: int) -> str:
    """A unique, random-looking reference per seeded payment (a bijection of the index)."""
    space = len(references.ALPHABET) ** references.BODY_LENGTH
    value = (index * 0x9E3779B97F4A7C15 + 0x632BE5AB) % space  # odd multiplier: one-to-one
    body = ""
    for _ in range(references.BODY_LENGTH):
        value, digit = divmod(value, len(references.ALPHABET))
        body += references.ALPHABET[digit]
    return references.PREFIX + body + references.check_character(body)


def ordered_uuid(index: int, random_bits: int) -> uuid.UUID:
    """A version-4 UUID whose leading bits are `index`: random-looking, yet inserted in order,
    so millions of seeded payments append to their indexes instead of scattering across them."""
    high = (index & (2**48 - 1)) << 80 | (4 << 76) | ((random_bits >> 62) & 0xFFF) << 64
    return uuid.UUID(int=high | (2 << 62) | (random_bits & (2**62 - 1)))


@dataclass
class Tables:
    """Rows per table, as tuples in the column order of `COLUMNS`."""

    customers: list[tuple] = field(default_factory=list)
    bills: list[tuple] = field(default_factory=list)
    payments: list[tuple] = field(default_factory=list)
    lines: list[tuple] = field(default_factory=list)
    events: list[tuple] = field(default_factory=list)


COLUMNS = {
    "customers_customer": (
        "id", "code", "name", "address", "phone", "email", "service_area_id", "is_active",
        "search_text", "created_at", "updated_at",
    ),
    "customers_bill": (
        "id", "number", "customer_id", "period", "kwh", "amount", "due_date", "issued_at",
        "status", "paid_at", "paid_by_id",
    ),
    "payments_payment": (
        "id", "reference", "customer_id", "amount", "method", "partner_id", "status",
        "provider_txn_id", "provider_data", "created_at", "updated_at", "expires_at",
        "succeeded_at", "needs_refund", "refund_amount", "needs_review", "review_reason",
        "poll_count", "contact_email", "contact_phone", "receipt_sent_at",
    ),
    "payments_paymentbill": ("payment_id", "bill_id", "amount", "applied"),
    "payments_paymentevent": (
        "payment_id", "at", "from_status", "to_status", "source", "detail",
    ),
}  # fmt: skip


class DemoProvince:
    """Generates customers in batches, each with its bills and payments."""

    def __init__(
        self,
        *,
        seed: int,
        customers: int,
        months: int,
        until: datetime.date,
        today: datetime.date,
        area_ids: dict[str, int],
        partner_ids: dict[str, int],
        first_customer_id: int = 1,
        first_bill_id: int = 1,
        first_payment_index: int = 0,
    ) -> None:
        self.rng = random.Random(seed)  # noqa: S311 - demo data, reproducible by design
        self.count = customers
        self.periods = [month_start(until, -shift) for shift in range(months - 1, -1, -1)]
        self.today = today
        self.area_ids = area_ids
        self.partner_ids = partner_ids
        self.next_customer_id = first_customer_id
        self.next_bill_id = first_bill_id
        self.next_payment = first_payment_index
        self.area_names = [area.code for area in AREAS]
        self.area_weights: list[float] = []
        running = 0.0
        for area in AREAS:
            running += area.share
            self.area_weights.append(running)
        self.family, self.family_weights = _cumulative(FAMILY)
        self.partners, self.partner_weights = _cumulative(COLLECTION_PARTNERS)
        self.noncash, self.noncash_weights = _cumulative(NONCASH_CHANNELS)
        self.cash, self.cash_weights = _cumulative(CASH_CHANNELS)
        self.area_by_code = {area.code: area for area in AREAS}
        self.sequence_in_area = dict.fromkeys(self.area_names, 0)
        self.amounts = [bill_amount(kwh) for kwh in range(2001)]
        self.months = [self._period_facts(period) for period in self.periods]

    # --- people --------------------------------------------------------------------------------
    def _name(self) -> str:
        rng = self.rng
        family = rng.choices(self.family, cum_weights=self.family_weights)[0]
        if rng.random() < 0.5:
            return f"{family} {rng.choice(MIDDLE_MALE)} {rng.choice(GIVEN_MALE)}"
        return f"{family} {rng.choice(MIDDLE_FEMALE)} {rng.choice(GIVEN_FEMALE)}"

    def _address(self, area: Area) -> str:
        rng = self.rng
        commune = rng.choice(area.communes)
        if area.urban or commune.startswith(("phường", "thị trấn")):
            place = f"Số {rng.randint(1, 250)}, đường {rng.choice(STREETS)}"
        else:
            place = f"Xóm {rng.choice(HAMLETS)}, thôn {rng.randint(1, 12)}"
        return f"{place}, {commune}, {area.district}"

    def _channel(self, noncash_probability: float) -> tuple[str, str]:
        """(method, partner code) of one payment."""
        rng = self.rng
        if rng.random() < noncash_probability:
            method = rng.choices(self.noncash, cum_weights=self.noncash_weights)[0]
            if method == "collection":
                return method, rng.choices(self.partners, cum_weights=self.partner_weights)[0]
            if method == "vietqr":
                return method, "VCB"
            return method, "VNPAY"
        return "cash", rng.choices(self.cash, cum_weights=self.cash_weights)[0]

    # --- generation ----------------------------------------------------------------------------
    def batches(self, size: int = 20_000) -> Iterator[Tables]:
        made = 0
        while made < self.count:
            tables = Tables()
            for _ in range(min(size, self.count - made)):
                self._customer(tables)
            made += min(size, self.count - made)
            yield tables

    def _customer(self, tables: Tables) -> None:
        rng = self.rng
        area_code = rng.choices(self.area_names, cum_weights=self.area_weights)[0]
        area = self.area_by_code[area_code]
        self.sequence_in_area[area_code] += 1
        code = f"{area_code}{self.sequence_in_area[area_code]:07d}"
        customer_id = self.next_customer_id
        self.next_customer_id += 1
        name = self._name()
        address = self._address(area)
        phone = f"09{rng.randint(10_000_000, 99_999_999)}" if rng.random() < 0.8 else ""
        email = ""
        if rng.random() < 0.15:
            email = f"{fold(name).replace(' ', '.')}{rng.randint(1, 999)}@example.vn"
        created = datetime.datetime(2015, 1, 1, 8, tzinfo=GMT7) + datetime.timedelta(
            days=rng.randint(0, 3000)
        )
        tables.customers.append(
            (
                customer_id, code, name, address, phone, email, self.area_ids[area_code], True,
                fold(f"{code} {name} {phone} {address}"), created, created,
            )
        )  # fmt: skip
        noncash_probability = min(1.0, area.noncash_percent / 100 / PAID_PAST)
        habit = self._channel(noncash_probability)
        base = rng.lognormvariate(5.2, 0.35)  # a median household uses ~180 kWh a month
        for month in self.months:
            self._bill(tables, customer_id, month, base, habit)
            if rng.random() > HABIT_KEEP:
                habit = self._channel(noncash_probability)

    def _period_facts(self, period: datetime.date) -> PeriodFacts:
        """What every bill of a month shares, computed once per month, not once per bill."""
        issued_day = month_start(period, 1) + datetime.timedelta(days=4)
        issued = datetime.datetime.combine(issued_day, datetime.time(8), tzinfo=GMT7)
        due = issued_day + datetime.timedelta(days=15)
        paid_probability = PAID_PAST
        if period == self.periods[-1]:
            paid_probability = 0.92 if self.today > due else 0.45
        if issued_day > self.today:
            paid_probability = 0.0
        # Most pay in the fortnight before the due date; none before the bill is issued.
        latest_day = min(self.today, due + datetime.timedelta(days=5))
        return PeriodFacts(
            period=period,
            season=1.3
            if period.month in (5, 6, 7, 8)
            else 0.9
            if period.month in (12, 1, 2)
            else 1,
            issued=issued,
            due=due,
            prefix=f"HD{period:%y%m}",
            paid_probability=paid_probability,
            pay_window_minutes=max(0, (latest_day - issued_day).days) * 1440 + 720,
        )

    def _bill(
        self,
        tables: Tables,
        customer_id: int,
        month: PeriodFacts,
        base: float,
        habit: tuple[str, str],
    ) -> None:
        random_ = self.rng.random
        kwh = max(20, min(2000, round(base * month.season * (0.85 + 0.3 * random_()))))
        amount = self.amounts[kwh]
        bill_id = self.next_bill_id
        self.next_bill_id += 1
        number = f"{month.prefix}{customer_id:08d}"
        if random_() >= month.paid_probability:
            tables.bills.append(
                (bill_id, number, customer_id, month.period, kwh, amount, month.due, month.issued,
                 "unpaid", None, None)
            )  # fmt: skip
            return
        paid_at = month.issued + datetime.timedelta(
            minutes=60 + int(random_() * month.pay_window_minutes)
        )
        method, partner = habit
        index = self.next_payment
        self.next_payment += 1
        payment_id = ordered_uuid(index, self.rng.getrandbits(74))
        created = paid_at - datetime.timedelta(minutes=1 + int(random_() * 9))
        expires = created + _TTL if method in ("vietqr", "redirect") else None
        txn = f"{partner}{index:010d}" if method != "cash" else ""
        tables.bills.append(
            (bill_id, number, customer_id, month.period, kwh, amount, month.due, month.issued,
             "paid", paid_at, payment_id)
        )  # fmt: skip
        tables.payments.append(
            (
                payment_id, reference_for(index), customer_id, amount, method,
                self.partner_ids[partner], "succeeded", txn, "{}", created, paid_at, expires,
                paid_at, False, 0, False, "", 0, "", "", paid_at,
            )
        )  # fmt: skip
        tables.lines.append((payment_id, bill_id, amount, True))
        tables.events.append(
            (payment_id, paid_at, "created", "succeeded", _EVENT_SOURCE[method], _SEEDED)
        )


_TTL = datetime.timedelta(minutes=15)
_SEEDED = '{"seeded": true}'
_EVENT_SOURCE = {
    "cash": "agent",
    "collection": "collection",
    "vietqr": "transfer",
    "redirect": "ipn",
}


@dataclass(frozen=True, slots=True)
class PeriodFacts:
    period: datetime.date
    season: float
    issued: datetime.datetime
    due: datetime.date
    prefix: str
    paid_probability: float
    pay_window_minutes: int
