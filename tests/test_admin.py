"""Every model has an admin page that opens, labelled in Vietnamese."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.auth.models import User
from django.urls import reverse

from tests.factories import customer_with_bills

pytestmark = pytest.mark.django_db


@pytest.fixture
def superuser_client(client):
    user = User.objects.create_superuser("root-admin", password="S3cure-pass-2026")
    client.force_login(user)
    return client


def test_every_registered_model_has_a_changelist_that_opens(superuser_client):
    customer_with_bills(unpaid=2)
    for model in admin.site._registry:
        url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        assert superuser_client.get(url).status_code == 200, url


def test_the_admin_speaks_vietnamese(superuser_client):
    text = superuser_client.get("/admin/").content.decode()
    for label in ("Khách hàng", "Hóa đơn", "Giao dịch", "Đối tác", "Nhật ký thao tác"):
        assert label in text, label


def test_payments_cannot_be_edited_in_the_admin(superuser_client):
    assert superuser_client.get("/admin/payments/payment/add/").status_code == 403


def test_the_admin_is_behind_login(client):
    response = client.get("/admin/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
