"""Agents find a customer by code, name, phone or address, with or without accents."""

from __future__ import annotations

import pytest
from django.db import connection
from django.urls import reverse

from console import services
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db
SEARCH = reverse("console:search")


@pytest.fixture
def people():
    return {
        "an": CustomerFactory(
            name="Nguyễn Văn An",
            address="Xóm 3, xã Thạch Hạ, TP Hà Tĩnh",
            phone="0912345678",
        ),
        "duc": CustomerFactory(
            name="Đặng Thị Đức", address="Số 5, đường Trần Phú, phường Bắc Hà", phone="0987654321"
        ),
        "anh": CustomerFactory(
            name="Nguyễn Văn Anh", address="Thôn Yên Bình, xã Sơn Kim 1", phone="0905111222"
        ),
        "hoa": CustomerFactory(
            name="Lê Thị Hoa", address="Thị trấn Nghèn, huyện Can Lộc", phone="0333444555"
        ),
    }


def found(query: str) -> set[str]:
    return set(services.customer_search(query=query).values_list("name", flat=True))


def test_typing_without_accents_finds_the_accented_name(people):
    assert found("nguyen van a") == {"Nguyễn Văn An", "Nguyễn Văn Anh"}
    assert found("dang thi duc") == {"Đặng Thị Đức"}
    assert found("NGUYỄN VĂN AN") == {"Nguyễn Văn An", "Nguyễn Văn Anh"}
    assert found("  Đặng   thị ") == {"Đặng Thị Đức"}


def test_it_finds_by_address_phone_and_part_of_a_code(people):
    assert found("thach ha") == {"Nguyễn Văn An"}
    assert found("tran phu") == {"Đặng Thị Đức"}
    assert found("0912 345 678") == {"Nguyễn Văn An"}
    assert found("+84 987 654 321") == {"Đặng Thị Đức"}
    assert found(people["hoa"].code[-7:]) == {"Lê Thị Hoa"}


def test_too_short_or_unrelated_queries_find_nothing(people):
    assert found("an") == set()
    assert found("") == set()
    assert found("phan dinh phung") == set()
    assert found("%%%") == set()  # LIKE wildcards are matched literally


def test_the_search_page_lists_matches_with_unmasked_details(people, agent_client):
    response = agent_client.get(SEARCH, {"q": "nguyen van a"})
    text = response.content.decode()
    assert response.status_code == 200
    assert "Tìm thấy 2 khách hàng" in text
    assert "Nguyễn Văn An" in text and "Xóm 3, xã Thạch Hạ, TP Hà Tĩnh" in text
    assert "0912345678" in text
    assert "Lê Thị Hoa" not in text


def test_an_exact_customer_code_opens_the_customer_page(people, agent_client):
    code = people["hoa"].code
    typed = f"{code[:4].lower()} {code[4:6]}-{code[6:]}"
    response = agent_client.get(SEARCH, {"q": typed})
    assert response.status_code == 302
    assert response["Location"] == reverse("console:customer", args=[code])


def test_a_short_query_asks_for_more(agent_client):
    response = agent_client.get(SEARCH, {"q": "a"})
    assert "Hãy nhập ít nhất ba chữ cái hoặc chữ số." in response.content.decode()


def test_results_are_paginated(agent_client):
    CustomerFactory.create_batch(30, name="Trần Văn Bình")
    first = agent_client.get(SEARCH, {"q": "tran van binh"})
    assert first.context["results"].paginator.num_pages == 2
    assert len(first.context["results"]) == 25
    second = agent_client.get(SEARCH, {"q": "tran van binh", "page": "2"})
    assert len(second.context["results"]) == 5
    assert "q=tran+van+binh&amp;page=1" in second.content.decode()
    odd = agent_client.get(SEARCH, {"q": "tran van binh", "page": "99999999999999999"})
    assert odd.status_code == 200


def test_on_postgresql_the_search_uses_the_trigram_index():
    """At province scale a LIKE '%…%' must not read every customer.

    50,000 customers with realistic, repetitive names and addresses are enough for the planner
    to prefer the trigram index `customer_search_trgm` (migration customers/0003) for a name few
    share, both for the page of results and for its count. (A term half the province shares may
    legitimately be served by the code index with an early LIMIT stop instead.)
    """
    assert connection.vendor == "postgresql", "the search index exists on PostgreSQL only"
    area_id = CustomerFactory().service_area_id
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO customers_customer (code, name, address, phone, email, service_area_id,
                is_active, search_text, created_at, updated_at)
            SELECT 'PX' || lpad(g::text, 11, '0'), 'x', '', '', '', %s, true,
                'px' || lpad(g::text, 11, '0') || ' '
                || (ARRAY['nguyen','tran','le','pham','hoang','phan','vo'])[1 + g %% 7] || ' '
                || (ARRAY['van','thi','huu','dinh','xuan'])[1 + g %% 5] || ' '
                || (ARRAY['an','binh','cuong','dung','hai','hung','lan','mai','nga'])[1 + g %% 9]
                || ' 09' || lpad((g * 7919 %% 100000000)::text, 8, '0')
                || ' xom ' || (g %% 997)::text || ', xa thach ha, tp ha tinh',
                now(), now()
            FROM generate_series(1, 50000) g
            """,
            [area_id],
        )
    CustomerFactory(code="PA14HT7777777", name="Ngô Thị Tuyết Nhung", phone="0977123456")
    with connection.cursor() as cursor:
        # Fold the freshly inserted rows into the index proper, as autovacuum would have.
        cursor.execute("SELECT gin_clean_pending_list('customer_search_trgm'::regclass)")
        cursor.execute("ANALYZE customers_customer")
    results = services.customer_search(query="ngo thi tuyet nhung")
    assert [c.code for c in results] == ["PA14HT7777777"]
    # The two queries the search page runs: the page of results, and the count for paging.
    assert "customer_search_trgm" in results.all()[:25].explain()
    assert "customer_search_trgm" in results.order_by().explain()


def test_results_come_by_relevance_a_name_before_a_street_of_that_name():
    street = CustomerFactory(code="PA14HT0000001", name="Lê Văn Hùng", address="12 Trần Thị Lý")
    named = CustomerFactory(code="PA14HT0000009", name="Trần Thị Mai", address="Xóm 1")
    by_code = CustomerFactory(code="PA14HT3000123", name="Phan Văn Ba", address="Xóm 2")
    assert list(services.customer_search(query="tran thi")) == [named, street]
    assert list(services.customer_search(query="pa14ht30")) == [by_code]
